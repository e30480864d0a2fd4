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
    /// Seconds one send took, smoothed over recent batches; nil until the first batch is sent.
    private var secondsPerSend: Double?

    init(
        worker: String, connection: ConfinedConnection, transport: any MailTransport, outbox: DeliveryOutbox,
        builder: MessageBuilder, breaker: CircuitBreaker, leaseTimeout: Int, batchSeconds: Double, metrics: DaemonMetrics,
        logger: Logger
    ) {
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

    /// The most deliveries one batch claims. Batches of up to 100 cut commits per email further,
    /// but in two loaded full-suite runs the four-replica race then saw whole batches of 100 leases
    /// expire unsettled (null transport, 30 s lease; 1,100 and 2,000 extra attempts, every one
    /// explained by an `unknown` attempt) and the cause is not found yet. Until it is, 10.
    static let maximumBatch = 10

    /// Transports that write locally, whose sends cannot stall on a remote server.
    static let localTransports: Set<String> = ["null", "file"]

    /// The claim size: the first batch is small (the transport's pace is unknown), later ones hold
    /// as many sends as fit in `batchSeconds`, up to `limit` and `maximumBatch`.
    func batchSize(limit: Int) -> Int {
        let limit = min(limit, Self.maximumBatch)
        // Network transports keep batches of 10: their sends can stall past the timeout, and the
        // circuit breaker weighs a batch's faults together (larger batches opened it on one stall).
        guard Self.localTransports.contains(transport.name), let secondsPerSend else { return min(limit, 10) }
        let fitting = batchSeconds / max(secondsPerSend, 1e-6)
        return max(1, min(limit, Int(fitting.rounded(.down))))
    }

    /// Sends one batch of at most `limit`; nil when there was nothing to send (or the circuit is open).
    func sendBatch(limit: Int, wake: WakeSignal) throws -> SettleSummary? {
        let permit = breaker.permit(wanted: batchSize(limit: limit))
        guard permit.count > 0 else {
            wake.sleep(permit.waitSeconds)
            return nil
        }
        let claimStarted = ContinuousClock.now
        let claimed: [ClaimedDelivery]
        do {
            claimed = try connection.runBlocking { try outbox.claim($0, limit: permit.count, leaseSeconds: leaseTimeout) }
        } catch {
            breaker.cancelProbe()
            throw error
        }
        guard !claimed.isEmpty else {
            breaker.cancelProbe()
            return nil
        }
        // Sends run one after another, so the last of a batch waits for all before it. Past half
        // the lease, the rest are given back unsent rather than started late: a send still running
        // when the lease ends would be taken for lost, and sent again by another sender.
        let giveBackAfter = claimStarted + .seconds(leaseTimeout) / 2
        let started = DispatchTime.now().uptimeNanoseconds
        let results = claimed.map { delivery in
            guard ContinuousClock.now < giveBackAfter else { return notSent(delivery) }
            let result = metrics.time(metrics.deliveryDuration) { send(delivery) }
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
        let summary = try settle(results)
        breaker.record(sent: summary.sent, faults: summary.transportFaults)
        return summary
    }

    /// A claimed delivery handed back without a send: its attempt row is closed as `skipped`.
    private func notSent(_ delivery: ClaimedDelivery) -> SendResult {
        SendResult(
            delivery: delivery, event: .notSent(token: delivery.token), attemptOutcome: "skipped",
            reply: "not sent: the batch had used half its lease", messageID: nil)
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

    /// Settles the batch, retrying through database outages for as long as the leases last: an
    /// outcome that is lost here would make a sent message look unknown and be sent again.
    private func settle(_ results: [SendResult]) throws -> SettleSummary {
        let deadline = Date(timeIntervalSinceNow: Double(leaseTimeout))
        var delay = 0.25
        while true {
            do {
                return try connection.runBlocking { try outbox.settle($0, results: results) }
            } catch let error as PostgresError where error.isConnectionError && Date() < deadline {
                logger.warning("settling \(results.count) sends: \(WorkerLoop.describe(error)); retrying in \(delay)s")
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 5)
            }
        }
    }
}
