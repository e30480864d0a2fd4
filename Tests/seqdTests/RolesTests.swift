import Foundation
import Postgres
import Testing
import TestSupport

/// `Deploy/sql/roles.sql` gives each role what it needs and nothing more. (Every end-to-end test
/// already runs the CLI and the daemon as `seqd_runtime`; this checks the boundaries.)
@Suite("database roles")
struct RolesTests {
    @Test("the runtime role writes rows but no schema, history or transition table; readonly only reads")
    func leastPrivilege() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "roles", sequence: SignalTests.longWait, name: "slow", contacts: ["a@example.com"])
        try await scenario.runOnce()
        let runtime = try Connection(scenario.runtimeURL)
        #expect(try runtime.query("SELECT current_user AS u")[0].decode("u", as: String.self) == "seqd_runtime")
        for statement in [
            "CREATE TABLE seqd.intruder (id int)",
            "UPDATE seqd.schema_migrations SET checksum = 'x'",
            "INSERT INTO seqd.enrollment_transitions VALUES ('completed', 'active')",
            "DELETE FROM seqd.enrollment_events",
            "DROP TABLE seqd.signals",
        ] {
            let error = #expect(throws: PostgresError.self, "\(statement)") { try runtime.execute(statement) }
            #expect(error?.sqlState == "42501" || error?.sqlState == "42P01", "\(statement): \(String(describing: error))")
        }
        // It can see other sessions' transaction ages (pg_read_all_stats) for the oldest-transaction gauge.
        let visible = try runtime.query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'postgres' AND query IS NOT NULL AND query <> '<insufficient privilege>'"
        )[0].decode("n", as: Int.self)
        #expect(visible >= 0)
        let readonly = try Connection(TestDatabase.replacingUser(in: scenario.databaseURL, with: "seqd_readonly"))
        #expect(try readonly.query("SELECT count(*) AS n FROM seqd.enrollment_overview")[0].decode("n", as: Int.self) == 1)
        let error = #expect(throws: PostgresError.self) { try readonly.execute("UPDATE seqd.enrollments SET status = 'paused'") }
        #expect(error?.sqlState == "42501")
    }
}
