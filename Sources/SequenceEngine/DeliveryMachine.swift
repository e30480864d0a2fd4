import Foundation

/// The delivery (outbox) state machine (design.md §4, §6). Same shape as `EnrollmentMachine`:
/// one `mutating func` per event, `now` from the database, actions for the driver.
///
/// ```
///   pending ── claimed ──► sending ── succeeded ───────────────► sent
///      ▲                      │ ├──── temporary failure, fault ─► pending (backoff)
///      │                      │ ├──── permanent failure, limit ─► failed ── retry ──► pending
///      │                      │ ├──── not sent (lease given back) ► pending (at once)
///      │                      │ └──── ambiguous, lease expired ─► unknown
///   unknown ── release, retry ──► pending      unknown ── claimed (on_unknown: retry) ──► sending
///   unknown ── succeeded (same token, late) ──► sent
///   pending | unknown | failed ── cancel ──► cancelled
/// ```
/// Every confirmation carries the fencing token of its claim; one from an older claim is
/// `.stale` and changes nothing, so a sender whose lease expired cannot overwrite a newer attempt.
public struct DeliveryMachine: Sendable {
    /// Configuration.
    public let policy: DeliveryPolicy
    /// The current state; store it after every accepted event.
    public private(set) var state: DeliveryState

    /// Every status change the machine can make. The database's transition table must equal it.
    public static let allowedTransitions: Set<StatusChange<DeliveryStatus>> = {
        let edges: [(DeliveryStatus, [DeliveryStatus])] = [
            (.pending, [.sending, .cancelled]),
            (.sending, [.sent, .pending, .failed, .unknown]),
            (.unknown, [.sending, .sent, .pending, .cancelled]),
            (.failed, [.pending, .cancelled]),
        ]
        return Set(edges.flatMap { from, targets in targets.map { StatusChange(from: from, to: $0) } })
    }()

    /// Wraps a stored delivery.
    public init(policy: DeliveryPolicy, state: DeliveryState) {
        self.policy = policy
        self.state = state
    }

    /// Dispatches an event to its handler.
    public mutating func handle(_ event: DeliveryEvent, now: Date) -> DeliveryOutcome {
        switch event {
        case .claimed(let owner, let token, let leaseUntil): claimed(owner: owner, token: token, leaseUntil: leaseUntil, now: now)
        case .succeeded(let providerID, let token): succeeded(providerID: providerID, token: token, now: now)
        case .temporaryFailure(let reason, let retryAfter, let token, let jitter):
            temporaryFailure(reason: reason, retryAfter: retryAfter, token: token, jitter: jitter, now: now)
        case .permanentFailure(let reason, let isBounce, let token): permanentFailure(reason: reason, isBounce: isBounce, token: token, now: now)
        case .transportFault(let reason, let token, let jitter): transportFault(reason: reason, token: token, jitter: jitter, now: now)
        case .ambiguous(let reason, let token, let jitter): ambiguous(reason: reason, token: token, jitter: jitter, now: now)
        case .throttled(let reason, let retryAfter, let token, let jitter):
            throttled(reason: reason, retryAfter: retryAfter, token: token, jitter: jitter, now: now)
        case .leaseExpired(let jitter): leaseExpired(jitter: jitter, now: now)
        case .notSent(let token): notSent(token: token, now: now)
        case .retry: retry(now: now)
        case .release: release(now: now)
        case .cancel: cancel(now: now)
        }
    }

    /// A sender leased the delivery. `token` must be newer than any earlier claim's.
    public mutating func claimed(owner: String, token: Int64, leaseUntil: Date, now: Date) -> DeliveryOutcome {
        switch state.status {
        case .pending:
            break
        case .unknown:
            guard policy.onUnknown == .retry else { return reject("claimed", detail: "held for an operator (on_unknown: hold)") }
        case .sending, .sent, .failed, .cancelled:
            return reject("claimed")
        }
        if let nextAttemptAt = state.nextAttemptAt, nextAttemptAt > now {
            return reject("claimed", detail: "next attempt not before \(nextAttemptAt.formatted(.iso8601))")
        }
        guard token > state.fencingToken else {
            return reject("claimed", detail: "fencing token \(token) is not newer than \(state.fencingToken)")
        }
        state.status = .sending
        state.fencingToken = token
        state.leaseOwner = owner
        state.leaseUntil = leaseUntil
        state.nextAttemptAt = nil
        return .accepted([.send(token: token)])
    }

    /// The transport accepted the message. Also settles an `unknown` delivery when the late
    /// confirmation carries the token of the claim that went unknown.
    public mutating func succeeded(providerID: String?, token: Int64, now: Date) -> DeliveryOutcome {
        switch state.status {
        case .sending, .unknown:
            guard token == state.fencingToken else { return .stale }
            if state.status == .sending { state.attempts += 1 }
            state.status = .sent
            state.providerID = providerID
            state.nextAttemptAt = nil
            state.lastError = nil
            clearLease()
            return .accepted([.enrollmentDelivered(sentAt: now)])
        case .pending, .sent, .failed, .cancelled:
            return .stale
        }
    }

    /// A temporary failure: retry after backoff (at least `retryAfter`, at most
    /// `DeliveryPolicy.backoffCap` of it) unless attempts are used up.
    public mutating func temporaryFailure(reason: String, retryAfter: TimeInterval?, token: Int64, jitter: Double, now: Date) -> DeliveryOutcome {
        switch state.status {
        case .sending:
            guard token == state.fencingToken else { return .stale }
            state.attempts += 1
            state.lastError = reason
            clearLease()
            if let exhausted = failIfExhausted(reason) { return exhausted }
            state.status = .pending
            // A server's Retry-After is honoured up to the backoff cap: a relay (or whoever answers in
            // its place) must not park a delivery for years with one header.
            let asked = min(max(retryAfter ?? 0, 0), DeliveryPolicy.backoffCap)
            let delay = max(policy.retryDelay(afterAttempt: state.attempts, jitter: jitter), asked)
            state.nextAttemptAt = now.addingTimeInterval(delay)
            return .accepted([])
        case .pending, .sent, .failed, .cancelled, .unknown:
            return .stale
        }
    }

    /// A permanent failure: the delivery fails; a bounce also ends the enrollment as bounced.
    public mutating func permanentFailure(reason: String, isBounce: Bool, token: Int64, now: Date) -> DeliveryOutcome {
        switch state.status {
        case .sending:
            guard token == state.fencingToken else { return .stale }
            state.attempts += 1
            state.status = .failed
            state.lastError = reason
            state.nextAttemptAt = nil
            clearLease()
            return .accepted([isBounce ? .enrollmentBounced(reason: reason) : .enrollmentFailed(reason: reason)])
        case .pending, .sent, .failed, .cancelled, .unknown:
            return .stale
        }
    }

    /// The transport itself failed: back to pending after the base backoff, no attempt spent.
    public mutating func transportFault(reason: String, token: Int64, jitter: Double, now: Date) -> DeliveryOutcome {
        switch state.status {
        case .sending:
            guard token == state.fencingToken else { return .stale }
            state.status = .pending
            state.lastError = reason
            state.nextAttemptAt = now.addingTimeInterval(policy.retryDelay(afterAttempt: 1, jitter: jitter))
            clearLease()
            return .accepted([.openCircuitBreaker(reason: reason)])
        case .pending, .sent, .failed, .cancelled, .unknown:
            return .stale
        }
    }

    /// The relay asked us to slow down: back to pending after `retryAfter` (or the base backoff,
    /// whichever is longer), no attempt spent. The message was refused before it was accepted, so
    /// nothing was delivered; the sender's rate limiter slows down separately.
    public mutating func throttled(reason: String, retryAfter: TimeInterval?, token: Int64, jitter: Double, now: Date) -> DeliveryOutcome {
        switch state.status {
        case .sending:
            guard token == state.fencingToken else { return .stale }
            state.status = .pending
            state.lastError = reason
            let delay = max(policy.retryDelay(afterAttempt: 1, jitter: jitter), retryAfter ?? 0)
            state.nextAttemptAt = now.addingTimeInterval(min(delay, DeliveryPolicy.backoffCap))
            clearLease()
            return .accepted([])
        case .pending, .sent, .failed, .cancelled, .unknown:
            return .stale
        }
    }

    /// The outcome of the attempt is not known: it counts, and the delivery becomes `unknown`.
    public mutating func ambiguous(reason: String, token: Int64, jitter: Double, now: Date) -> DeliveryOutcome {
        switch state.status {
        case .sending:
            guard token == state.fencingToken else { return .stale }
            return becomeUnknown(reason, jitter: jitter, now: now)
        case .pending, .sent, .failed, .cancelled, .unknown:
            return .stale
        }
    }

    /// The rescuer found a sending delivery whose lease has run out.
    public mutating func leaseExpired(jitter: Double, now: Date) -> DeliveryOutcome {
        switch state.status {
        case .sending:
            if let leaseUntil = state.leaseUntil, leaseUntil > now {
                return reject("lease expired", detail: "lease valid until \(leaseUntil.formatted(.iso8601))")
            }
            return becomeUnknown("lease expired while sending (owner \(state.leaseOwner ?? "?"))", jitter: jitter, now: now)
        case .pending, .sent, .failed, .cancelled, .unknown:
            return reject("lease expired")
        }
    }

    /// The sender gave the lease back before handing the message to the transport: claimable
    /// again at once, no attempt spent. Without this, messages queued behind a slow send in the
    /// same batch would outlive their lease, turn `unknown` and be sent twice.
    public mutating func notSent(token: Int64, now: Date) -> DeliveryOutcome {
        switch state.status {
        case .sending:
            guard token == state.fencingToken else { return .stale }
            state.status = .pending
            state.nextAttemptAt = now
            clearLease()
            return .accepted([])
        case .pending, .sent, .failed, .cancelled, .unknown:
            return .stale
        }
    }

    /// An operator retries: pending again with attempts reset (same row, key and Message-ID).
    public mutating func retry(now: Date) -> DeliveryOutcome {
        switch state.status {
        case .failed, .unknown:
            state.status = .pending
            state.attempts = 0
            state.nextAttemptAt = nil
            state.lastError = nil
            return .accepted([])
        case .pending, .sending, .sent, .cancelled:
            return reject("retry")
        }
    }

    /// An operator releases a held unknown delivery: pending now, attempts kept.
    public mutating func release(now: Date) -> DeliveryOutcome {
        switch state.status {
        case .unknown:
            state.status = .pending
            state.nextAttemptAt = nil
            return .accepted([])
        case .pending, .sending, .sent, .failed, .cancelled:
            return reject("release")
        }
    }

    /// The delivery will never be sent. A sending one must settle first (invariant 3).
    public mutating func cancel(now: Date) -> DeliveryOutcome {
        switch state.status {
        case .pending, .unknown, .failed:
            state.status = .cancelled
            state.nextAttemptAt = nil
            return .accepted([])
        case .sending:
            return reject("cancel", detail: "wait until the send in progress has settled")
        case .sent, .cancelled:
            return reject("cancel")
        }
    }

    // MARK: Helpers

    private mutating func becomeUnknown(_ reason: String, jitter: Double, now: Date) -> DeliveryOutcome {
        state.attempts += 1
        state.lastError = reason
        clearLease()
        if let exhausted = failIfExhausted(reason) { return exhausted }
        state.status = .unknown
        switch policy.onUnknown {
        case .retry:
            state.nextAttemptAt = now.addingTimeInterval(policy.retryDelay(afterAttempt: state.attempts, jitter: jitter))
            return .accepted([])
        case .hold:
            state.nextAttemptAt = nil
            return .accepted([.holdForOperator(reason: reason)])
        }
    }

    private mutating func failIfExhausted(_ reason: String) -> DeliveryOutcome? {
        guard state.attempts >= policy.maxAttempts else { return nil }
        state.status = .failed
        state.nextAttemptAt = nil
        let message = "\(reason) (after \(state.attempts) attempt\(state.attempts == 1 ? "" : "s"))"
        state.lastError = message
        return .accepted([.enrollmentFailed(reason: message)])
    }

    /// The token stays: it is what makes a late confirmation from this claim recognisable.
    private mutating func clearLease() {
        state.leaseOwner = nil
        state.leaseUntil = nil
    }

    private func reject(_ event: String, detail: String? = nil) -> DeliveryOutcome {
        .rejected(InvalidTransition(state: "delivery is \(state.status)", event: event, detail: detail))
    }
}
