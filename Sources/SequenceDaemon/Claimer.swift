import Foundation
import Logging
import Postgres
import SequenceStore

/// Keeps the sending sessions' queue fed, on one database connection of its own: it claims due
/// deliveries (retries, threaded emails, whatever the advancers wrote without leasing it) as the
/// queue has room, checks again the items that waited in the queue past half of `Handoff.freshness` (an
/// opt-out or pause committed meanwhile holds them back, as a claim would), and gives back to
/// `pending` what no session took within a quarter of its lease.
///
/// One claimer serves every session of the process, however many there are: sessions are not
/// database connections.
final class Claimer: Sendable {
    private let connection: ConfinedConnection
    private let outbox: LoopOwned<DeliveryOutbox>
    private let queue: Handoff
    private let breaker: CircuitBreaker
    private let sessionWake: WakeSignal
    private let batchSize: Int
    private let leaseTimeout: Int
    private let logger: Logger

    init(
        connection: ConfinedConnection, outbox: DeliveryOutbox, queue: Handoff, breaker: CircuitBreaker,
        sessionWake: WakeSignal, batchSize: Int, leaseTimeout: Int, logger: Logger
    ) {
        self.connection = connection
        self.outbox = LoopOwned(outbox)
        self.queue = queue
        self.breaker = breaker
        self.sessionWake = sessionWake
        self.batchSize = batchSize
        self.leaseTimeout = leaseTimeout
        self.logger = logger
    }

    /// One round; true when it should come back at once (a full claim left more waiting).
    func round() throws -> Bool {
        try giveBackStale()
        try recheck()
        return try claim()
    }

    /// Queued for a quarter of the lease and not taken: every session is stuck or the circuit is
    /// open. Back to pending, before the lease would make them unknown.
    private func giveBackStale() throws {
        let stale = queue.takeStale(olderThan: .seconds(leaseTimeout) / 4)
        guard !stale.isEmpty else { return }
        _ = try connection.runBlocking {
            try outbox.value.giveBack($0, stale, because: "no session took it within a quarter of its lease")
        }
        logger.warning("gave back \(stale.count) queued deliveries no session took within a quarter of their lease")
    }

    /// Reads again whether the items that waited past half their freshness may still be sent.
    private func recheck() throws {
        let unchecked = queue.takeUnchecked()
        guard !unchecked.isEmpty else { return }
        let checkStarted = ContinuousClock.now
        let sendable: Set<Int64>
        do {
            sendable = try connection.runBlocking { try outbox.value.stillSendable($0, unchecked.map(\.delivery)) }
        } catch {
            queue.requeue(unchecked)
            throw error
        }
        logger.trace("checked \(unchecked.count) queued deliveries again in \((ContinuousClock.now - checkStarted).inSeconds * 1000) ms")
        let heldBack = unchecked.filter { !sendable.contains($0.delivery.id) }
        queue.requeue(unchecked.filter { sendable.contains($0.delivery.id) }, checkedAt: checkStarted)
        if !heldBack.isEmpty {
            _ = try connection.runBlocking {
                try outbox.value.giveBack(
                    $0, heldBack.map(\.delivery), because: "its enrollment, address or sequence changed while it was queued")
            }
        }
        sessionWake.wake()
    }

    /// Claims as much as the queue has room for, when a claim is due (asked for, or a second since
    /// the last: retries and threaded emails are due in the database, not announced).
    private func claim() throws -> Bool {
        guard breaker.mode != .open, queue.claimDue(every: .seconds(1)) else { return false }
        let room = queue.reserve(upTo: batchSize)
        guard room > 0 else {
            queue.wantClaim()  // still wanted once sessions have made room
            return false
        }
        let leaseStart = ContinuousClock.now  // before the claim's now(), never after
        let claimed: ClaimedBatch
        do {
            claimed = try connection.runBlocking { try outbox.value.claim($0, limit: room, leaseSeconds: leaseTimeout) }
        } catch {
            queue.release(room)
            throw error
        }
        logger.trace("claimed \(claimed.count) deliveries in \((ContinuousClock.now - leaseStart).inSeconds * 1000) ms")
        let refused = queue.deliver(Array(claimed), reserved: room, leaseStart: leaseStart, othersPending: claimed.moreWaiting)
        if !refused.isEmpty {
            _ = try connection.runBlocking { try outbox.value.giveBack($0, refused, because: "the daemon stopped before sending it") }
        }
        if !claimed.isEmpty { sessionWake.wake() }
        return claimed.moreWaiting
    }
}
