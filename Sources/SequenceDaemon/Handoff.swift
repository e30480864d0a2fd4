import Foundation
import SequenceStore
import Synchronization

/// Deliveries this process's advancers wrote already leased (`DirectLease`), waiting for one of its
/// senders. It saves each email the sender's claim transaction: the advance that writes the row
/// leases it too, and the sender takes it from here.
///
/// The queue is bounded, so what waits in it is sent well inside its lease: an advancer reserves
/// room before its transaction and leases no more than it got. After `close` (shutdown) nothing
/// is accepted; whoever holds leased deliveries that no sender will take gives them back.
final class Handoff: Sendable {
    struct Item: Sendable {
        let delivery: ClaimedDelivery
        /// When it was queued: its lease began at most a commit earlier.
        let queuedAt: ContinuousClock.Instant
    }

    private struct State {
        var items: [Item] = []
        var reserved = 0
        var closed = false
        /// An advance wrote deliveries it did not lease (the queue was full, or they were
        /// threaded): a sender should claim from the database next.
        var claimWanted = false
        var lastClaim = ContinuousClock.now
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Room for up to `wanted` more, held until `deliver` or `release`; 0 once closed.
    func reserve(upTo wanted: Int) -> Int {
        state.withLock { state in
            guard !state.closed else { return 0 }
            let room = max(0, min(wanted, capacity - state.items.count - state.reserved))
            state.reserved += room
            return room
        }
    }

    /// Returns room reserved for a transaction that leased nothing (or failed).
    func release(_ reserved: Int) {
        guard reserved > 0 else { return }
        state.withLock { $0.reserved -= reserved }
    }

    /// Queues the deliveries a committed advance leased into `reserved` room, and notes whether it
    /// wrote others that wait in the database. Returns those the queue refused because it was
    /// closed meanwhile: the caller gives them back.
    func deliver(_ deliveries: [ClaimedDelivery], reserved: Int, othersPending: Bool) -> [ClaimedDelivery] {
        let now = ContinuousClock.now
        return state.withLock { state in
            state.reserved -= reserved
            if othersPending { state.claimWanted = true }
            guard !state.closed else { return deliveries }
            state.items += deliveries.map { Item(delivery: $0, queuedAt: now) }
            return []
        }
    }

    /// Takes up to `limit` of the oldest queued deliveries.
    func take(upTo limit: Int) -> [Item] {
        state.withLock { state in
            let taken = Array(state.items.prefix(limit))
            state.items.removeFirst(taken.count)
            return taken
        }
    }

    var isEmpty: Bool { state.withLock { $0.items.isEmpty } }

    /// True when a sender should claim from the database rather than take from the queue: an
    /// advance asked for it, or no claim was made for `interval`. The sender it answers takes it
    /// on, so the others go on with the queue.
    func claimDue(every interval: Duration) -> Bool {
        let now = ContinuousClock.now
        return state.withLock { state in
            guard state.claimWanted || now - state.lastClaim >= interval else { return false }
            state.claimWanted = false
            state.lastClaim = now
            return true
        }
    }

    /// Accepts nothing more and returns what is still queued, for the caller to give back.
    func close() -> [ClaimedDelivery] {
        state.withLock { state in
            state.closed = true
            defer { state.items = [] }
            return state.items.map(\.delivery)
        }
    }
}
