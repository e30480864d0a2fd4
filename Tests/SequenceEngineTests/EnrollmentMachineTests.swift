import Foundation
import Testing
@testable import SequenceEngine

private let now = at("2026-06-10T10:00:00Z") // a Wednesday
private let hour: TimeInterval = 3_600
private let day: TimeInterval = 86_400

private let base = try! definition(threeSteps)
private let noExit = try! definition("""
    name: no-exit
    sender: { address: a@b.co }
    exit_on_reply: false
    stop_company_on_reply: true
    steps:
      - { key: intro, type: email, subject: s, body: b }
      - { type: wait, duration: 1d }
    """)
private let single = try! definition("""
    name: single
    sender: { address: a@b.co }
    steps: [{ key: final, type: email, subject: s, body: b }]
    """)
private let needsCompany = try! definition("""
    name: needs-company
    sender: { address: a@b.co }
    steps: [{ key: pitch, type: email, subject: "For {{company}}", body: b }]
    """)

private func machine(_ definition: SequenceDefinition, contact: ContactFields = ada, _ state: EnrollmentState) -> EnrollmentMachine {
    EnrollmentMachine(definition: definition, contact: contact, state: state)
}

private func machine(_ state: EnrollmentState) -> EnrollmentMachine {
    machine(base, state)
}

private func state(_ status: EnrollmentStatus, _ index: Int, next: Date?, remaining: TimeInterval? = nil, error: String? = nil) -> EnrollmentState {
    EnrollmentState(status: status, currentStepIndex: index, nextRunAt: next, remainingWait: remaining, lastError: error)
}

/// A representative enrollment in some status, for walking the transition table.
struct EnrollmentScenario: Sendable, CustomStringConvertible {
    let description: String
    let definition: SequenceDefinition
    let state: EnrollmentState
}

private let scenarios: [EnrollmentScenario] = {
    var all: [EnrollmentScenario] = [
        .init(description: "active, due at an email", definition: base, state: state(.active, 0, next: now)),
        .init(description: "active, awaiting delivery", definition: base, state: state(.active, 0, next: nil)),
        .init(description: "active, awaiting the last email", definition: single, state: state(.active, 0, next: nil)),
        .init(description: "active, due past the end", definition: base, state: state(.active, 3, next: now)),
        .init(description: "active, due with a missing field", definition: needsCompany, state: state(.active, 0, next: now)),
        .init(description: "active, waiting", definition: base, state: state(.active, 2, next: now + day)),
        .init(description: "active, no exit on reply", definition: noExit, state: state(.active, 0, next: nil)),
        .init(description: "paused in a wait", definition: base, state: state(.paused, 2, next: nil, remaining: hour)),
        .init(description: "paused awaiting delivery", definition: base, state: state(.paused, 0, next: nil)),
        .init(description: "paused, no exit on reply", definition: noExit, state: state(.paused, 0, next: nil)),
        .init(description: "failed delivery", definition: base, state: state(.failed, 0, next: nil, error: "550")),
        .init(description: "failed step", definition: needsCompany, state: state(.failed, 0, next: now - hour, error: "missing")),
        .init(description: "failed, no exit on reply", definition: noExit, state: state(.failed, 0, next: nil, error: "x")),
    ]
    for status in EnrollmentStatus.allCases where status.isTerminal {
        all.append(.init(description: "\(status)", definition: base, state: state(status, 1, next: nil)))
        all.append(.init(description: "\(status), no exit on reply", definition: noExit, state: state(status, 2, next: nil)))
    }
    return all
}()

private let events: [EnrollmentEvent] = [
    .due, .delivered(sentAt: now), .deliveryFailed(reason: "gave up"), .reply, .optOut, .bounce,
    .pause(resumeAt: nil), .pause(resumeAt: now + 7 * day), .resume, .stop, .retry, .skipStep, .goalMet(goal: "exit_when[0]"),
]

/// Which events each status accepts in at least one scenario (all others are always refused).
private let accepted: [EnrollmentStatus: Set<String>] = {
    var table: [EnrollmentStatus: Set<String>] = [
        .active: ["due", "delivered", "delivery_failed", "reply", "opt_out", "bounce", "pause", "stop", "skip_step", "goal_met"],
        .paused: ["delivered", "delivery_failed", "reply", "opt_out", "bounce", "resume", "stop", "goal_met"],
        .failed: ["delivered", "reply", "opt_out", "bounce", "stop", "retry", "skip_step", "goal_met"],
    ]
    for status in EnrollmentStatus.allCases where status.isTerminal { table[status] = ["delivered"] }
    return table
}()

@Suite struct EnrollmentTransitionTableTests {
    @Test(arguments: EnrollmentStatus.allCases, events)
    func everyStatusAndEvent(_ status: EnrollmentStatus, _ event: EnrollmentEvent) throws {
        let cases = scenarios.filter { $0.state.status == status }
        try #require(!cases.isEmpty)
        var anyAccepted = false
        for scenario in cases {
            var subject = machine(scenario.definition, scenario.state)
            let outcome = subject.handle(event, now: now)
            switch outcome {
            case .rejected(let error):
                #expect(subject.state == scenario.state, "a refusal changes nothing (\(scenario))")
                #expect(error.description.hasPrefix("enrollment is \(status); \(event.name.replacingOccurrences(of: "_", with: "-").replacingOccurrences(of: "delivery-failed", with: "delivery failed")) is not allowed"), "\(error)")
            case .accepted:
                anyAccepted = true
                let after = subject.state.status
                if after != status {
                    #expect(EnrollmentMachine.allowedTransitions.contains(StatusChange(from: status, to: after)), "\(scenario): \(event.name) → \(after)")
                }
                if status.isTerminal {
                    #expect(subject.state == scenario.state, "terminal is terminal (\(scenario))")
                }
            }
        }
        #expect(anyAccepted == accepted[status, default: []].contains(event.name), "\(status) + \(event.name)")
    }

    @Test func producedChangesEqualAllowedTransitions() {
        var produced = Set<StatusChange<EnrollmentStatus>>()
        for scenario in scenarios {
            for event in events {
                var subject = machine(scenario.definition, scenario.state)
                if case .accepted = subject.handle(event, now: now), subject.state.status != scenario.state.status {
                    produced.insert(StatusChange(from: scenario.state.status, to: subject.state.status))
                }
            }
        }
        #expect(produced == EnrollmentMachine.allowedTransitions)
        #expect(EnrollmentMachine.allowedTransitions.allSatisfy { $0.from != $0.to && !$0.from.isTerminal })
    }

    @Test func statusLabelsMatchTheDatabase() {
        #expect(EnrollmentStatus.allCases.map(\.rawValue) == ["active", "paused", "completed", "replied", "opted_out", "bounced", "failed", "stopped", "converted"])
        #expect(EnrollmentStatus.allCases.filter(\.isTerminal) == [.completed, .replied, .optedOut, .bounced, .stopped, .converted])
        #expect(EnrollmentStatus.allCases.filter(\.isLive) == [.active, .paused, .failed])
    }

    @Test func rejectionReadsWell() {
        var subject = machine(state(.completed, 3, next: nil))
        #expect(subject.pause(resumeAt: nil, now: now) == .rejected(InvalidTransition(state: "enrollment is completed", event: "pause")))
        #expect("\(InvalidTransition(state: "enrollment is completed", event: "pause"))" == "enrollment is completed; pause is not allowed")
    }
}

@Suite struct EnrollmentRunTests {
    @Test func dueEmailCreatesDeliveryAndAwaitsIt() {
        var subject = machine(.enrolled(at: now))
        let outcome = subject.due(now: now)
        let email = RenderedEmail(subject: "Welcome, Ada", text: "Hi Ada", html: nil, threadParentKey: nil)
        #expect(outcome == .accepted([.createDelivery(DeliveryRequest(stepKey: "intro", stepIndex: 0, payload: .email(email)))]))
        #expect(subject.state == state(.active, 0, next: nil))
    }

    @Test func deliveredAdvancesAndWaitCountsFromSendTime() {
        var subject = machine(state(.active, 0, next: nil))
        let sentAt = now - 5 * 60
        #expect(subject.delivered(sentAt: sentAt, now: now) == .accepted([.recordSend]))
        #expect(subject.state == state(.active, 2, next: sentAt + 2 * day))
        // The wait ends: the follow-up goes to the outbox.
        let followup = RenderedEmail(subject: "How is it going?", text: "Plan: pro", html: nil, threadParentKey: nil)
        let request = DeliveryRequest(stepKey: "followup", stepIndex: 2, payload: .email(followup))
        #expect(subject.due(now: sentAt + 2 * day) == .accepted([.createDelivery(request)]))
        #expect(subject.delivered(sentAt: sentAt + 2 * day + 1, now: now + 3 * day) == .accepted([.recordSend]))
        #expect(subject.state == state(.completed, 3, next: nil))
    }

    @Test func followingEmailIsDueAtSendTime() throws {
        let def = try definition("""
            name: x
            sender: { address: a@b.co }
            steps:
              - { type: email, subject: "Hi {{first_name}}", body: b, html: "<b>{{plan}}</b>" }
              - { type: email, thread: true, body: "again", html: "<i>{{last_name|?}}</i>" }
            """)
        let contact = ContactFields(email: "a@b.co", firstName: "Al", lastName: "<O'Neil>", attributes: ["plan": "a&b"])
        var subject = machine(def, contact: contact, state(.active, 0, next: nil))
        #expect(subject.delivered(sentAt: now - 60, now: now) == .accepted([.recordSend]))
        #expect(subject.state == state(.active, 1, next: now - 60))
        let outcome = subject.due(now: now)
        let email = RenderedEmail(subject: "Re: Hi Al", text: "again", html: "<i>&lt;O&#39;Neil&gt;</i>", threadParentKey: "email-1")
        #expect(outcome == .accepted([.createDelivery(DeliveryRequest(stepKey: "email-2", stepIndex: 1, payload: .email(email)))]))
    }

    @Test func duplicateConfirmationDoesNotSkipAStep() {
        var subject = machine(state(.active, 2, next: now + day))
        #expect(subject.delivered(sentAt: now, now: now) == .accepted([.recordSend]))
        #expect(subject.state == state(.active, 2, next: now + day))
    }

    @Test func businessDayWaitUsesContactZoneAndSkipDates() throws {
        let def = try definition("""
            name: x
            sender: { address: a@b.co }
            skip_dates: [2026-03-09]
            steps:
              - { type: email, subject: s, body: b }
              - { type: wait, duration: 1 business day }
              - { type: email, subject: s, body: b }
            """)
        let contact = ContactFields(email: "a@b.co", timeZone: "America/New_York")
        var subject = machine(def, contact: contact, state(.active, 0, next: nil))
        // Sent Friday 2026-03-06 10:00 EST; Monday the 9th is skipped → Tuesday 10:00 EDT.
        _ = subject.delivered(sentAt: at("2026-03-06T15:00:00Z"), now: at("2026-03-06T15:00:01Z"))
        #expect(subject.state.nextRunAt == at("2026-03-10T14:00:00Z"))
    }

    @Test(arguments: [("pro", "followup"), ("free", "end"), ("team", "next")])
    func branchesJumpForward(_ plan: String, _ expected: String) throws {
        let def = try definition("""
            name: x
            sender: { address: a@b.co }
            steps:
              - type: branch
                when:
                  - { if: { attribute: plan, equals: pro }, goto: followup }
                  - { if: { attribute: plan, in: [free, trial] }, goto: end }
              - { key: next, type: webhook, url: "https://example.com/h" }
              - { key: followup, type: webhook, url: "https://example.com/f" }
            """)
        var subject = machine(def, contact: ContactFields(email: "a@b.co", attributes: ["plan": plan]), .enrolled(at: now))
        let outcome = subject.due(now: now)
        switch expected {
        case "end":
            #expect(outcome == .accepted([]))
            #expect(subject.state == state(.completed, 3, next: nil))
        default:
            let index = try #require(def.index(ofStep: expected))
            let url = expected == "next" ? "https://example.com/h" : "https://example.com/f"
            guard case .webhook(let webhook) = def.steps[index].kind else { Issue.record("not a webhook"); return }
            #expect(webhook.url == url)
            #expect(outcome == .accepted([.createDelivery(DeliveryRequest(stepKey: expected, stepIndex: index, payload: .webhook(webhook)))]))
            #expect(subject.state == state(.active, index, next: nil))
        }
    }

    @Test func missingFieldFailsTheEnrollmentAloneAndRetryRunsTheStepAgain() {
        var subject = machine(needsCompany, .enrolled(at: now))
        #expect(subject.due(now: now) == .accepted([]))
        #expect(subject.state.status == .failed)
        #expect(subject.state.nextRunAt == now)
        #expect(subject.state.lastError == "step 'pitch': missing contact field without fallback: company")
        #expect(subject.retry(now: now + hour) == .accepted([]))
        #expect(subject.state == state(.active, 0, next: now + hour))
    }

    @Test func failedDeliveryRetryResetsTheRow() {
        var subject = machine(state(.active, 0, next: nil))
        #expect(subject.deliveryFailed(reason: "550 mailbox full", now: now) == .accepted([]))
        #expect(subject.state == state(.failed, 0, next: nil, error: "550 mailbox full"))
        #expect(subject.retry(now: now) == .accepted([.resetFailedDelivery(stepKey: "intro")]))
        #expect(subject.state == state(.active, 0, next: nil))
    }

    @Test func dueIsRefusedBeforeItsTimeAndWhileAwaitingDelivery() {
        var waiting = machine(state(.active, 2, next: now + hour))
        guard case .rejected(let early) = waiting.due(now: now) else { Issue.record("accepted"); return }
        #expect(early.description == "enrollment is active; due is not allowed (not due until 2026-06-10T11:00:00Z)")
        var awaiting = machine(state(.active, 0, next: nil))
        guard case .rejected(let busy) = awaiting.due(now: now) else { Issue.record("accepted"); return }
        #expect(busy.description == "enrollment is active; due is not allowed (awaiting delivery of step 'intro')")
    }

    @Test func sendWindowDefersTheEmail() throws {
        let def = try definition("""
            name: x
            sender: { address: a@b.co }
            time_zone: Europe/London
            send_window: { days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00" }
            steps: [{ key: hi, type: email, subject: s, body: b }]
            """)
        var subject = machine(def, contact: ContactFields(email: "a@b.co"), .enrolled(at: at("2026-06-13T12:00:00Z")))
        // Saturday → Monday 09:00 BST.
        #expect(subject.due(now: at("2026-06-13T12:00:00Z")) == .accepted([.deferred(Deferral(
            stepKey: "hi", reason: .sendWindow, due: at("2026-06-13T12:00:00Z"), until: at("2026-06-15T08:00:00Z"),
            timeZone: zone("Europe/London")))]))
        #expect(subject.state == state(.active, 0, next: at("2026-06-15T08:00:00Z")))
        guard case .accepted(let actions) = subject.due(now: at("2026-06-15T08:00:00Z")) else { Issue.record("refused"); return }
        #expect(actions.count == 1)
        #expect(subject.state.nextRunAt == nil)
    }
}

@Suite struct EnrollmentPauseTests {
    @Test func pauseKeepsRemainingWaitAndResumeRestoresIt() {
        var subject = machine(state(.active, 2, next: now + 5 * hour))
        #expect(subject.pause(resumeAt: now + day, now: now) == .accepted([]))
        #expect(subject.state == EnrollmentState(status: .paused, currentStepIndex: 2, nextRunAt: nil, remainingWait: 5 * hour, resumeAt: now + day))
        let later = now + 3 * day
        #expect(subject.resume(now: later) == .accepted([]))
        #expect(subject.state == state(.active, 2, next: later + 5 * hour))
    }

    @Test func pauseWhenAlreadyDueKeepsZero() {
        var subject = machine(state(.active, 2, next: now - hour))
        _ = subject.pause(resumeAt: nil, now: now)
        #expect(subject.state.remainingWait == 0)
        _ = subject.resume(now: now + day)
        #expect(subject.state.nextRunAt == now + day)
    }

    @Test func pauseWhileAwaitingDeliveryResumesAwaiting() {
        var subject = machine(state(.active, 0, next: nil))
        _ = subject.pause(resumeAt: nil, now: now)
        #expect(subject.state == state(.paused, 0, next: nil, remaining: nil))
        _ = subject.resume(now: now + day)
        #expect(subject.state == state(.active, 0, next: nil))
    }

    @Test func deliveredWhilePausedAdvancesAndKeepsTheWholeWait() {
        var subject = machine(state(.paused, 0, next: nil))
        #expect(subject.delivered(sentAt: now, now: now + hour) == .accepted([.recordSend]))
        #expect(subject.state == state(.paused, 2, next: nil, remaining: 2 * day))
        _ = subject.resume(now: now + day)
        #expect(subject.state == state(.active, 2, next: now + 3 * day))
    }

    @Test func deliveredWhilePausedBeforeAnotherEmailMakesItDueOnResume() {
        var subject = machine(single, state(.paused, 0, next: nil))
        _ = subject.delivered(sentAt: now, now: now)
        #expect(subject.state == state(.paused, 1, next: nil, remaining: 0))
        _ = subject.resume(now: now + hour)
        #expect(subject.due(now: now + hour) == .accepted([]))
        #expect(subject.state.status == .completed)
    }
}

@Suite struct EnrollmentSignalTests {
    @Test func replyEndsWhenExitOnReply() {
        var subject = machine(state(.active, 2, next: now + day))
        #expect(subject.reply(now: now) == .accepted([.recordReply, .cancelPendingDeliveries]))
        #expect(subject.state == state(.replied, 2, next: nil))
    }

    @Test func replyIsOnlyRecordedOtherwise() {
        var subject = machine(noExit, state(.active, 1, next: now + day))
        #expect(subject.reply(now: now) == .accepted([.recordReply, .stopCompanyEnrollments]))
        #expect(subject.state == state(.active, 1, next: now + day))
    }

    @Test(arguments: [EnrollmentEvent.optOut, .bounce, .stop])
    func endingSignalsCancelDeliveries(_ event: EnrollmentEvent) {
        for status in [EnrollmentStatus.active, .paused, .failed] {
            var subject = machine(state(status, 0, next: nil))
            #expect(subject.handle(event, now: now) == .accepted([.cancelPendingDeliveries]))
            #expect(subject.state.status.isTerminal)
            #expect(subject.state.nextRunAt == nil && subject.state.resumeAt == nil && subject.state.remainingWait == nil)
        }
    }

    @Test func eventNamesAreStable() {
        #expect(events.map(\.name) == ["due", "delivered", "delivery_failed", "reply", "opt_out", "bounce", "pause", "pause", "resume", "stop", "retry", "skip_step", "goal_met"])
    }
}

@Suite struct EnrollmentDeliveryFailureTests {
    @Test func staleFailureWhileWaitingIsRefused() {
        var subject = machine(state(.active, 2, next: now + day))
        guard case .rejected(let error) = subject.deliveryFailed(reason: "x", now: now) else { Issue.record("accepted"); return }
        #expect(error.description == "enrollment is active; delivery failed is not allowed (not awaiting a delivery)")
        #expect(subject.state == state(.active, 2, next: now + day))
    }

    @Test func pausedAwaitingDeliveryCanFail() {
        var subject = machine(state(.paused, 0, next: nil))
        #expect(subject.deliveryFailed(reason: "x", now: now) == .accepted([]))
        #expect(subject.state == state(.failed, 0, next: nil, error: "x"))
    }
}

@Suite struct SkipStepTests {
    @Test("skipping an awaited email moves past it; the next wait counts from now and no send is recorded")
    func skipAwaited() {
        var subject = machine(base, state(.active, 0, next: nil))
        #expect(subject.skipStep(now: now) == .accepted([]))
        #expect(subject.state.currentStepIndex == 2)
        #expect(subject.state.nextRunAt == now + 2 * day)
    }

    @Test("skipping the failed delivery of a failed enrollment makes it active again")
    func skipFailed() {
        var subject = machine(base, state(.failed, 0, next: nil, error: "550"))
        #expect(subject.skipStep(now: now) == .accepted([]))
        #expect(subject.state.status == .active)
        #expect(subject.state.lastError == nil)
    }

    @Test("an enrollment that is not waiting for a delivery cannot skip")
    func notAwaiting() {
        var subject = machine(base, state(.active, 1, next: now + hour))
        guard case .rejected(let error) = subject.skipStep(now: now) else {
            Issue.record("accepted")
            return
        }
        #expect(error.description.contains("not waiting for a delivery"))
    }
}
