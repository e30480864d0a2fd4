import Foundation
import SequenceStore
import Synchronization

/// Deliveries this process's advancers wrote already leased (`DirectLease`), waiting for one of its
/// senders. It saves each email the sender's claim transaction: the advance that writes the row
/// leases it too, and the sender takes it from here.
///
/// The queue is bounded by what the senders send in a quarter of the lease at their measured pace,
/// so what waits in it is sent well inside its lease: an advance reserves room once it knows how
/// many emails its batch writes, and leases no more than it got. What waits longer anyway (every
/// sender stuck, or the transport's circuit open) is taken back by `takeStale` and returned to
/// `pending`. After `close` (shutdown) nothing is accepted; whoever holds leased deliveries that no
/// sender will take gives them back.
final class Handoff: LeaseRoom {
    struct Item: Sendable {
        let delivery: ClaimedDelivery
        /// Taken before the advance transaction began, so no later than the lease's own start
        /// (its `now()`): the lease is never thought younger than it is.
        let leaseStart: ContinuousClock.Instant
    }

    private struct State {
        var items: [Item] = []
        var reserved = 0
        var closed = false
        /// Deliveries wait in the database (an advance wrote some it did not lease, or a claim
        /// found more than it took): a sender should claim from there next.
        var claimWanted = false
        var lastClaim = ContinuousClock.now
        /// The senders' latest measured pace.
        var secondsPerSend: Double?
    }

    /// The most the queue holds, whatever the pace.
    let capacity: Int
    private let senders: Int
    private let leaseSeconds: Int
    private let state = Mutex(State())

    init(capacity: Int, senders: Int, leaseSeconds: Int) {
        self.capacity = capacity
        self.senders = senders
        self.leaseSeconds = leaseSeconds
    }

    /// Room for up to `wanted` more, held until `deliver` or `release`; 0 once closed. The queue
    /// holds at most what the senders send in a quarter of the lease at their measured pace.
    func reserve(upTo wanted: Int) -> Int {
        state.withLock { state in
            guard !state.closed else { return 0 }
            let paced = state.secondsPerSend.map { Double(senders * leaseSeconds) / 4 / max($0, 1e-6) }
            let limit = paced.map { Int(min($0, Double(capacity))) } ?? capacity
            let room = max(0, min(wanted, limit - state.items.count - state.reserved))
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
    func deliver(
        _ deliveries: [ClaimedDelivery], reserved: Int, leaseStart: ContinuousClock.Instant, othersPending: Bool
    ) -> [ClaimedDelivery] {
        state.withLock { state in
            state.reserved -= reserved
            if othersPending { state.claimWanted = true }
            guard !state.closed else { return deliveries }
            state.items += deliveries.map { Item(delivery: $0, leaseStart: leaseStart) }
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

    /// Puts taken deliveries back at the front, as they were (a sender could not send them); once
    /// closed, `stop` has given the queue back already and their leases expire instead.
    func requeue(_ items: [Item]) {
        state.withLock { state in
            guard !state.closed else { return }
            state.items.insert(contentsOf: items, at: 0)
        }
    }

    /// Takes every delivery queued since before `age` ago: no sender took it in time.
    func takeStale(olderThan age: Duration) -> [ClaimedDelivery] {
        let cutoff = ContinuousClock.now - age
        return state.withLock { state in
            let stale = state.items.prefix { $0.leaseStart < cutoff }
            state.items.removeFirst(stale.count)
            return stale.map(\.delivery)
        }
    }

    var isEmpty: Bool { state.withLock { $0.items.isEmpty } }

    /// A sender's measured seconds per send, which bounds the queue.
    func notePace(_ secondsPerSend: Double) {
        state.withLock { $0.secondsPerSend = secondsPerSend }
    }

    /// More deliveries wait in the database than a claim took.
    func wantClaim() {
        state.withLock { $0.claimWanted = true }
    }

    /// True when a sender should claim from the database rather than take from the queue: an
    /// advance or a claim asked for it, or no claim was made for `interval`. The sender it
    /// answers takes it on, so the others go on with the queue.
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
