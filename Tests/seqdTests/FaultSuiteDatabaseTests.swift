import Foundation
import Postgres
import Testing
import TestSupport

extension FaultSuite {
    /// Scenarios 3 and 4: the daemons lose their database sessions mid-run.
    @Suite("lost database sessions")
    struct Database {
        static let count = 1_500, emails = 3

        static func environment() -> [String: String] {
            // notice: the loops' "working again" after a reconnect is logged at that level.
            FaultSuite.daemonEnvironment(["SEQD_LOG_LEVEL": "notice", "SEQD_DELIVERY_LEASE_TIMEOUT": "5s"])
        }

        static func sent(_ connection: Connection) throws -> Int {
            try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'")[0].decode("n")
        }

        /// Scenario 3. The server itself restarts (fast shutdown ends every session) — twice, in a
        /// private cluster, since the shared one serves the other suites.
        @Test("PostgreSQL restarted (fast) mid-run: daemons report it, reconnect with backoff, finish, lose nothing")
        func serverRestart() async throws {
            let start = ContinuousClock.now
            try await PrivateCluster.with { cluster in
                let url = try await cluster.makeMigratedDatabase("faults_restart")
                let scenario = try await Scenario.prepare(
                    databaseURL: url, sequence: Scenario.drip(name: "restart", emails: Self.emails, wait: "1s"), name: "restart",
                    contacts: (0..<Self.count).map { "restart\($0)@example.com" })
                var connection = try scenario.connect()
                let daemons = (0..<2).map { DaemonProcess(scenario.seqd, environment: Self.environment(), name: "restart\($0)") }
                for daemon in daemons { try daemon.start() }
                var restarts = 0
                for fraction in [4, 2] {
                    let threshold = Self.count * Self.emails / fraction
                    try await waitUntil(timeout: .seconds(120), "\(threshold) sends before restart \(restarts + 1)") {
                        try Self.sent(connection) >= threshold
                    }
                    try await cluster.restart(mode: .fast)
                    restarts += 1
                    connection = try scenario.connect()
                    #expect(try RunOutcome.live(connection) > 0, "the run ended before restart \(restarts); make it longer")
                }
                let reconnected = connection
                try await waitUntil(timeout: .seconds(180), "every enrollment to finish after the restarts") {
                    try RunOutcome.live(reconnected) == 0
                }
                try await FaultSuite.stop(daemons)
                for daemon in daemons {
                    #expect(daemon.log.contains("database connection lost"), "no lost connection reported:\n\(daemon.log)")
                    #expect(daemon.log.contains("working again"), "no recovery reported:\n\(daemon.log)")
                }
                let outcome = try RunOutcome.load(connection)
                FaultSuite.expectComplete(outcome, enrollments: Self.count, emails: Self.emails)
                try await FaultSuite.expectCheckClean(scenario.seqd)
                let lost = daemons.map { $0.log.components(separatedBy: "database connection lost").count - 1 }
                print("fault 3 (server restart): \(restarts) fast restarts; lost-connection log lines per daemon \(lost); "
                    + "\(outcome.attempts - outcome.sent) re-sent after an unknown outcome; \(outcome); \(FaultSuite.elapsed(since: start))")
            }
        }

        /// Scenario 4. `pg_terminate_backend` on every seqd session of this test's database, many
        /// of them inside a transaction, several times during the run.
        @Test("pg_terminate_backend of the daemons' sessions mid-transaction: they reconnect, finish, lose nothing")
        func terminatedSessions() async throws {
            let start = ContinuousClock.now
            let scenario = try await Scenario.prepare(
                prefix: "fault_terminate", sequence: Scenario.drip(name: "terminate", emails: Self.emails, wait: "1s"),
                name: "terminate", contacts: (0..<Self.count).map { "terminate\($0)@example.com" })
            let connection = try scenario.connect()
            let daemons = (0..<2).map { DaemonProcess(scenario.seqd, environment: Self.environment(), name: "terminate\($0)") }
            for daemon in daemons { try daemon.start() }
            try await waitUntil(timeout: .seconds(60), "the first sends") { try Self.sent(connection) > 0 }
            var rounds = 0, terminated = 0, inTransaction = 0
            var generator = SystemRandomNumberGenerator()
            // At least six rounds, and until sessions were caught inside a transaction at least three times.
            while rounds < 6 || (inTransaction < 3 && rounds < 30) {
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...600, using: &generator)))
                guard try RunOutcome.live(connection) > 0 else { break }
                let row = try connection.query(
                    """
                    SELECT count(*) FILTER (WHERE xact_start IS NOT NULL) AS in_transaction,
                           count(*) FILTER (WHERE pg_terminate_backend(pid)) AS terminated
                    FROM pg_stat_activity
                    WHERE datname = current_database() AND application_name LIKE 'seqd %' AND pid <> pg_backend_pid()
                    """)[0]
                terminated += try row.decode("terminated", as: Int.self)
                inTransaction += try row.decode("in_transaction", as: Int.self)
                rounds += 1
            }
            #expect(rounds >= 6, "the run ended after \(rounds) rounds of terminations; make it longer")
            #expect(inTransaction >= 1, "no session was caught inside a transaction")
            try await waitUntil(timeout: .seconds(180), "every enrollment to finish after the terminations") {
                try RunOutcome.live(connection) == 0
            }
            try await FaultSuite.stop(daemons)
            for daemon in daemons {
                #expect(daemon.log.contains("connection lost"), "no lost connection reported:\n\(daemon.log)")
            }
            let outcome = try RunOutcome.load(connection)
            FaultSuite.expectComplete(outcome, enrollments: Self.count, emails: Self.emails)
            try await FaultSuite.expectCheckClean(scenario.seqd)
            print("fault 4 (pg_terminate_backend): \(rounds) rounds, \(terminated) sessions terminated, \(inTransaction) of them "
                + "inside a transaction; \(outcome.attempts - outcome.sent) re-sent after an unknown outcome; \(outcome); "
                + FaultSuite.elapsed(since: start))
        }
    }
}
