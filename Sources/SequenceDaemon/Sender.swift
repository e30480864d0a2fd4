import CoreMetrics
import Delivery
import Foundation
import Logging
import Postgres
import SequenceEngine
import SequenceStore

/// One sending thread's work: claim deliveries with a lease, compose and hand each to the
/// transport, then settle all outcomes in one transaction. The transport call happens outside
/// any transaction, so a slow mail server never holds database locks.
///
/// Each claim and each settle is a commit, and commits are what an email costs the database, so a
/// batch is as large as time allows: sending it must take well under the lease, or a slow
/// transport would let leases expire mid-batch, and under the shutdown grace, or SIGTERM would
/// wait for it (`batchSeconds`: a quarter of the smaller, at most a second, so one stalling
/// recipient holds up few others). The pace is measured as the sender goes.
final class Sender: @unchecked Sendable {
    // Used only by its own WorkerLoop thread.
    private let worker: String
    private let connection: ConfinedConnection
    private let transport: any MailTransport
    private let outbox: DeliveryOutbox
    private let builder: MessageBuilder
    private let breaker: CircuitBreaker
    private let leaseTimeout: Int
    /// How long sending one batch may take, by the measured pace.
    private let batchSeconds: Double
    private let metrics: DaemonMetrics
    private let logger: Logger
    /// Deliveries this process's advancers leased for its senders.
    private let handoff: Handoff
    /// Seconds one send took, smoothed over recent batches; nil until the first batch is sent.
    private var secondsPerSend: Double?
    /// A full batch's outcomes, sent and waiting to be settled with the next claim.
    private var unsettled: Unsettled?

    private struct Unsettled {
        let results: [SendResult]
        let claimedAt: ContinuousClock.Instant
    }

    init(
        worker: String, connection: ConfinedConnection, transport: any MailTransport, outbox: DeliveryOutbox,
        builder: MessageBuilder, breaker: CircuitBreaker, leaseTimeout: Int, batchSeconds: Double, metrics: DaemonMetrics,
        handoff: Handoff, logger: Logger
    ) {
        self.handoff = handoff
        self.batchSeconds = batchSeconds
        self.metrics = metrics
        self.worker = worker
        self.connection = connection
        self.transport = transport
        self.outbox = outbox
        self.builder = builder
        self.breaker = breaker
        self.leaseTimeout = leaseTimeout
        self.logger = logger
    }

    /// The most deliveries one batch claims. Commits are what an email costs the database, and a
    /// batch of 100 pays one commit for all of them.
    ///
    /// Session 2 capped it at 10 after two loaded full-suite runs where the four-replica race saw
    /// whole batches of 100 expire unsettled, without an error in sight. A settle now retries
    /// through deadlocks and lock timeouts as well as lost connections, logs an error naming the
    /// batch when it gives up, and warns when a batch is settled past half its lease, so a
    /// recurrence explains itself in the daemon's log (the race test prints it).
    static let maximumBatch = 100

    /// Transports that write locally, whose sends cannot stall on a remote server.
    static let localTransports: Set<String> = ["null", "file"]

    /// The claim size: the first batch is small (the transport's pace is unknown), later ones hold
    /// as many sends as fit in `batchSeconds`, up to `limit` and `maximumBatch`: a local transport
    /// or a nearby mail server gets batches of 100, a server that takes 100 ms per message 10, and
    /// one that stalls shrinks the next batch at once.
    func batchSize(limit: Int) -> Int {
        let limit = min(limit, Self.maximumBatch)
        guard let secondsPerSend else { return min(limit, 10) }
        let fitting = batchSeconds / max(secondsPerSend, 1e-6)
        return max(1, min(limit, Int(fitting.rounded(.down))))
    }

    /// What one round of sending did.
    struct Round {
        /// What the round settled: nil when nothing (no work, the circuit is open, or its batch
        /// waits to be settled with the next claim).
        var settled: SettleSummary?
        /// Work was done and more is waiting: the loop comes back at once instead of sleeping.
        var comeBack: Bool
    }

    /// Sends one batch of at most `limit`: the deliveries this process's advancers leased for its
    /// senders (`Handoff`) when there are any, else a claim from the database. With a local
    /// transport, when more deliveries are waiting the batch's outcomes are settled by the
    /// transaction that claims the next one, so a busy sender commits once per batch; the last
    /// batch of a backlog is settled at once, so nobody waits for its confirmation, and the sender
    /// then sleeps until woken (a queued batch, a NOTIFY, the poll) rather than committing an empty
    /// claim to learn that nothing is left.
    func sendBatch(limit: Int, wake: WakeSignal) throws -> Round {
        let permit = breaker.permit(wanted: batchSize(limit: limit))
        guard permit.count > 0 else {
            let settled = try flush()
            if settled == nil { wake.sleep(permit.waitSeconds) }
            return Round(settled: settled, comeBack: settled != nil)
        }
        // The database is claimed from at least once a second even while advancers keep the queue
        // fed: retries and threaded emails are due there, and they must not wait for a lull.
        if !handoff.claimDue(every: .seconds(1)) {
            let handed = handoff.take(upTo: permit.count)
            if !handed.isEmpty { return try sendHanded(handed, wake: wake) }
        }
        return try sendClaimed(permit.count, wake: wake)
    }

    /// Sends deliveries an advancer leased in its own transaction, and settles them at once (with
    /// a batch that was waiting for a claim, if any): there is no claim to settle them with.
    private func sendHanded(_ handed: [Handoff.Item], wake: WakeSignal) throws -> Round {
        if !handoff.isEmpty { wake.wakeOne() }
        let leaseStart = handed[0].leaseStart  // the oldest's
        // A delivery checked by its advance and sent within a batch's time is as fresh as a
        // claimed one (a claimed batch is sent over up to `batchSeconds` after its checks). One
        // that waited longer is checked again, so an opt-out or pause committed meanwhile holds
        // it back as a claim would; reading it for every batch cost 7% of the email rate.
        let stale = ContinuousClock.now - .milliseconds(Int(batchSeconds * 1000))
        let recheck = handed.filter { $0.leaseStart < stale }.map(\.delivery)
        let sendable: Set<Int64>
        do {
            sendable = recheck.isEmpty ? [] : try connection.runBlocking { try outbox.stillSendable($0, recheck) }
        } catch {
            // Nothing was sent: they wait in the queue again (or for the sweep), and a probe the
            // breaker let through must not stay in flight for ever.
            handoff.requeue(handed)
            breaker.cancelProbe()
            throw error
        }
        let heldBack = Set(recheck.map(\.id)).subtracting(sendable)
        let deliveries = handed.map(\.delivery)
        let results = deliveries.filter { heldBack.contains($0.id) }.map {
            SendResult.givenBack($0, because: "its enrollment, address or sequence changed while it was queued")
        } + sendAll(deliveries.filter { !heldBack.contains($0.id) }, leaseStartedAt: leaseStart)
        let waiting = unsettled
        unsettled = Unsettled(results: (waiting?.results ?? []) + results, claimedAt: waiting?.claimedAt ?? leaseStart)
        let settled = try flush()
        let gaveBack = results.contains { $0.attemptOutcome == "skipped" }
        return Round(settled: settled, comeBack: !handoff.isEmpty || gaveBack)
    }

    /// Claims a batch from the database (settling the one waiting, if any, in the same transaction)
    /// and sends it.
    private func sendClaimed(_ limit: Int, wake: WakeSignal) throws -> Round {
        let claimStarted = ContinuousClock.now
        let settled: SettleSummary?
        let claimed: ClaimedBatch
        do {
            (settled, claimed) = try claimSettlingPrevious(limit: limit)
        } catch {
            breaker.cancelProbe()
            throw error
        }
        guard !claimed.isEmpty else {
            breaker.cancelProbe()
            // Every row it took was cancelled (suppressed, or its enrollment ended) and more wait;
            // or advancers queued deliveries meanwhile.
            return Round(settled: settled, comeBack: claimed.moreWaiting || !handoff.isEmpty)
        }
        // More is waiting than this batch took: another sender joins in, from the database.
        if claimed.moreWaiting {
            handoff.wantClaim()
            wake.wakeOne()
        }
        let results = sendAll(claimed, leaseStartedAt: claimStarted)
        unsettled = Unsettled(results: results, claimedAt: claimStarted)
        // Only local sends are fast enough to wait for the next batch: a remote one could stall
        // it for half a lease, and a crash meanwhile would turn a whole sent batch into unknowns.
        let waitsForNextClaim = claimed.moreWaiting && Self.localTransports.contains(transport.name)
        if waitsForNextClaim && !wake.isStopped { return Round(settled: settled, comeBack: true) }
        let now = try flush()
        // Deliveries given back unsent are due again at once (the breaker still gates a fault).
        let gaveBack = results.contains { $0.attemptOutcome == "skipped" }
        return Round(
            settled: settled.map { $0.adding(now) } ?? now, comeBack: claimed.moreWaiting || gaveBack || !handoff.isEmpty)
    }

    /// Hands a batch to the transport, one after another, and weighs it for the pace and the
    /// circuit breaker.
    ///
    /// Sends run one after another, so the last of a batch waits for all before it. Past half
    /// the lease, the rest are given back unsent rather than started late: a send still running
    /// when the lease ends would be taken for lost, and sent again by another sender.
    /// After a transport fault (refused, TLS, AUTH, no greeting) the rest are given back too:
    /// they would meet the same fault, and the circuit breaker decides when to try again.
    private func sendAll(_ batch: some Collection<ClaimedDelivery>, leaseStartedAt leaseStart: ContinuousClock.Instant) -> [SendResult] {
        let giveBackAfter = leaseStart + .seconds(leaseTimeout) / 2
        var transportFailed = false
        let started = DispatchTime.now().uptimeNanoseconds
        let results = batch.map { delivery in
            guard ContinuousClock.now < giveBackAfter else { return SendResult.givenBack(delivery, because: "the batch had used half its lease") }
            guard !transportFailed else { return SendResult.givenBack(delivery, because: "the transport failed earlier in the batch") }
            let result = metrics.time(metrics.deliveryDuration) { send(delivery) }
            if result.attemptOutcome == "transport_fault" { transportFailed = true }
            metrics.attempts.increment()
            metrics.delivery(transport: transport.name, outcome: result.attemptOutcome).increment()
            return result
        }
        transport.finishBatch()
        let handed = max(1, results.count(where: { $0.attemptOutcome != "skipped" }))
        let pace = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 / Double(handed)
        // A slow batch counts at once (the next claim must shrink before leases are at risk); a
        // fast one raises the size gradually.
        secondsPerSend = secondsPerSend.map { pace > $0 ? pace : 0.7 * $0 + 0.3 * pace } ?? pace
        if let secondsPerSend { handoff.notePace(secondsPerSend) }
        // The breaker weighs this batch before the next permit, whenever its outcomes are written.
        breaker.record(
            sent: results.count { $0.attemptOutcome == "sent" },
            faults: results.compactMap { $0.attemptOutcome == "transport_fault" ? $0.reply ?? "transport fault" : nil })
        return results
    }

    /// Settles the batch still waiting for the next claim, if any (the loop calls it on exit).
    @discardableResult
    func flush() throws -> SettleSummary? {
        guard let batch = unsettled else { return nil }
        unsettled = nil
        return try settling(batch) { try outbox.settle($0, results: batch.results) }
    }

    /// Claims the next batch, in the same transaction that settles the previous one when it waits.
    private func claimSettlingPrevious(limit: Int) throws -> (SettleSummary?, ClaimedBatch) {
        guard let batch = unsettled else {
            return (nil, try connection.runBlocking { try outbox.claim($0, limit: limit, leaseSeconds: leaseTimeout) })
        }
        unsettled = nil
        do {
            return try settling(batch, reportingFailure: false) {
                try outbox.settleAndClaim($0, results: batch.results, limit: limit, leaseSeconds: leaseTimeout)
            }
        } catch let error as PostgresError where error.isAboutTheData {
            // The claim's part failed on a row; the outcomes go in on their own, and the error is
            // the next claim's to report.
            logger.warning("claiming with a settle: \(WorkerLoop.describe(error)); settling alone", metadata: WorkerLoop.metadata(error))
            return (try settling(batch) { try outbox.settle($0, results: batch.results) }, ClaimedBatch(moreWaiting: true))
        } catch {
            reportUnsettled(batch, error)
            throw error
        }
    }

    /// Hands one delivery to the transport and translates the outcome into the delivery machine's event.
    private func send(_ delivery: ClaimedDelivery) -> SendResult {
        let jitter = Double.random(in: 0...1)
        guard delivery.kind == "email" else {
            let reason = "webhook steps are not supported by this build"
            return SendResult(
                delivery: delivery, event: .permanentFailure(reason: reason, isBounce: false, token: delivery.token),
                attemptOutcome: "permanent_failure", reply: reason, messageID: nil)
        }
        let message = builder.compose(delivery)
        let token = delivery.token
        let (event, outcome, reply): (DeliveryEvent, String, String?) =
            switch transport.send(message) {
            case .sent(let providerID):
                (.succeeded(providerID: providerID, token: token), "sent", nil)
            case .temporaryFailure(let reason, let retryAfter):
                (.temporaryFailure(reason: reason, retryAfter: retryAfter.map { Double($0.components.seconds) }, token: token, jitter: jitter),
                 "temporary_failure", reason)
            case .permanentFailure(let reason, let isBounce):
                (.permanentFailure(reason: reason, isBounce: isBounce, token: token), isBounce ? "bounce" : "permanent_failure", reason)
            case .transportFault(let reason):
                (.transportFault(reason: reason, token: token, jitter: jitter), "transport_fault", reason)
            case .ambiguous(let reason):
                (.ambiguous(reason: reason, token: token, jitter: jitter), "unknown", reason)
            }
        return SendResult(delivery: delivery, event: event, attemptOutcome: outcome, reply: reply, messageID: message.messageID)
    }

    /// Runs `body`, which records `batch`'s outcomes, retrying through database outages, deadlocks
    /// and lock timeouts for as long as the leases last: an outcome that is lost here would make a
    /// sent message look unknown and be sent again. Errors about the data, and the shutdown's
    /// cancel, end it.
    private func settling<T>(_ batch: Unsettled, reportingFailure: Bool = true, _ body: (Connection) throws -> T) throws -> T {
        let deadline = Date(timeIntervalSinceNow: Double(leaseTimeout))
        var delay = 0.25
        while true {
            do {
                let value = try connection.runBlocking(body)
                warnIfLate(batch)
                return value
            } catch let error as PostgresError where Self.isWorthRetrying(error) && Date() < deadline {
                logger.warning(
                    "settling \(batch.results.count) sends: \(WorkerLoop.describe(error)); retrying in \(delay)s",
                    metadata: WorkerLoop.metadata(error))
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 5)
            } catch {
                if reportingFailure { reportUnsettled(batch, error) }
                throw error
            }
        }
    }

    /// The batch's outcomes are lost: say so, since its sent messages will be sent again.
    private func reportUnsettled(_ batch: Unsettled, _ error: any Error) {
        let sent = batch.results.count { $0.attemptOutcome == "sent" }
        logger.error(
            """
            settling \(batch.results.count) sends (\(sent) sent) failed: \(WorkerLoop.describe(error)); \
            their leases will expire and the rescuer will mark them unknown
            """, metadata: WorkerLoop.metadata(error))
    }

    /// Past half the lease, another sender may soon take these for lost: say so, with the figures.
    private func warnIfLate(_ batch: Unsettled) {
        let held = (ContinuousClock.now - batch.claimedAt).components
        let seconds = Double(held.seconds) + Double(held.attoseconds) / 1e18
        guard seconds > Double(leaseTimeout) / 2 else { return }
        logger.warning(
            "a batch of \(batch.results.count) took \(String(format: "%.1f", seconds))s from claim to settle, against a lease of \(leaseTimeout)s")
    }

    /// Failures that say nothing about the batch itself: the same settle is expected to succeed.
    static func isWorthRetrying(_ error: PostgresError) -> Bool {
        error.isConnectionError || error.isTransientConflict || error.isLockTimeout
    }
}
