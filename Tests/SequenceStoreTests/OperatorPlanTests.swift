import Foundation
import Postgres
import SequenceEngine
import SequenceStore
import Testing
import TestSupport

/// The plans of the operator's questions whose cost once grew with the whole database (issue 21):
/// at a million enrollments `step_funnel` took 13.6 s, `stuck_enrollments` 1.5 s and `seqd
/// check`'s history passes 15 s each, on a busy 2-core machine. These tests pin the shape that
/// fixed each, on a small database where the planner would be free to choose otherwise.
@Suite("operator query plans")
struct OperatorPlanTests {
    let connection: Connection

    /// 3,000 enrollments, 1% overdue and 1% awaiting a delivery, one delivery and two events each.
    init() async throws {
        connection = try Connection(try await TestDatabase.shared.makeMigratedDatabase(prefix: "opplans"))
        let definition = try SequenceDefinition.parse(
            """
            name: plans
            sender: { address: team@example.com }
            steps:
              - { key: hello, type: email, subject: "Hi", body: "Hello" }
              - { type: wait, duration: 2d }
              - { key: bye, type: email, subject: "Bye", body: "Bye" }
            """, fileName: "plans.yaml")
        try SequenceCatalog.apply(connection, [definition])
        try connection.execute(
            "INSERT INTO seqd.contacts (email) SELECT 'c' || i || '@example.com' FROM generate_series(1, 3000) i")
        _ = try Enroller.enroll(connection, sequence: "plans", selection: .all, actor: "test")
        try connection.execute(
            """
            UPDATE seqd.enrollments SET current_step_index = 1,
                   next_run_at = CASE WHEN id % 100 = 0 THEN now() - interval '1 hour'
                                      WHEN id % 100 = 1 THEN NULL ELSE now() + interval '30 days' END;
            INSERT INTO seqd.deliveries (enrollment_id, contact_id, step_key, idempotency_key, status, message)
            SELECT id, contact_id, 'hello', 'plans-' || id,
                   CASE WHEN id % 100 = 1 THEN 'pending' ELSE 'sent' END::seqd.delivery_status, '{}'
            FROM seqd.enrollments;
            """)
        // Index-only scans need the visibility map; VACUUM runs outside a transaction block.
        try connection.execute("VACUUM ANALYZE seqd.enrollments, seqd.deliveries, seqd.enrollment_events, seqd.contacts")
    }

    func plan(_ sql: String) throws -> String {
        try connection.query("EXPLAIN (COSTS OFF) \(sql)").rows.map { try $0.decode("QUERY PLAN", as: String.self) }
            .joined(separator: "\n")
    }

    @Test("step_funnel reads a sequence's enrollments once, through its function, and neither the audit trail nor the deliveries")
    func funnel() throws {
        let plan = try plan("SELECT * FROM seqd.step_funnel WHERE sequence = 'plans'")
        #expect(plan.contains("Function Scan on step_funnel_counts"), "\(plan)")
        #expect(!plan.contains("enrollment_events") && !plan.contains("deliveries"), "\(plan)")
        let rows = try connection.query(
            "SELECT step_key, entered, here_now, sent FROM seqd.step_funnel WHERE sequence = 'plans' ORDER BY step_index")
        #expect(try rows.rows.map { try $0.decode("step_key", as: String.self) } == ["hello", "wait-2", "bye"])
        // Everyone entered hello and was sent it (they are all past it); all 3,000 sit at the wait.
        #expect(try rows[0].decode("entered", as: Int.self) == 3000 && rows[0].decode("sent", as: Int.self) == 3000)
        #expect(try rows[1].decode("here_now", as: Int.self) == 3000 && rows[2].decode("entered", as: Int.self) == 0)
    }

    @Test("step_results counts deliveries an older binary wrote without sequence_id through their enrollment, and its view reads one sequence")
    func resultsOfOlderRows() throws {
        // The deliveries above were written without sequence_id, as a replica before migration 15 would.
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE sequence_id IS NULL")[0].decode("n", as: Int.self) == 3000)
        let rows = try connection.query("SELECT step_key, variant, sent FROM seqd.step_results WHERE sequence = 'plans'").rows
        #expect(rows.count == 1)
        #expect(try rows.first?.decode("step_key", as: String.self) == "hello" && rows.first?.decode("sent", as: Int.self) == 2970)
        // The view calls the function for the sequence asked about only.
        let plan = try plan("SELECT * FROM seqd.step_results WHERE sequence = 'plans'")
        #expect(plan.contains("Function Scan on step_results") && plan.contains("(name = 'plans'::text)"), "\(plan)")
    }

    @Test("stuck_enrollments is a union of its two cases, the overdue one through the due index, with no hashed subplan")
    func stuck() throws {
        let plan = try plan("SELECT * FROM seqd.stuck_enrollments")
        #expect(plan.contains("Append"), "\(plan)")
        #expect(plan.contains("enrollments_due"), "\(plan)")
        #expect(!plan.contains("hashed SubPlan"), "\(plan)")
        // The 30 overdue ones; the 30 unscheduled ones have their pending delivery.
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.stuck_enrollments")[0].decode("n", as: Int.self) == 30)
    }

    @Test("seqd check's history passes read the history index alone, in order")
    func historyIndexOnly() throws {
        try connection.execute("SET enable_seqscan = off")  // the order, not the size, is under test
        defer { _ = try? connection.execute("RESET enable_seqscan") }
        for name in ["contiguous-history", "audited-state"] {
            let check = try #require(InvariantCheck.checkSQL(name))
            let plan = try plan(check)
            #expect(plan.contains("Index Only Scan") && plan.contains("enrollment_events_history"), "\(name): \(plan)")
            #expect(!plan.contains("Sort"), "\(name): \(plan)")
        }
    }
}
