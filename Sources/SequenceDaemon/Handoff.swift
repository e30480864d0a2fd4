import Foundation
import SequenceStore
import Synchronization

/// Deliveries leased to this process, waiting for one of its sending sessions: written already
/// leased by its advancers (`DirectLease`, which saves each email a claim transaction) or claimed
/// by its claimer. Sessions hold no database connection; this queue is how work reaches them.
///
/// The queue is bounded by what the sessions send in a quarter of the lease at their measured pace,
/// so what waits in it is sent well inside its lease: an advance or a claim reserves room first
/// and leases no more than it got. Each item remembers when its sendability (opt-out, pause, ended
/// enrollment) was last read from the database; sessions take only items checked within
/// `freshness`, and the claimer checks the others again (`takeUnchecked`). What waits a quarter of
/// its lease anyway (every session stuck, or the circuit open) is taken back by `takeStale` and
/// returned to `pending`. After `close` (shutdown) nothing is accepted; whoever holds leased
/// deliveries that no session will take gives them back.
final class Handoff: LeaseRoom {
    struct Item: Sendable {
        let delivery: ClaimedDelivery
        /// Taken before the advance or claim transaction began, so no later than the lease's own
        /// start (its `now()`): the lease is never thought younger than it is.
        let leaseStart: ContinuousClock.Instant
        /// When the database last said it may be sent (the lease's transaction, or a recheck).
        var checkedAt: ContinuousClock.Instant
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
        /// A session found items it may not send until they are checked again.
        var recheckWanted = false
    }

    /// The most the queue holds, whatever the pace.
    let capacity: Int
    private let senders: Int
    private let leaseSeconds: Int
    /// How long a check of an item's sendability stays good for a session to send it.
    let freshness: Duration
    private let state = Mutex(State())

    init(capacity: Int, senders: Int, leaseSeconds: Int, freshness: Duration = .seconds(1)) {
        self.capacity = capacity
        self.senders = senders
        self.leaseSeconds = leaseSeconds
        self.freshness = freshness
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
            state.items += deliveries.map { Item(delivery: $0, leaseStart: leaseStart, checkedAt: leaseStart) }
            return []
        }
    }

    /// Takes up to `limit` of the oldest queued deliveries checked within `freshness`; one checked
    /// longer ago stays for the claimer to check again (`recheckWanted` then says so).
    func take(upTo limit: Int) -> [Item] {
        let cutoff = ContinuousClock.now - freshness
        return state.withLock { state in
            // Scans only until it has `limit`: 256 sessions each taking one from a queue of a
            // thousand must not copy the whole queue under the lock every time.
            var takenAt = [Int]()
            var unchecked = false
            for index in state.items.indices {
                guard takenAt.count < limit else { break }
                if state.items[index].checkedAt >= cutoff {
                    takenAt.append(index)
                } else {
                    unchecked = true
                }
            }
            let taken = takenAt.map { state.items[$0] }
            for index in takenAt.reversed() { state.items.remove(at: index) }
            if unchecked && taken.count < limit { state.recheckWanted = true }
            return taken
        }
    }

    /// Takes the items last checked more than half of `freshness` ago: the claimer reads their
    /// sendability again and puts back those still sendable. Checking at half the age, not at the
    /// full one, keeps the queue fresh ahead of the sessions: when a round of slow sends ends
    /// (a relay that takes a second per message), what they take next was checked while they were
    /// sending, instead of every session waiting for one more query each round.
    func takeUnchecked() -> [Item] {
        let cutoff = ContinuousClock.now - freshness / 2
        return state.withLock { state in
            state.recheckWanted = false
            let unchecked = state.items.filter { $0.checkedAt < cutoff }
            guard !unchecked.isEmpty else { return [] }
            state.items.removeAll { $0.checkedAt < cutoff }
            return unchecked
        }
    }

    /// True when a session left items behind because their check was too old.
    var recheckWanted: Bool { state.withLock { $0.recheckWanted } }

    /// Puts items back at the front, checked at `checkedAt` (or as they were); once closed,
    /// `stop` has given the queue back already and their leases expire instead.
    func requeue(_ items: [Item], checkedAt: ContinuousClock.Instant? = nil) {
        guard !items.isEmpty else { return }
        state.withLock { state in
            guard !state.closed else { return }
            let items = checkedAt.map { at in items.map { Item(delivery: $0.delivery, leaseStart: $0.leaseStart, checkedAt: at) } } ?? items
            state.items.insert(contentsOf: items, at: 0)
        }
    }

    /// How many are queued.
    var count: Int { state.withLock { $0.items.count } }

    /// Takes every delivery queued since before `age` ago: no sender took it in time.
    func takeStale(olderThan age: Duration) -> [ClaimedDelivery] {
        let cutoff = ContinuousClock.now - age
        return state.withLock { state in
            let stale = state.items.filter { $0.leaseStart < cutoff }
            state.items.removeAll { $0.leaseStart < cutoff }
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
