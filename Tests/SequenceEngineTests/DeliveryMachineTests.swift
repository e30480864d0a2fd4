import Foundation
import Testing
@testable import SequenceEngine

private let now = at("2026-06-10T10:00:00Z")
private let retrying = DeliveryPolicy(maxAttempts: 3, backoff: 10, onUnknown: .retry)
private let holding = DeliveryPolicy(maxAttempts: 3, backoff: 10, onUnknown: .hold)

private func sending(attempts: Int = 0, token: Int64 = 5, leaseUntil: Date = now - 1) -> DeliveryState {
    DeliveryState(status: .sending, attempts: attempts, fencingToken: token, leaseOwner: "worker-1", leaseUntil: leaseUntil)
}

struct DeliveryScenario: Sendable, CustomStringConvertible {
    let description: String
    let policy: DeliveryPolicy
    let state: DeliveryState
}

private let scenarios: [DeliveryScenario] = [
    .init(description: "new", policy: retrying, state: .new),
    .init(description: "pending, backing off", policy: retrying, state: DeliveryState(status: .pending, attempts: 1, fencingToken: 5, nextAttemptAt: now + 60)),
    .init(description: "sending, lease expired", policy: retrying, state: sending()),
    .init(description: "sending, lease valid", policy: retrying, state: sending(leaseUntil: now + 30)),
    .init(description: "sending, last attempt", policy: retrying, state: sending(attempts: 2)),
    .init(description: "sending, hold unknown", policy: holding, state: sending()),
    .init(description: "sent", policy: retrying, state: DeliveryState(status: .sent, attempts: 1, fencingToken: 5)),
    .init(description: "failed", policy: retrying, state: DeliveryState(status: .failed, attempts: 3, fencingToken: 5, lastError: "x")),
    .init(description: "cancelled", policy: retrying, state: DeliveryState(status: .cancelled, fencingToken: 5)),
    .init(description: "unknown, retry due", policy: retrying, state: DeliveryState(status: .unknown, attempts: 1, fencingToken: 5, nextAttemptAt: now - 1)),
    .init(description: "unknown, held", policy: holding, state: DeliveryState(status: .unknown, attempts: 1, fencingToken: 5)),
]

private let events: [DeliveryEvent] = [
    .claimed(owner: "worker-2", token: 6, leaseUntil: now + 30),
    .succeeded(providerID: "abc", token: 5),
    .succeeded(providerID: "abc", token: 4),
    .temporaryFailure(reason: "451 try later", retryAfter: nil, token: 5, jitter: 0.5),
    .permanentFailure(reason: "550 5.1.1 no such user", isBounce: true, token: 5),
    .permanentFailure(reason: "554 policy", isBounce: false, token: 5),
    .transportFault(reason: "connection refused", token: 5, jitter: 0.5),
    .ambiguous(reason: "connection lost after DATA", token: 5, jitter: 0.5),
    .ambiguous(reason: "late", token: 4, jitter: 0.5),
    .throttled(reason: "421 4.7.0 slow down", retryAfter: 60, token: 5, jitter: 0.5),
    .throttled(reason: "late", retryAfter: nil, token: 4, jitter: 0.5),
    .leaseExpired(jitter: 0.5),
    .notSent(token: 5), .notSent(token: 4),
    .retry, .release, .cancel,
]

/// Every scenario's current token is 5: a confirmation with 4 comes from an older claim.
private func carriesStaleToken(_ event: DeliveryEvent) -> Bool {
    switch event {
    case .succeeded(_, let token), .temporaryFailure(_, _, let token, _), .permanentFailure(_, _, let token),
         .transportFault(_, let token, _), .ambiguous(_, let token, _), .throttled(_, _, let token, _), .notSent(let token):
        token < 5
    case .claimed, .leaseExpired, .retry, .release, .cancel:
        false
    }
}

/// Which events each status accepts in at least one scenario.
private let accepted: [DeliveryStatus: Set<String>] = [
    .pending: ["claimed", "cancel"],
    .sending: ["succeeded", "temporary_failure", "permanent_failure", "transport_fault", "ambiguous", "throttled", "lease_expired", "not_sent"],
    .unknown: ["claimed", "succeeded", "retry", "release", "cancel"],
    .failed: ["retry", "cancel"],
    .sent: [],
    .cancelled: [],
]

@Suite struct DeliveryTransitionTableTests {
    @Test(arguments: DeliveryStatus.allCases, events)
    func everyStatusAndEvent(_ status: DeliveryStatus, _ event: DeliveryEvent) throws {
        let cases = scenarios.filter { $0.state.status == status }
        try #require(!cases.isEmpty)
        var anyAccepted = false
        for scenario in cases {
            var subject = DeliveryMachine(policy: scenario.policy, state: scenario.state)
            switch subject.handle(event, now: now) {
            case .rejected(let error):
                #expect(subject.state == scenario.state, "a refusal changes nothing (\(scenario))")
                #expect(error.description.hasPrefix("delivery is \(status); "), "\(error)")
            case .stale:
                #expect(subject.state == scenario.state, "a stale confirmation changes nothing (\(scenario))")
            case .accepted:
                anyAccepted = true
                if subject.state.status != status {
                    #expect(DeliveryMachine.allowedTransitions.contains(StatusChange(from: status, to: subject.state.status)), "\(scenario): \(event.name)")
                }
                #expect(subject.state.attempts <= scenario.policy.maxAttempts)
            }
        }
        let expected = accepted[status, default: []].contains(event.name) && !carriesStaleToken(event)
        #expect(anyAccepted == expected, "\(status) + \(event.name)")
    }

    @Test func producedChangesEqualAllowedTransitions() {
        var produced = Set<StatusChange<DeliveryStatus>>()
        for scenario in scenarios {
            for event in events {
                var subject = DeliveryMachine(policy: scenario.policy, state: scenario.state)
                if case .accepted = subject.handle(event, now: now), subject.state.status != scenario.state.status {
                    produced.insert(StatusChange(from: scenario.state.status, to: subject.state.status))
                }
            }
        }
        #expect(produced == DeliveryMachine.allowedTransitions)
    }

    @Test func statusLabelsMatchTheDatabase() {
        #expect(DeliveryStatus.allCases.map(\.rawValue) == ["pending", "sending", "sent", "failed", "cancelled", "unknown"])
    }
}

@Suite struct DeliveryLifecycleTests {
    @Test func claimThenSucceed() {
        var subject = DeliveryMachine(policy: retrying, state: .new)
        #expect(subject.claimed(owner: "w", token: 1, leaseUntil: now + 30, now: now) == .accepted([.send(token: 1)]))
        #expect(subject.state == DeliveryState(status: .sending, fencingToken: 1, leaseOwner: "w", leaseUntil: now + 30))
        #expect(subject.succeeded(providerID: "p-1", token: 1, now: now + 2) == .accepted([.enrollmentDelivered(sentAt: now + 2)]))
        #expect(subject.state == DeliveryState(status: .sent, attempts: 1, fencingToken: 1, providerID: "p-1"))
    }

    @Test func staleTokenChangesNothing() {
        var subject = DeliveryMachine(policy: retrying, state: sending(token: 7, leaseUntil: now + 30))
        let before = subject.state
        #expect(subject.succeeded(providerID: "x", token: 6, now: now) == .stale)
        #expect(subject.temporaryFailure(reason: "x", retryAfter: nil, token: 6, jitter: 0, now: now) == .stale)
        #expect(subject.permanentFailure(reason: "x", isBounce: true, token: 6, now: now) == .stale)
        #expect(subject.state == before)
    }

    @Test func claimNeedsANewerTokenAndADueTime() {
        var subject = DeliveryMachine(policy: retrying, state: DeliveryState(status: .pending, attempts: 1, fencingToken: 5, nextAttemptAt: now + 60))
        guard case .rejected = subject.claimed(owner: "w", token: 6, leaseUntil: now + 30, now: now) else { Issue.record("claimed early"); return }
        guard case .rejected = subject.claimed(owner: "w", token: 5, leaseUntil: now + 90, now: now + 60) else { Issue.record("reused token"); return }
        #expect(subject.claimed(owner: "w", token: 6, leaseUntil: now + 90, now: now + 60) == .accepted([.send(token: 6)]))
    }

    @Test("a server's Retry-After is honoured up to the backoff cap, never beyond (a year-long header parks nothing)")
    func retryAfterIsCapped() {
        for (asked, expected) in [(120.0, 120.0), (86_400.0 * 365, DeliveryPolicy.backoffCap), (-5.0, nil)] {
            var subject = DeliveryMachine(policy: retrying, state: sending(token: 7, leaseUntil: now + 30))
            #expect(subject.temporaryFailure(reason: "429", retryAfter: asked, token: 7, jitter: 0, now: now) == .accepted([]))
            let delay = (subject.state.nextAttemptAt ?? now).timeIntervalSince(now)
            if let expected {
                #expect(delay == max(expected, retrying.retryDelay(afterAttempt: 1, jitter: 0)), "Retry-After \(asked)")
            } else {
                #expect(delay == retrying.retryDelay(afterAttempt: 1, jitter: 0))
            }
            #expect(delay <= DeliveryPolicy.backoffCap)
        }
    }

    @Test func temporaryFailuresBackOffThenFail() {
        var subject = DeliveryMachine(policy: retrying, state: .new)
        var clock = now
        var token: Int64 = 0
        var delays: [TimeInterval] = []
        for attempt in 1...3 {
            token += 1
            _ = subject.claimed(owner: "w", token: token, leaseUntil: clock + 30, now: clock)
            let outcome = subject.temporaryFailure(reason: "451", retryAfter: nil, token: token, jitter: 0.5, now: clock)
            #expect(subject.state.attempts == attempt)
            if attempt < 3 {
                #expect(outcome == .accepted([]))
                #expect(subject.state.status == .pending)
                let next = subject.state.nextAttemptAt ?? clock
                delays.append(next.timeIntervalSince(clock))
                clock = next
            } else {
                #expect(outcome == .accepted([.enrollmentFailed(reason: "451 (after 3 attempts)")]))
                #expect(subject.state.status == .failed)
            }
        }
        #expect(delays == [10, 20])
    }

    @Test func retryAfterIsRespected() {
        var subject = DeliveryMachine(policy: retrying, state: sending())
        _ = subject.temporaryFailure(reason: "421", retryAfter: 300, token: 5, jitter: 0.5, now: now)
        #expect(subject.state.nextAttemptAt == now + 300)
    }

    @Test func bounceAndPermanentFailure() {
        var bounce = DeliveryMachine(policy: retrying, state: sending())
        #expect(bounce.permanentFailure(reason: "550 5.1.1", isBounce: true, token: 5, now: now) == .accepted([.enrollmentBounced(reason: "550 5.1.1")]))
        #expect(bounce.state.status == .failed)
        var policy = DeliveryMachine(policy: retrying, state: sending())
        #expect(policy.permanentFailure(reason: "554", isBounce: false, token: 5, now: now) == .accepted([.enrollmentFailed(reason: "554")]))
    }

    @Test func transportFaultSpendsNoAttempt() {
        var subject = DeliveryMachine(policy: retrying, state: sending(attempts: 2))
        #expect(subject.transportFault(reason: "TLS handshake", token: 5, jitter: 0.5, now: now) == .accepted([.openCircuitBreaker(reason: "TLS handshake")]))
        #expect(subject.state.status == .pending)
        #expect(subject.state.attempts == 2)
        #expect(subject.state.nextAttemptAt == now + 10)
        #expect(subject.state.leaseOwner == nil)
    }

    @Test func notSentGivesTheLeaseBackWithoutSpendingAnAttempt() {
        var subject = DeliveryMachine(policy: retrying, state: sending(attempts: 2))
        #expect(subject.notSent(token: 4, now: now) == .stale)
        #expect(subject.notSent(token: 5, now: now) == .accepted([]))
        #expect(subject.state.status == .pending)
        #expect(subject.state.attempts == 2)
        #expect(subject.state.nextAttemptAt == now)
        #expect(subject.state.leaseOwner == nil && subject.state.leaseUntil == nil)
        #expect(subject.claimed(owner: "w", token: 6, leaseUntil: now + 30, now: now) == .accepted([.send(token: 6)]))
    }

    @Test func ambiguousCountsAndRetriesWithSameRow() {
        var subject = DeliveryMachine(policy: retrying, state: sending())
        #expect(subject.ambiguous(reason: "lost after DATA", token: 5, jitter: 0.5, now: now) == .accepted([]))
        #expect(subject.state.status == .unknown)
        #expect(subject.state.attempts == 1)
        #expect(subject.state.nextAttemptAt == now + 10)
        #expect(subject.claimed(owner: "w", token: 6, leaseUntil: now + 40, now: now + 10) == .accepted([.send(token: 6)]))
    }

    @Test func lateSuccessSettlesUnknown() {
        var subject = DeliveryMachine(policy: holding, state: sending())
        #expect(subject.leaseExpired(jitter: 0.5, now: now) == .accepted([.holdForOperator(reason: "lease expired while sending (owner worker-1)")]))
        #expect(subject.state.status == .unknown)
        #expect(subject.state.nextAttemptAt == nil)
        guard case .rejected = subject.claimed(owner: "w", token: 6, leaseUntil: now + 30, now: now) else { Issue.record("held one was claimed"); return }
        #expect(subject.succeeded(providerID: "p", token: 5, now: now + 1) == .accepted([.enrollmentDelivered(sentAt: now + 1)]))
        #expect(subject.state.status == .sent)
        #expect(subject.state.attempts == 1, "the ambiguous attempt was already counted")
    }

    @Test func leaseStillValidIsRefused() {
        var subject = DeliveryMachine(policy: retrying, state: sending(leaseUntil: now + 30))
        guard case .rejected(let error) = subject.leaseExpired(jitter: 0.5, now: now) else { Issue.record("accepted"); return }
        #expect(error.description == "delivery is sending; lease expired is not allowed (lease valid until 2026-06-10T10:00:30Z)")
    }

    @Test func throttledWaitsWithoutSpendingAnAttemptEvenOnTheLastOne() {
        var subject = DeliveryMachine(policy: retrying, state: sending(attempts: 2))
        #expect(subject.throttled(reason: "454 4.7.0 Throttling failure", retryAfter: nil, token: 4, jitter: 0.5, now: now) == .stale)
        #expect(subject.throttled(reason: "454 4.7.0 Throttling failure", retryAfter: nil, token: 5, jitter: 0.5, now: now) == .accepted([]))
        #expect(subject.state.status == .pending)
        #expect(subject.state.attempts == 2, "a throttled attempt is not the message's fault")
        #expect(subject.state.nextAttemptAt == now + 10, "the base backoff")
        var told = DeliveryMachine(policy: retrying, state: sending())
        #expect(told.throttled(reason: "429", retryAfter: 90, token: 5, jitter: 0.5, now: now) == .accepted([]))
        #expect(told.state.nextAttemptAt == now + 90, "Retry-After when it is longer")
    }

    @Test func ambiguousOnLastAttemptFails() {
        var subject = DeliveryMachine(policy: retrying, state: sending(attempts: 2))
        #expect(subject.ambiguous(reason: "lost", token: 5, jitter: 0.5, now: now) == .accepted([.enrollmentFailed(reason: "lost (after 3 attempts)")]))
        #expect(subject.state.status == .failed)
    }

    @Test func retryResetsAttemptsReleaseKeepsThem() {
        var failed = DeliveryMachine(policy: retrying, state: DeliveryState(status: .failed, attempts: 3, fencingToken: 5, lastError: "x"))
        #expect(failed.retry(now: now) == .accepted([]))
        #expect(failed.state == DeliveryState(status: .pending, attempts: 0, fencingToken: 5))
        var held = DeliveryMachine(policy: holding, state: DeliveryState(status: .unknown, attempts: 2, fencingToken: 5, lastError: "x"))
        #expect(held.release(now: now) == .accepted([]))
        #expect(held.state == DeliveryState(status: .pending, attempts: 2, fencingToken: 5, lastError: "x"))
    }

    @Test func sendingCannotBeCancelled() {
        var subject = DeliveryMachine(policy: retrying, state: sending(leaseUntil: now + 30))
        guard case .rejected(let error) = subject.cancel(now: now) else { Issue.record("cancelled mid-send"); return }
        #expect(error.description == "delivery is sending; cancel is not allowed (wait until the send in progress has settled)")
    }
}

@Suite struct BackoffTests {
    let policy = DeliveryPolicy(maxAttempts: 20, backoff: 10)

    @Test func doublesPerAttempt() {
        #expect((1...5).map { policy.retryDelay(afterAttempt: $0, jitter: 0.5) } == [10, 20, 40, 80, 160])
    }

    @Test func jitterSpreadsByTwentyPercent() {
        #expect(policy.retryDelay(afterAttempt: 2, jitter: 0) == 16)
        #expect(policy.retryDelay(afterAttempt: 2, jitter: 1) == 24)
    }

    @Test(arguments: [0.0, 0.5, 1.0])
    func cappedAtAnHour(_ jitter: Double) {
        #expect(policy.retryDelay(afterAttempt: 10, jitter: jitter) <= 3_600)
        #expect(policy.retryDelay(afterAttempt: 200, jitter: jitter) <= 3_600)
        #expect(policy.retryDelay(afterAttempt: 200, jitter: 1) == 3_600)
    }

    @Test func defaultsMatchTheConfiguration() {
        let defaults = DeliveryPolicy()
        #expect(defaults.maxAttempts == 8)
        #expect(defaults.backoff == 10)
        #expect(defaults.onUnknown == .retry)
    }
}
