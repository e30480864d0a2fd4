import CoreMetrics
import Delivery
import Foundation
import Logging
import Postgres
import SequenceEngine
import SequenceStore

/// `event_webhook.*`: where enrollment events are posted and which.
public struct EventWebhookSettings: Sendable, Equatable {
    /// The operator's own endpoint (private addresses allowed: it is not a sequence author's URL).
    public var url: String
    /// The types the outbox trigger enqueues.
    public var types: [EventWebhookType]

    public init(url: String, types: [EventWebhookType]) {
        self.url = url
        self.types = types
    }
}

/// When the sender tries again. Pure: the driver passes the jitter.
///
/// Two clocks: a failed row's own next attempt (`delivery.backoff` doubling per attempt of that
/// row, jittered ±20 %), and the sender's pause after consecutive failures (the same curve over
/// the failures in a row), during which it claims nothing. The pause is what keeps a receiver
/// that is down from getting one request per pending event: it gets one per step of the curve.
/// Both are capped at five minutes, not at the email backoff's hour: however long the outage,
/// everything that waited is posted within five minutes of the receiver's return, which is what
/// its operator waits for; the load on a receiver that is down stays one request per five
/// minutes per replica. A receiver that answers with `Retry-After` is up and says when to come
/// back: that wait is followed as given (up to an hour) instead of the curve, which only guesses
/// for a receiver that does not answer.
struct EventWebhookBackoff: Sendable {
    let policy: DeliveryPolicy
    static let cap: TimeInterval = 300

    /// The wait after the `attempt`-th failure (of a row, or in a row).
    func delay(afterFailure attempt: Int, retryAfter: TimeInterval?, jitter: Double) -> TimeInterval {
        if let retryAfter { return min(max(retryAfter, 0), DeliveryPolicy.backoffCap) }
        return min(policy.retryDelay(afterAttempt: attempt, jitter: jitter), Self.cap)
    }
}

/// What one post came to, for the outbox.
enum EventWebhookOutcome: Equatable {
    case delivered
    /// Anything else is retried, a refusal (4xx) included: the receiver is the operator's own
    /// service, and an event it cannot take yet is one it will want once fixed.
    case retry(reason: String, retryAfter: TimeInterval?)

    init(_ result: WebhookResult, now: Date) {
        switch result.outcome(now: now) {
        case .sent:
            self = .delivered
        case .temporaryFailure(let reason, let retryAfter), .throttled(let reason, let retryAfter):
            self = .retry(reason: reason, retryAfter: retryAfter.map { $0.inSeconds })
        case .permanentFailure(let reason, _), .transportFault(let reason), .ambiguous(let reason):
            self = .retry(reason: reason, retryAfter: nil)
        }
    }
}

/// Posts the event webhook outbox: claims due rows on the maintenance connection (a short
/// transaction, `FOR UPDATE SKIP LOCKED`, so any number of replicas share the work), posts each
/// outside any transaction, and records each outcome as it comes. At least once: a row is marked
/// delivered only after a 2xx; a sender that dies mid-post leaves its rows to come due again when
/// their lease runs out. Owned by one worker loop (its state is the loop's).
final class EventWebhookSender {
    /// Rows claimed per round.
    static let batchSize = 50
    /// Per request: connecting, sending and the whole answer.
    static let requestTimeout: TimeInterval = 10
    /// How long a claim holds its rows. The sender starts no post once half of it has gone (as
    /// sessions do with deliveries), so a lease never runs out under a live sender, and a round
    /// ends within 40 s however slow the receiver: well inside the heartbeat the systemd watchdog
    /// and `/healthz` read (`Daemon.tickTolerance`).
    static let leaseSeconds = 60
    /// How often the pending gauges are recomputed (a count over the rows not delivered).
    static let gaugeInterval: TimeInterval = 10

    private let settings: EventWebhookSettings
    private let secret: String
    private let connection: ConfinedConnection
    private let client = WebhookClient(allowPrivateNetworks: true)
    private let backoff: EventWebhookBackoff
    private let metrics: DaemonMetrics
    private let logger: Logger
    private var failuresInARow = 0
    private var pausedUntil: ContinuousClock.Instant?
    private var gaugesAt: ContinuousClock.Instant?

    init(
        settings: EventWebhookSettings, secret: String, connection: ConfinedConnection, policy: DeliveryPolicy,
        metrics: DaemonMetrics, logger: Logger
    ) {
        self.settings = settings
        self.secret = secret
        self.connection = connection
        self.backoff = EventWebhookBackoff(policy: policy)
        self.metrics = metrics
        self.logger = logger
    }

    /// One round: claims a batch and posts it. True when it posted a full batch (more may be due);
    /// false when it found nothing, is pausing after a failure, or failed now.
    func round(stopping: WakeSignal) throws -> Bool {
        try refreshGauges()
        if let pausedUntil, ContinuousClock.now < pausedUntil { return false }
        let posts = try connection.runBlocking {
            try EventWebhookOutbox.claim($0, limit: Self.batchSize, leaseSeconds: Self.leaseSeconds)
        }
        guard !posts.isEmpty else { return false }
        let started = ContinuousClock.now
        let lastStart = Duration.seconds(Self.leaseSeconds / 2)
        for (index, post) in posts.enumerated() {
            if stopping.isStopped || ContinuousClock.now - started > lastStart {
                // Unposted: due again at once, for this process's next round or another replica.
                try connection.runBlocking { try EventWebhookOutbox.giveBack($0, ids: posts[index...].map(\.id), afterSeconds: 0) }
                return true
            }
            let now = Date()
            let result = client.perform(request(post, at: now))
            switch EventWebhookOutcome(result, now: Date()) {
            case .delivered:
                try connection.runBlocking { try EventWebhookOutbox.markDelivered($0, id: post.id) }
                metrics.eventWebhook(outcome: "delivered").increment()
                if failuresInARow > 0 { logger.notice("event webhook: the receiver answers again; posting what waited") }
                failuresInARow = 0
                pausedUntil = nil
            case .retry(let reason, let retryAfter):
                failuresInARow += 1
                metrics.eventWebhook(outcome: "failed").increment()
                let rowDelay = backoff.delay(afterFailure: post.attempts + 1, retryAfter: retryAfter, jitter: .random(in: 0...1))
                let pause = backoff.delay(afterFailure: failuresInARow, retryAfter: retryAfter, jitter: .random(in: 0...1))
                // The rest of the batch waits out the pause too (no attempt spent), so other
                // replicas do not take it up at once either.
                try connection.runBlocking { connection in
                    try EventWebhookOutbox.markFailed(connection, id: post.id, reason: reason, retryInSeconds: rowDelay)
                    try EventWebhookOutbox.giveBack(connection, ids: posts[(index + 1)...].map(\.id), afterSeconds: pause)
                }
                pausedUntil = .now + .seconds(pause)
                // The first failure and then every tenth: a receiver down for a day logs a few
                // dozen lines, not one per retry. The reason names the status or the connection
                // error, never the URL (its query may hold a token) or anything from the payload.
                if failuresInARow == 1 || failuresInARow % 10 == 0 {
                    logger.warning(
                        "event webhook \(post.webhookID) not delivered (\(reason)); \(failuresInARow) failures in a row, retrying in \(String(format: "%.0f", pause))s")
                }
                return false
            }
        }
        return posts.count >= Self.batchSize
    }

    /// The signed POST of one outbox row.
    func request(_ post: EventWebhookPost, at now: Date) -> WebhookRequest {
        let id = post.webhookID
        return WebhookRequest(
            method: "POST", url: settings.url,
            headers: [
                .init(name: "Content-Type", value: "application/json"),
                .init(name: "Idempotency-Key", value: id),
                .init(name: "Seqd-Event-Id", value: id),
                .init(name: "Seqd-Event-Type", value: post.type.rawValue),
                .init(
                    name: WebhookSignature.headerName,
                    value: WebhookSignature.header(body: post.body, timestamp: Int64(now.timeIntervalSince1970), secret: secret)),
            ],
            body: post.body, timeout: Self.requestTimeout)
    }

    /// `seqd_event_webhook_pending` and `seqd_event_webhook_oldest_pending_age_seconds`, every
    /// `gaugeInterval` at most.
    private func refreshGauges() throws {
        if let gaugesAt, ContinuousClock.now - gaugesAt < .seconds(Self.gaugeInterval) { return }
        gaugesAt = .now
        let status = try connection.runBlocking { try EventWebhookStatus.load($0) }
        metrics.eventWebhookPending.record(status.pending)
        metrics.eventWebhookOldestPendingAge.record(status.oldestPendingSeconds)
    }
}
