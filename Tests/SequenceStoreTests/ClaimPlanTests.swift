import Foundation
import Postgres
import SequenceEngine
import SequenceStore
import Testing
import TestSupport

/// The claim queries' plans, as the daemon runs them: prepared statements, which PostgreSQL turns
/// into a generic plan after five runs. Both must lock their batch inside a MATERIALIZED CTE (the
/// LIMIT and the lock stay together) and reach the due rows through their partial index, never by
/// scanning the table: at a million rows a scan per claim is what would collapse throughput.
@Suite("claim query plans")
struct ClaimPlanTests {
    let connection: Connection

    /// 3,000 enrollments of which 1% are due, and one delivery each of which 1% are pending.
    init() async throws {
        connection = try Connection(try await TestDatabase.shared.makeMigratedDatabase(prefix: "plans"))
        let definition = try SequenceDefinition.parse(
            """
            name: plans
            sender: { address: team@example.com }
            steps:
              - { key: hello, type: email, subject: "Hi", body: "Hello" }
              - { type: wait, duration: 2d }
            """, fileName: "plans.yaml")
        try SequenceCatalog.apply(connection, [definition])
        try connection.execute(
            "INSERT INTO seqd.contacts (email) SELECT 'c' || i || '@example.com' FROM generate_series(1, 3000) i")
        _ = try Enroller.enroll(connection, sequence: "plans", selection: .all, actor: "test")
        try connection.execute(
            """
            UPDATE seqd.enrollments SET next_run_at = now() + interval '30 days' WHERE id % 100 <> 0;
            INSERT INTO seqd.deliveries (enrollment_id, contact_id, step_key, idempotency_key, status, message)
            SELECT id, contact_id, 'hello', 'plans-' || id,
                   CASE WHEN id % 100 = 0 THEN 'pending' ELSE 'sent' END::seqd.delivery_status, '{}'
            FROM seqd.enrollments;
            ANALYZE seqd.enrollments; ANALYZE seqd.deliveries; ANALYZE seqd.contacts;
            """)
    }

    /// The plan of `sql` as a generic plan of a prepared statement, executed with `arguments`.
    func genericPlan(_ sql: String, name: String, arguments: String) throws -> String {
        try connection.execute("SET plan_cache_mode = force_generic_plan")
        try connection.execute("PREPARE \(name) AS \(sql)")
        return try connection.query("EXPLAIN (COSTS OFF) EXECUTE \(name)(\(arguments))")
            .rows.map { try $0.decode("QUERY PLAN", as: String.self) }.joined(separator: "\n")
    }

    @Test("advancing: the due partial index, a locked LIMIT inside a materialized CTE, no scan of enrollments")
    func advanceClaim() throws {
        let plan = try genericPlan(Advancer.claimSQL, name: "advance_claim_plan", arguments: "100")
        #expect(plan.contains("CTE due"), "\(plan)")
        #expect(plan.contains("enrollments_due on enrollments"), "\(plan)")
        #expect(plan.contains("LockRows") && plan.contains("Limit"), "\(plan)")
        #expect(!plan.contains("Seq Scan on enrollments"), "\(plan)")
    }

    /// A burst the statistics have not seen (a mass enroll queues thousands at once): the plan
    /// must still walk the index in due order and stop at the LIMIT, not join and sort them all.
    @Test("a backlog queued after the last ANALYZE: both claims still walk their index in order, no hash join, no sort")
    func unseenBacklog() throws {
        try connection.execute(
            """
            UPDATE seqd.enrollments SET next_run_at = now() - interval '1 minute' WHERE id % 100 <> 0 AND id % 3 = 0;
            UPDATE seqd.deliveries SET status = 'pending', next_attempt_at = now() - interval '1 minute' WHERE id % 3 = 0;
            """)
        for (name, sql, arguments, index) in [
            ("advance_backlog_plan", Advancer.claimSQL, "100", "enrollments_due"),
            ("delivery_backlog_plan", DeliveryOutbox.claimSQL, "100, true", "deliveries_claimable"),
        ] {
            let plan = try genericPlan(sql, name: name, arguments: arguments)
            let claim = Self.subtree(of: "CTE ", in: plan)
            #expect(claim.contains("Index Scan using \(index)"), "\(plan)")
            for node in ["Hash", "Sort", "Bitmap", "Seq Scan"] {
                #expect(!claim.contains(node), "\(node) in the claim: \(plan)")
            }
        }
    }

    /// The lines of the plan node whose line contains `marker`, with everything under it.
    static func subtree(of marker: String, in plan: String) -> String {
        let lines = plan.split(separator: "\n")
        guard let start = lines.firstIndex(where: { $0.contains(marker) }) else { return "" }
        let depth = lines[start].prefix { $0 == " " }.count
        let rest = lines[(start + 1)...].prefix { $0.prefix { $0 == " " }.count > depth }
        return ([lines[start]] + rest).joined(separator: "\n")
    }

    @Test("sending: the claimable partial index in a generic plan, a locked LIMIT inside a materialized CTE")
    func deliveryClaim() throws {
        let plan = try genericPlan(DeliveryOutbox.claimSQL, name: "delivery_claim_plan", arguments: "100, true")
        #expect(plan.contains("CTE claimable"), "\(plan)")
        #expect(plan.contains("deliveries_claimable on deliveries"), "\(plan)")
        #expect(plan.contains("LockRows") && plan.contains("Limit"), "\(plan)")
        #expect(!plan.contains("Seq Scan on deliveries"), "\(plan)")
    }
}
