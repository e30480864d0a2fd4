import Foundation
import Postgres
import SequenceEngine
import SequenceStore
import Testing
import TestSupport

/// Invariant 10: a statement that changes many enrollments costs time linear in their number. The
/// guard and audit trigger once grew with the square of the rows changed (a nested loop over its
/// transition tables): ×3.7–3.9 per doubling, 8.4 s for 10,000 rows. A test of shape, not speed:
/// four times the rows must take about four times as long, far below the sixteen of a square.
@Suite("bulk changes")
struct BulkChangeTests {
    let connection: Connection

    init() async throws {
        connection = try Connection(try await TestDatabase.shared.makeMigratedDatabase(prefix: "bulk"))
        let definition = try SequenceDefinition.parse(
            """
            name: bulk
            sender: { address: team@example.com }
            steps:
              - { key: first, type: wait, duration: 2d }
              - { key: second, type: wait, duration: 2d }
            """, fileName: "bulk.yaml")
        try SequenceCatalog.apply(connection, [definition])
        try connection.execute(
            """
            INSERT INTO seqd.contacts (email) SELECT 'c' || i || '@example.com' FROM generate_series(1, 40000) i;
            INSERT INTO seqd.enrollments (contact_id, sequence_id, sequence_version, next_run_at)
            SELECT c.id, s.id, 1, now() + interval '2 days' FROM seqd.contacts c, seqd.sequences s ORDER BY c.id;
            ANALYZE seqd.enrollments;
            """)
    }

    /// The fastest of `runs` executions of `sql`, each rolled back so the next starts from the same rows.
    func fastest(_ sql: String, runs: Int) throws -> Duration {
        var best = Duration.seconds(3600)
        for _ in 0..<runs {
            try connection.execute("BEGIN")
            let started = ContinuousClock.now
            try connection.execute(sql)
            best = min(best, ContinuousClock.now - started)
            try connection.execute("ROLLBACK")
        }
        return best
    }

    @Test("a manual UPDATE of 40,000 enrollments takes about four times as long as one of 10,000, and audits each once")
    func linearUpdate() throws {
        let pause = "UPDATE seqd.enrollments SET status = 'paused', next_run_at = NULL WHERE id <= "
        _ = try fastest(pause + "1000", runs: 1)  // warm the caches and the function's plans
        let small = try fastest(pause + "10000", runs: 3)
        let large = try fastest(pause + "40000", runs: 2)
        let ratio = large / small
        #expect(ratio < 8, "10,000 rows: \(small), 40,000 rows: \(large), ratio \(ratio)")

        try connection.execute(pause + "40000")
        let counts = try connection.query(
            """
            SELECT count(*) AS events, count(DISTINCT enrollment_id) AS enrollments,
                   count(*) FILTER (WHERE actor = session_user AND event = 'manual_update') AS by_user
            FROM seqd.enrollment_events WHERE from_status = 'active' AND to_status = 'paused'
            """)[0]
        #expect(try counts.decode("events", as: Int.self) == 40000)
        #expect(try counts.decode("enrollments", as: Int.self) == 40000)
        #expect(try counts.decode("by_user", as: Int.self) == 40000)
    }

    @Test("a bulk change with one invalid row among thousands is rejected whole, naming that row")
    func oneBadRowInMany() throws {
        let bad = try connection.query("SELECT max(id) AS id FROM seqd.enrollments")[0].decode("id", as: Int.self)
        try connection.query("UPDATE seqd.enrollments SET status = 'completed' WHERE id = $1", [bad])
        let error = #expect(throws: PostgresError.self) {
            try connection.execute("UPDATE seqd.enrollments SET status = 'paused'")
        }
        #expect(error?.sqlState == "SQ001")
        #expect(error?.message == "invalid enrollment transition: enrollment \(bad) cannot go from completed to paused")
        let paused = try connection.query("SELECT count(*) AS n FROM seqd.enrollments WHERE status = 'paused'")[0]
        #expect(try paused.decode("n", as: Int.self) == 0)
    }
}
