import Foundation

/// `seqd.delivery_status` (design.md §4). Raw values are the database's labels.
public enum DeliveryStatus: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// Waiting to be claimed (from `nextAttemptAt` on).
    case pending
    /// Leased by one sender: owner, fencing token, expiry.
    case sending
    /// Accepted by the transport.
    case sent
    /// Gave up: attempts used up or a permanent error. An operator may retry.
    case failed
    /// Will never be sent (the enrollment ended).
    case cancelled
    /// The outcome of the last attempt is not known (lease expired, connection lost after DATA).
    case unknown

    public var description: String { rawValue }
}

/// What to do with a delivery whose outcome is unknown (`delivery.on_unknown`).
public enum UnknownDeliveryPolicy: String, Sendable, Codable, CaseIterable {
    /// Try again after backoff, with the same Message-ID and idempotency key.
    case retry
    /// Leave it for an operator (`release`, `retry` or `cancel`).
    case hold
}

/// Delivery settings from configuration (`delivery.max_attempts`, `.backoff`, `.on_unknown`).
public struct DeliveryPolicy: Sendable, Equatable {
    /// No retry waits longer than this.
    public static let backoffCap: TimeInterval = 3_600

    /// Attempts (sends whose outcome counted) before the delivery fails.
    public var maxAttempts: Int
    /// Delay before the first retry; doubles per attempt.
    public var backoff: TimeInterval
    /// What an ambiguous outcome leads to.
    public var onUnknown: UnknownDeliveryPolicy

    /// Creates a policy; the defaults are those of design.md §8.
    public init(maxAttempts: Int = 8, backoff: TimeInterval = 10, onUnknown: UnknownDeliveryPolicy = .retry) {
        self.maxAttempts = max(1, maxAttempts)
        self.backoff = max(0, backoff)
        self.onUnknown = onUnknown
    }

    /// The wait after the `attempt`-th counted attempt (1-based): `backoff · 2^(attempt−1)`,
    /// spread by ±20 % with `jitter` in 0...1 (0.5 = no spread) so that a burst of failures
    /// does not retry in lockstep, and never more than an hour.
    public func retryDelay(afterAttempt attempt: Int, jitter: Double) -> TimeInterval {
        let exponent = Double(min(max(attempt, 1) - 1, 32))
        let base = min(Self.backoffCap, backoff * pow(2, exponent))
        // base · (0.8 + 0.4 · jitter), written so whole-second delays stay whole.
        let spread = 4 + 2 * min(1, max(0, jitter))
        return min(Self.backoffCap, base * spread / 5)
    }
}

/// The persisted part of a delivery (`deliveries.status`, `attempts`, `lease_owner`,
/// `fencing_token`, `lease_until`, `next_attempt_at`, `last_error`, `provider_id`).
public struct DeliveryState: Sendable, Equatable {
    /// The status.
    public var status: DeliveryStatus
    /// Counted attempts so far (transport faults do not count).
    public var attempts: Int
    /// The token of the latest claim; a confirmation carrying another token is stale.
    public var fencingToken: Int64
    /// Who holds the lease while sending.
    public var leaseOwner: String?
    /// When the lease runs out while sending.
    public var leaseUntil: Date?
    /// Not claimable before this; nil means now.
    public var nextAttemptAt: Date?
    /// The last failure, for operators.
    public var lastError: String?
    /// The transport's id for the sent message.
    public var providerID: String?

    /// Creates a state from its stored columns.
    public init(status: DeliveryStatus, attempts: Int = 0, fencingToken: Int64 = 0, leaseOwner: String? = nil, leaseUntil: Date? = nil, nextAttemptAt: Date? = nil, lastError: String? = nil, providerID: String? = nil) {
        self.status = status
        self.attempts = attempts
        self.fencingToken = fencingToken
        self.leaseOwner = leaseOwner
        self.leaseUntil = leaseUntil
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
        self.providerID = providerID
    }

    /// A new outbox row: pending, claimable at once.
    public static let new = DeliveryState(status: .pending)
}

/// What happened to a delivery. `jitter` (0...1) is drawn by the driver so the machine stays pure.
public enum DeliveryEvent: Sendable, Equatable {
    /// A sender leased it with a fresh fencing token.
    case claimed(owner: String, token: Int64, leaseUntil: Date)
    /// The transport accepted the message.
    case succeeded(providerID: String?, token: Int64)
    /// A temporary failure (4xx); `retryAfter` if the server asked for a minimum wait.
    case temporaryFailure(reason: String, retryAfter: TimeInterval?, token: Int64, jitter: Double)
    /// A permanent failure; `isBounce` only for recipient-specific rejections (design.md §6).
    case permanentFailure(reason: String, isBounce: Bool, token: Int64)
    /// Connection, TLS, AUTH or MAIL-stage failure: the transport's fault; no attempt is spent.
    case transportFault(reason: String, token: Int64, jitter: Double)
    /// The outcome is not known (connection lost after the message data).
    case ambiguous(reason: String, token: Int64, jitter: Double)
    /// The relay asked us to slow down (SMTP 421, 454 4.7.0, "Throttling failure"; HTTP 429):
    /// pending again after `retryAfter` or the base backoff, no attempt spent.
    case throttled(reason: String, retryAfter: TimeInterval?, token: Int64, jitter: Double)
    /// The rescuer found the lease expired while sending.
    case leaseExpired(jitter: Double)
    /// The sender gave the lease back without handing the message to the transport (its batch
    /// had used too much of the lease to start another send safely).
    case notSent(token: Int64)
    /// An operator retries a failed or unknown delivery: pending, attempts reset.
    case retry
    /// An operator releases a held unknown delivery: pending, attempts kept.
    case release
    /// The enrollment ended; the delivery will never be sent.
    case cancel

    /// The name recorded in audit rows and logs.
    public var name: String {
        switch self {
        case .claimed: "claimed"
        case .succeeded: "succeeded"
        case .temporaryFailure: "temporary_failure"
        case .permanentFailure: "permanent_failure"
        case .transportFault: "transport_fault"
        case .ambiguous: "ambiguous"
        case .throttled: "throttled"
        case .leaseExpired: "lease_expired"
        case .notSent: "not_sent"
        case .retry: "retry"
        case .release: "release"
        case .cancel: "cancel"
        }
    }
}

/// What a delivery row carries (`seqd.deliveries.kind`).
public enum DeliveryKind: String, Sendable, CaseIterable, Codable {
    /// An email step's message.
    case email
    /// A webhook step's request.
    case webhook
}

/// How one attempt ended, as `seqd.delivery_attempts.outcome` records it. Raw values are the
/// column's labels (a CHECK constraint lists them).
public enum AttemptOutcome: String, Sendable, CaseIterable, Codable {
    /// Accepted by the next hop.
    case sent
    /// Refused for now; retried with backoff (an attempt spent).
    case temporaryFailure = "temporary_failure"
    /// Refused for good, not about the recipient.
    case permanentFailure = "permanent_failure"
    /// Refused for good because of the recipient: the address is suppressed.
    case bounce
    /// The transport itself failed (connection, TLS, AUTH, MAIL stage): no attempt spent.
    case transportFault = "transport_fault"
    /// The relay asked to slow down: no attempt spent, retried later.
    case throttled
    /// The outcome is not known (lease expired, connection lost after the data).
    case unknown
    /// Given back unsent (lease half used, the transport failed earlier, the daemon stopped).
    case skipped
}

/// Side effects the driver performs with the new delivery state.
public enum DeliveryAction: Sendable, Equatable {
    /// Send the message now, carrying this fencing token into the confirmation.
    case send(token: Int64)
    /// Tell the enrollment (`EnrollmentMachine.delivered(sentAt:now:)`).
    case enrollmentDelivered(sentAt: Date)
    /// Tell the enrollment (`EnrollmentMachine.deliveryFailed(reason:now:)`).
    case enrollmentFailed(reason: String)
    /// Suppress the address and tell the enrollment (`EnrollmentMachine.bounce(now:)`).
    case enrollmentBounced(reason: String)
    /// The transport is at fault: open the circuit breaker (metric, log, back off).
    case openCircuitBreaker(reason: String)
    /// An unknown outcome is held for an operator: alert.
    case holdForOperator(reason: String)
}

/// The answer to a delivery event.
public enum DeliveryOutcome: Sendable, Equatable {
    /// The state may have changed; perform these actions.
    case accepted([DeliveryAction])
    /// A confirmation from an older claim (or for a delivery no longer being sent): nothing changed.
    case stale
    /// Not allowed in this state; nothing changed.
    case rejected(InvalidTransition)
}
