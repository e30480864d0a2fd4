import Foundation
import Postgres
import SequenceStore
import Testing
import TestSupport

/// `seqd check` finds each kind of violation when the protection behind it is bypassed by hand.
@Suite("seqd check")
struct CheckCommandTests {
    static let sequence = """
        name: two
        sender: { address: team@example.com }
        steps:
          - { key: first, type: email, subject: "First", body: "one" }
          - { type: wait, duration: 1d }
          - { key: second, type: email, subject: "Second", body: "two" }
        """

    func scenario(_ prefix: String) async throws -> (Scenario, Connection) {
        let scenario = try await Scenario.prepare(
            prefix: prefix, sequence: Self.sequence, name: "two", contacts: ["ada@example.com", "bob@example.com", "cy@example.com"])
        try await scenario.runOnce()
        return (scenario, try scenario.connect())
    }

    @Test("a clean run passes every check")
    func clean() async throws {
        let (scenario, _) = try await scenario("check_clean")
        let result = try await scenario.seqd.run("check")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("all 9 checks passed"))
    }

    @Test("each bypassed protection is reported with the row and what is wrong, and check exits 1")
    func violations() async throws {
        let (scenario, connection) = try await scenario("check_broken")
        func id(_ email: String) throws -> Int64 {
            try connection.query(
                "SELECT e.id FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = $1", [email]
            )[0].decode("id")
        }
        let ada = try id("ada@example.com"), bob = try id("bob@example.com"), cy = try id("cy@example.com")
        // Invariant 1 without its constraint: a second delivery for a step.
        try connection.execute("ALTER TABLE seqd.deliveries DROP CONSTRAINT deliveries_one_per_step")
        try connection.query(
            """
            INSERT INTO seqd.deliveries (enrollment_id, contact_id, step_key, idempotency_key, status)
            SELECT id, contact_id, 'first', 'dup-' || id, 'cancelled' FROM seqd.enrollments WHERE id = $1
            """, [ada])
        // Invariant 2 without its trigger: a status change that left no audit row.
        try connection.execute("ALTER TABLE seqd.enrollments DISABLE TRIGGER enrollments_guard_update")
        try connection.query("UPDATE seqd.enrollments SET status = 'paused' WHERE id = $1", [bob])
        try connection.execute("ALTER TABLE seqd.enrollments ENABLE TRIGGER enrollments_guard_update")
        // Invariant 3: an attempt that started after the address was suppressed.
        try connection.query(
            "INSERT INTO seqd.suppressions (email, reason, source, created_at) VALUES ('cy@example.com', 'opt_out', 'test', now() - interval '1 hour')")
        // A lease that nobody rescued, and an active enrollment with no way forward.
        try connection.query(
            """
            UPDATE seqd.deliveries SET status = 'sending', lease_owner = 'gone', lease_expires_at = now() - interval '1 hour',
                   fencing_token = 1
            WHERE enrollment_id = $1 AND step_key = 'first'
            """, [cy])
        try connection.query("UPDATE seqd.enrollments SET next_run_at = NULL WHERE id = $1", [ada])

        let result = try await scenario.seqd.run("check", "--json")
        #expect(result.status == 1, "\(result)")
        struct Outcome: Decodable {
            struct Violation: Decodable {
                let enrollmentID: Int64?
                let problem: String
            }
            let check: String
            let violations: [Violation]
        }
        let decoder = JSONDecoder()
        let outcomes = try decoder.decode([Outcome].self, from: Data(result.stdout.utf8))
        func failing(_ check: String) -> [Outcome.Violation] { outcomes.first { $0.check == check }?.violations ?? [] }
        #expect(failing("one-delivery-per-step").map(\.enrollmentID) == [ada])
        #expect(failing("audited-state").map(\.enrollmentID) == [bob])
        #expect(failing("audited-state").first?.problem.contains("row says paused") == true)
        #expect(failing("opt-out-wins").map(\.enrollmentID) == [cy])
        #expect(failing("leases-rescued").map(\.enrollmentID) == [cy])
        #expect(failing("way-forward").map(\.enrollmentID) == [ada])
        #expect(failing("terminal-is-terminal").isEmpty)
        #expect(failing("one-live-enrollment").isEmpty)

        let human = try await scenario.seqd.run("check")
        #expect(human.stdout.contains("FAIL one-delivery-per-step"))
        #expect(human.stdout.contains("enrollment \(bob): row says paused"))
    }
}
