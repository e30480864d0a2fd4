import CoreMetrics
import Delivery
import Foundation
import Logging
import Mail
import SequenceEngine
import SequenceStore
import Synchronization

/// One transport session (`delivery.concurrency` of them per process): it takes leased deliveries
/// from the process's queue, hands each to its own transport (an SMTP connection, an HTTP
/// keep-alive connection, the outbox directory), and waits until the outcome is committed before it
/// takes the next one. It holds no database connection: the claimer fills the queue and the
/// settle writer (`GroupCommit`) records outcomes for every session in shared commits.
///
/// On the network transports a session takes one message at a time, so at most one message per
/// session is ever on the wire without a recorded outcome: a SIGKILL can put at most the sessions
/// in flight on the wire twice, and while outcomes cannot be recorded (the database is gone)
/// nothing new is sent. The local transports (`file`, `null`) cannot duplicate anything a receiver
/// sees (the file transport rewrites the same file), so their sessions take a batch sized to the
/// measured pace and commit it at once, which keeps their rate.
final class SendingSession: Sendable {
    struct Dependencies: Sendable {
        let queue: Handoff
        let settles: GroupCommit<SendResult>
        let breaker: CircuitBreaker
        let limiter: RateLimiter
        let builder: MessageBuilder
        let metrics: DaemonMetrics
        let counters: DaemonCounters
        /// Woken when the queue runs low or holds items to check again.
        let claimWake: WakeSignal
        /// Woken when a session leaves items in the queue for others.
        let sessionWake: WakeSignal
        /// Woken when messages went out (their enrollments' next steps may be due).
        let advanceWake: WakeSignal
        let leaseTimeout: Int
        /// How long sending one batch may take on a local transport (its size follows the pace).
        let batchSeconds: Double
        let batchLimit: Int
        let logger: Logger
    }

    let name: String
    private let transport: any MailTransport
    /// Makes webhook steps' requests; nil where none may run (tests of the email path).
    private let webhooks: WebhookSender?
    private let deps: Dependencies
    /// Seconds one send took, smoothed; nil until the first round.
    private let secondsPerSend = Mutex<Double?>(nil)

    /// Transports that write locally, whose sends cannot stall on a remote server or reach a
    /// receiver twice.
    static let localTransports: Set<String> = ["null", "file"]

    init(name: String, transport: any MailTransport, webhooks: WebhookSender? = nil, dependencies: Dependencies) {
        self.name = name
        self.transport = transport
        self.webhooks = webhooks
        self.deps = dependencies
    }

    private var isLocal: Bool { Self.localTransports.contains(transport.name) }

    /// How many one round takes: one message on a network transport; on a local one, as many as
    /// fit in `batchSeconds` at the measured pace (10 before the first measurement).
    func takeSize() -> Int {
        guard isLocal else { return 1 }
        let limit = max(1, deps.batchLimit)
        guard let pace = secondsPerSend.withLock({ $0 }) else { return min(limit, 10) }
        return max(1, min(limit, Int((deps.batchSeconds / max(pace, 1e-6)).rounded(.down))))
    }

    /// One round: take, send, wait for the commit. Returns true when it should come back at once
    /// (it did work, or waited for a reason that has passed), false to wait for a wake.
    func round(stopping: WakeSignal) -> Bool {
        // Outcomes cannot be recorded: nothing new goes to the relay until they can (invariant 8).
        guard deps.settles.isWritable else {
            _ = deps.settles.waitUntilWritable(timeout: 0.5)
            return !stopping.isStopped
        }
        let permit = deps.breaker.permit(wanted: takeSize())
        guard permit.count > 0 else {
            stopping.sleep(permit.waitSeconds)
            return !stopping.isStopped
        }
        let items = deps.queue.take(upTo: permit.count)
        if deps.queue.recheckWanted || deps.queue.isEmpty {
            if deps.queue.isEmpty { deps.queue.wantClaim() }
            deps.claimWake.wakeOne()
        }
        guard !items.isEmpty else {
            deps.breaker.cancelProbe()
            return false
        }
        if !deps.queue.isEmpty { deps.sessionWake.wakeOne() }
        // A webhook request reaches a receiver whatever the transport: its outcome is committed
        // before anything after it is sent, as a network transport's message would be.
        for part in Self.committedParts(items) {
            let results = send(part, stopping: stopping)
            record(results, leaseStart: part.map(\.leaseStart).min()!)
        }
        return true
    }

    /// `items` cut after each webhook step: the parts a round commits one after another.
    static func committedParts(_ items: [Handoff.Item]) -> [[Handoff.Item]] {
        var parts = [[Handoff.Item]]()
        var current = [Handoff.Item]()
        for item in items {
            current.append(item)
            if item.delivery.kind == .webhook {
                parts.append(current)
                current = []
            }
        }
        if !current.isEmpty { parts.append(current) }
        return parts
    }

    /// Hands the items to the transport one after another and weighs the round for the pace, the
    /// circuit breaker and the rate limiter. An item is given back unsent when its lease is half
    /// used (a send still running when it ends would be taken for lost and sent again), after a
    /// transport fault or a throttle earlier in the round, or when the daemon is stopping while it
    /// waits for its rate slot.
    private func send(_ items: [Handoff.Item], stopping: WakeSignal) -> [SendResult] {
        let started = ContinuousClock.now
        var stopReason: String?
        let results = items.map { item -> SendResult in
            if let stopReason { return .givenBack(item.delivery, because: stopReason) }
            // `delivery.rate_limit` is the relay's quota: webhook requests do not count against it.
            let slot = item.delivery.kind == .email ? deps.limiter.reserve() : .now
            if slot > .now {
                stopping.sleep((slot - .now).inSeconds)
                if stopping.isStopped { return .givenBack(item.delivery, because: "the daemon stopped before sending it") }
            }
            guard ContinuousClock.now < item.leaseStart + .seconds(deps.leaseTimeout) / 2 else {
                return .givenBack(item.delivery, because: "half its lease was used before a session was free")
            }
            let result = deps.metrics.time(deps.metrics.deliveryDuration) {
                Self.attempt(item.delivery, transport: transport, builder: deps.builder, webhooks: webhooks)
            }
            deps.metrics.attempts.increment()
            deps.metrics.delivery(transport: transport.name, outcome: result.attemptOutcome.rawValue).increment()
            switch result.attemptOutcome {
            case .throttled:
                let cap = deps.limiter.throttled(retryAfter: result.retryAfter)
                deps.logger.warning("the relay asked to slow down (\(result.reply ?? "")); sending at most \(String(format: "%.1f", cap)) messages/s for now")
                stopReason = "the relay asked to slow down earlier in the round"
            case .transportFault:
                deps.limiter.sent()
                stopReason = "the transport failed earlier in the round"
            case .sent, .temporaryFailure, .permanentFailure, .bounce, .unknown, .skipped:
                if item.delivery.kind == .email { deps.limiter.sent() }
            }
            return result
        }
        transport.finishBatch()
        let handed = max(1, results.count { $0.attemptOutcome != .skipped })
        let pace = (ContinuousClock.now - started).inSeconds / Double(handed)
        // A slow round counts at once (the queue must shrink before leases are at risk); a fast
        // one lowers the figure gradually.
        let smoothed = secondsPerSend.withLock { current in
            let next = current.map { pace > $0 ? pace : 0.7 * $0 + 0.3 * pace } ?? pace
            current = next
            return next
        }
        deps.queue.notePace(smoothed)
        deps.breaker.record(
            sent: results.count { $0.attemptOutcome == .sent },
            faults: results.compactMap { $0.attemptOutcome == .transportFault ? $0.reply ?? "transport fault" : nil })
        return results
    }

    /// Waits until the round's outcomes are committed. If they cannot be (the database stayed away
    /// past the lease), the sends they describe will be rescued as unknown: say so.
    private func record(_ results: [SendResult], leaseStart: ContinuousClock.Instant) {
        do {
            try deps.settles.commit(results, deadline: leaseStart + .seconds(deps.leaseTimeout))
            let sent = results.count { $0.attemptOutcome == .sent }
            deps.counters.sent.add(sent, ordering: .relaxed)
            deps.counters.failedDeliveries.add(
                results.count { $0.attemptOutcome == .permanentFailure || $0.attemptOutcome == .bounce }, ordering: .relaxed)
            if sent > 0 { deps.advanceWake.wakeOne() }
            // Given back unsent: due again at once, for a session or another daemon.
            if results.contains(where: { $0.attemptOutcome == .skipped }) { deps.claimWake.wakeOne() }
        } catch {
            let sent = results.count { $0.attemptOutcome == .sent }
            deps.logger.error(
                """
                \(name): recording \(results.count) outcomes (\(sent) sent) failed: \(WorkerLoop.describe(error)); \
                their leases will expire and the rescuer will mark them unknown
                """, metadata: WorkerLoop.metadata(error))
        }
    }

    /// Hands one delivery to the transport (an email) or makes its request (a webhook step) and
    /// translates the outcome into the delivery machine's event.
    static func attempt(
        _ delivery: ClaimedDelivery, transport: any MailTransport, builder: MessageBuilder, webhooks: WebhookSender?
    ) -> SendResult {
        switch delivery.kind {
        case .webhook:
            guard let webhooks else {
                return WebhookSender.result(
                    delivery, outcome: .temporaryFailure(reason: "no webhook secret: configure webhook.secret or run `seqd migrate`", retryAfter: nil),
                    jitter: Double.random(in: 0...1))
            }
            return webhooks.send(delivery)
        case .email:
            let message = builder.compose(delivery)
            let (event, outcome, reply) = event(for: transport.send(message), token: delivery.token, jitter: Double.random(in: 0...1))
            return SendResult(delivery: delivery, event: event, attemptOutcome: outcome, reply: reply, messageID: message.messageID)
        }
    }

    /// The delivery machine's event, the attempt's outcome and the reply for what a send came to.
    static func event(for outcome: TransportOutcome, token: Int64, jitter: Double) -> (DeliveryEvent, AttemptOutcome, String?) {
        let seconds = { (duration: Duration?) in duration.map { Double($0.components.seconds) } }
        return switch outcome {
        case .sent(let providerID):
            (.succeeded(providerID: providerID, token: token), .sent, nil)
        case .temporaryFailure(let reason, let retryAfter):
            (.temporaryFailure(reason: reason, retryAfter: seconds(retryAfter), token: token, jitter: jitter), .temporaryFailure, reason)
        case .permanentFailure(let reason, let isBounce):
            (.permanentFailure(reason: reason, isBounce: isBounce, token: token), isBounce ? .bounce : .permanentFailure, reason)
        case .transportFault(let reason):
            (.transportFault(reason: reason, token: token, jitter: jitter), .transportFault, reason)
        case .throttled(let reason, let retryAfter):
            (.throttled(reason: reason, retryAfter: seconds(retryAfter), token: token, jitter: jitter), .throttled, reason)
        case .ambiguous(let reason):
            (.ambiguous(reason: reason, token: token, jitter: jitter), .unknown, reason)
        }
    }
}

extension SendResult {
    /// The relay's requested wait, for a throttled attempt.
    var retryAfter: Duration? {
        guard case .throttled(_, let seconds?, _, _) = event else { return nil }
        return .seconds(seconds)
    }
}
