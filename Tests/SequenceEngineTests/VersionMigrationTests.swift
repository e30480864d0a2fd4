import Foundation
import Testing
@testable import SequenceEngine

/// The migrate decisions without a database: positions by key, the end, --map, in-flight
/// deliveries, carried failed deliveries, and steps that would repeat.
@Suite("version migration plan")
struct VersionMigrationTests {
    /// v1: intro → wait-2 → tips → wait-4 → promo → wait-6
    static let v1 = """
        name: onboarding
        sender: { address: hello@example.com }
        steps:
          - { key: intro, type: email, subject: Hi, body: Hi }
          - { type: wait, duration: 2d }
          - { key: tips, type: email, subject: Tips, body: Tips }
          - { type: wait, duration: 2d }
          - { key: promo, type: email, subject: Promo, body: Promo }
          - { type: wait, duration: 1d }
        """

    /// v2: tips renamed to tips-v2, promo deleted, a webhook and a closing email appended.
    static let v2 = """
        name: onboarding
        sender: { address: hello@example.com }
        steps:
          - { key: intro, type: email, subject: Hi, body: Hi }
          - { type: wait, duration: 2d }
          - { key: tips-v2, type: email, subject: Tips, body: Tips }
          - { type: wait, duration: 2d }
          - { key: hook, type: webhook, url: "https://example.com/h" }
          - { key: wait-6, type: wait, duration: 1d }
          - { key: closing, type: email, subject: Bye, body: Bye }
        """

    let old: SequenceDefinition
    let new: SequenceDefinition

    init() throws {
        old = try definition(Self.v1)
        new = try definition(Self.v2)
    }

    func plan(_ map: [String: String] = [:]) throws -> VersionMigrationPlan {
        try VersionMigrationPlan(target: new, targetVersion: 2, otherVersions: [1: old], map: map)
    }

    func candidate(
        at index: Int, _ status: EnrollmentStatus = .active, unscheduled: Bool = false,
        deliveries: [String: DeliveryStatus] = [:]
    ) -> VersionMigrationPlan.Candidate {
        .init(definition: old, currentStepIndex: index, status: status, unscheduled: unscheduled, deliveries: deliveries)
    }

    @Test("a step present in both versions keeps its key; the index follows it")
    func sameKey() throws {
        #expect(try plan().decide(candidate(at: 0)) == .move(index: 0, carriedDelivery: nil))
        // After wait-2 of v1 (index 2 = tips): tips is gone without a map.
        #expect(try plan().decide(candidate(at: 2, deliveries: ["intro": .sent])) == .needsMap(stepKey: "tips"))
        #expect(try plan(["tips": "tips-v2"]).decide(candidate(at: 2, deliveries: ["intro": .sent]))
            == .move(index: 2, carriedDelivery: nil))
    }

    @Test("past the last step: just after that step's counterpart, so appended steps are picked up")
    func endPosition() throws {
        // v1's last step wait-6 is in v2 at index 5: the enrollment will run `closing` next.
        #expect(try plan().decide(candidate(at: 6, deliveries: ["intro": .sent, "tips": .sent, "promo": .sent]))
            == .move(index: 6, carriedDelivery: nil))
        #expect(VersionMigrationPlan.position(in: old, at: 6) == .end(after: "wait-6"))
        // A hand-edited index far past the end is the end too.
        #expect(VersionMigrationPlan.position(in: old, at: 40) == .end(after: "wait-6"))
        // Mapped to end: the step count, so it completes when due.
        #expect(try plan(["promo": "end"]).decide(candidate(at: 4)) == .move(index: 7, carriedDelivery: nil))
        #expect(try plan().targetPosition(at: 7) == .end(after: "closing"))
    }

    @Test("pending, sending and unknown deliveries keep the enrollment in place; sent and cancelled do not")
    func inFlight() throws {
        for status in [DeliveryStatus.pending, .sending, .unknown] {
            #expect(try plan().decide(candidate(at: 0, unscheduled: true, deliveries: ["intro": status]))
                == .inFlight(stepKey: "intro", status: status))
        }
        #expect(try plan().decide(candidate(at: 1, deliveries: ["intro": .sent])) == .move(index: 1, carriedDelivery: nil))
        #expect(try plan().decide(candidate(at: 1, deliveries: ["intro": .cancelled])) == .move(index: 1, carriedDelivery: nil))
    }

    @Test("a failed delivery on a renamed step is carried to the new key; to a different kind it cannot be placed")
    func failedDelivery() throws {
        let failed = candidate(at: 2, .failed, unscheduled: true, deliveries: ["intro": .sent, "tips": .failed])
        #expect(try plan(["tips": "tips-v2"]).decide(failed) == .move(index: 2, carriedDelivery: "tips"))
        // Same key: nothing to rename, and its own failed row is not a "repeat".
        #expect(try plan().decide(candidate(at: 0, .failed, unscheduled: true, deliveries: ["intro": .failed]))
            == .move(index: 0, carriedDelivery: nil))
        guard case .cannotPlace(let reason) = try plan(["tips": "hook"]).decide(failed) else {
            Issue.record("an email's failed delivery must not be retried as a webhook")
            return
        }
        #expect(reason.contains("webhook") && reason.contains("retry or stop"))
        // Onto a wait: retry runs on from there; the failed row stays as history.
        #expect(try plan(["tips": "wait-2"]).decide(failed) == .move(index: 1, carriedDelivery: nil))
        // A failed step that is scheduled (a template error) has no delivery to carry.
        #expect(try plan(["tips": "tips-v2"]).decide(candidate(at: 2, .failed, deliveries: ["intro": .sent]))
            == .move(index: 2, carriedDelivery: nil))
    }

    @Test("a key ahead of the new position that already has a delivery would never be sent: cannot place")
    func repeats() throws {
        // Mapping tips back to intro would make it wait for intro, which was sent.
        guard case .cannotPlace(let reason) = try plan(["tips": "intro"]).decide(candidate(at: 2, deliveries: ["intro": .sent]))
        else {
            Issue.record("expected cannot place")
            return
        }
        #expect(reason.contains("'intro'"))
        // A cancelled delivery blocks the key just as well.
        guard case .cannotPlace = try plan(["promo": "hook"]).decide(candidate(at: 4, deliveries: ["hook": .cancelled]))
        else {
            Issue.record("expected cannot place")
            return
        }
    }

    @Test("--map must name an old key some other version has, and a new key the target has (or end)")
    func badMaps() throws {
        #expect(throws: VersionMigrationPlan.MapError.self) { try plan(["nope": "intro"]) }
        #expect(throws: VersionMigrationPlan.MapError.self) { try plan(["tips": "nope"]) }
        do {
            _ = try plan(["tips": "nope"])
        } catch {
            #expect("\(error)".contains("version 2 has no step 'nope'") && "\(error)".contains("tips-v2"))
        }
        // `closing` exists only in the target: not an old key.
        #expect(throws: VersionMigrationPlan.MapError.self) { try plan(["closing": "intro"]) }
        _ = try plan(["tips": "tips-v2", "promo": "end"])
    }
}
