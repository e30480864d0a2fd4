import Foundation
import Testing
@testable import SequenceEngine

/// `trigger:` and `exit_when:` in sequence files, event properties in templates and conditions,
/// the `converted` end, and the bounds on incoming events.
@Suite struct TriggersGoalsTests {
    static let triggered = """
        name: trial
        sender: { address: hello@example.com }
        trigger: { event: trial_started, if: { property: plan, in: [pro, team] } }
        exit_when:
          - { event: meeting_booked }
          - { attribute: plan, equals: paid }
        steps:
          - { key: welcome, type: email, subject: "Your {{event.plan}} trial", body: "Hi {{first_name|there}}" }
          - { type: wait, duration: 2d }
          - { key: nudge, type: email, subject: "Still there?", body: "..." }
        """

    @Test func parsesAndStoresTriggerAndGoals() throws {
        let definition = try SequenceDefinition.parse(Self.triggered, fileName: "trial.yaml")
        #expect(definition.trigger?.event == "trial_started")
        #expect(definition.trigger?.condition == .oneOf(.property("plan"), values: ["pro", "team"]))
        #expect(definition.exitWhen == [.event("meeting_booked"), .condition(.equals(.attribute("plan"), value: "paid"))])
        #expect(definition.goalEvents == ["meeting_booked"])
        #expect(definition.goalDescription(at: 1) == #"exit_when[1] {"attribute":"plan","equals":"paid"}"#)
        let stored = try SequenceDefinition.decodeStored(definition.canonicalJSON())
        #expect(stored == definition)
    }

    @Test func sequencesWithoutThemKeepTheirCanonicalBytes() throws {
        let plain = try SequenceDefinition.parse(
            "name: a\nsender: { address: a@example.com }\nsteps: [{ type: email, subject: s, body: b }]", fileName: "a.yaml")
        let json = String(decoding: plain.canonicalJSON(), as: UTF8.self)
        #expect(!json.contains("trigger") && !json.contains("exit_when"))
    }

    @Test func triggerConditionAndGoalsEvaluate() throws {
        let definition = try SequenceDefinition.parse(Self.triggered, fileName: "trial.yaml")
        let trigger = try #require(definition.trigger)
        #expect(trigger.matches(ContactFields(email: "a@example.com", event: ["plan": "pro"])))
        #expect(!trigger.matches(ContactFields(email: "a@example.com", event: ["plan": "free"])))
        #expect(!trigger.matches(ContactFields(email: "a@example.com")))
        let contact = ContactFields(email: "a@example.com", attributes: ["plan": "trial"])
        #expect(definition.metGoal(by: contact, stepData: [:], eventsSinceEnrollment: []) == nil)
        #expect(definition.metGoal(by: contact, stepData: [:], eventsSinceEnrollment: ["meeting_booked"]) == 0)
        var paid = contact
        paid.attributes["plan"] = "paid"
        #expect(definition.metGoal(by: paid, stepData: [:], eventsSinceEnrollment: ["other"]) == 1)
    }

    @Test func templatesReadEventProperties() throws {
        let definition = try SequenceDefinition.parse(Self.triggered, fileName: "trial.yaml")
        guard case .email(let email) = definition.steps[0].kind else { throw Unexpected() }
        let contact = ContactFields(email: "a@example.com", firstName: "Ada", event: ["plan": "pro"])
        #expect(try definition.render(email, at: 0, for: contact, enrollmentID: 1).subject == "Your pro trial")
        // Without the event (an operator's enrollment) the field is missing: skipped, never a hole.
        #expect(definition.missingFields(for: ContactFields(email: "a@example.com")) == ["event.plan"])
    }

    @Test func rejectsBadTriggersAndGoalsByPath() {
        let cases: [(String, String)] = [
            ("trigger: { event: trial_started, when: x }", "trigger.when: unknown field"),
            ("trigger: { if: { property: plan, equals: pro } }", "trigger.event: missing required field"),
            ("trigger: { event: 'bad name' }", "trigger.event: 'bad name' is not an event name"),
            ("exit_when: []", "exit_when: must list at least one goal"),
            ("exit_when: [{ event: booked, extra: 1 }]", "exit_when[0].extra: unknown field"),
            ("exit_when: [{ attribute: plan }]", "exit_when[0]: needs one of equals"),
            ("exit_when: [{ property: 'a b', equals: x }]", "exit_when[0].property: 'a b' is not a property name"),
            ("exit_when: { event: booked }", "exit_when: expected a list"),
        ]
        for (line, expected) in cases {
            let text = "name: a\nsender: { address: a@example.com }\n\(line)\nsteps: [{ type: email, subject: s, body: b }]"
            #expect(throws: SequenceValidationError.self, "\(line)") { try SequenceDefinition.parse(text, fileName: "a.yaml") }
            do {
                _ = try SequenceDefinition.parse(text, fileName: "a.yaml")
            } catch {
                #expect(error.description.contains("a.yaml: \(expected)"), "\(line): \(error.description)")
            }
        }
    }

    @Test func goalMetEndsLiveEnrollmentsConvertedAndCancelsWhatWasQueued() throws {
        let definition = try SequenceDefinition.parse(Self.triggered, fileName: "trial.yaml")
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        for state in [
            EnrollmentState(status: .active, currentStepIndex: 2, nextRunAt: now + 3_600),
            EnrollmentState(status: .paused, currentStepIndex: 2, nextRunAt: nil, remainingWait: 60),
            EnrollmentState(status: .failed, currentStepIndex: 0, nextRunAt: nil, lastError: "550"),
        ] {
            var machine = EnrollmentMachine(definition: definition, contact: ContactFields(email: "a@example.com"), state: state)
            #expect(machine.handle(.goalMet(goal: "exit_when[0]"), now: now) == .accepted([.cancelPendingDeliveries]))
            #expect(machine.state.status == .converted && machine.state.nextRunAt == nil && machine.state.remainingWait == nil)
            #expect(machine.state.currentStepIndex == state.currentStepIndex, "a conversion keeps the step it happened at")
            guard case .rejected(let refusal) = machine.handle(.goalMet(goal: "exit_when[0]"), now: now) else { throw Unexpected() }
            #expect(refusal.description.hasPrefix("enrollment is converted; goal-met is not allowed"))
        }
    }

    @Test func incomingEventsAreBounded() throws {
        func problem(name: String = "trial_started", key: String = "k1", properties: [String: String] = [:]) -> String? {
            do {
                _ = try IncomingEvent(email: "a@example.com", name: name, key: key, properties: properties, occurredAt: nil)
                return nil
            } catch {
                return error.description
            }
        }
        #expect(problem() == nil)
        #expect(problem(name: "billing:invoice.paid-v2") == nil)
        #expect(problem(name: "")?.hasPrefix("name: must not be empty") == true)
        #expect(problem(name: "_x")?.contains("is not an event name") == true)
        #expect(problem(name: String(repeating: "a", count: 101))?.contains("longer than 100") == true)
        #expect(problem(key: " ")?.hasPrefix("key: must not be empty") == true)
        #expect(problem(key: String(repeating: "k", count: 201))?.contains("longer than 200") == true)
        #expect(problem(key: "a\nb")?.contains("control character") == true)
        #expect(problem(properties: ["a-b": "x"])?.contains("is not a property name") == true)
        #expect(problem(properties: ["plan": String(repeating: "x", count: 1_001)]) == "properties.plan: is longer than 1000 characters")
        #expect(problem(properties: ["plan": "a\u{0}b"]) == "properties.plan: contains a NUL character")
        let many = Dictionary(uniqueKeysWithValues: (0...50).map { ("p\($0)", "v") })
        #expect(problem(properties: many)?.contains("at most 50") == true)
    }

    struct Unexpected: Error {}
}
