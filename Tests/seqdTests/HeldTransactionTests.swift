import Foundation
import Postgres
import Testing
import TestSupport

/// Issue 6's adversarial cell, as a test: a forgotten `BEGIN ISOLATION LEVEL REPEATABLE READ` in
/// another session. `seqd status` and the daemon's log must name the backend and its age, and the
/// daemon must keep working while it lasts and say when it ended.
@Suite("A transaction held open by another session", .serialized)
struct HeldTransactionTests {
    /// A threshold of 1 s instead of the default 30 s, so the test does not wait half a minute.
    static let warnSoon = ["SEQD_WORKER_LONG_TRANSACTION_WARNING": "1s"]

    @Test("seqd status (text and --json) and the daemon's log name the blocking backend's pid and age; work goes on")
    func heldTransactionIsReported() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "held", sequence: DaemonRunTests.sequence, name: "drip", contacts: (0..<20).map { "held\($0)@example.com" })
        let connection = try scenario.connect()
        // The operator's psql session, as the superuser: another role than seqd's runtime role.
        let holder = try Connection(scenario.databaseURL, options: SessionOptions(applicationName: "psql"))
        try holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try holder.query("SELECT count(*) FROM seqd.enrollments")
        let pid = Int(holder.backendPID)

        // Under the default threshold (30 s) a young transaction is no news.
        var result = try await scenario.seqd.run(["status"])
        #expect(result.status == 0, "\(result)")
        #expect(!result.stdout.contains("warning:"), "\(result)")

        try await Task.sleep(for: .milliseconds(1_200))
        result = try await scenario.seqd.run(["status"], environment: Self.warnSoon)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("warning: backend pid \(pid) (psql) has held a transaction open for "), "\(result)")
        #expect(result.stdout.contains("idle in transaction"), "\(result)")
        #expect(result.stdout.contains("pg_terminate_backend(\(pid))"), "\(result)")

        result = try await scenario.seqd.run(["status", "--json"], environment: Self.warnSoon)
        #expect(result.status == 0, "\(result)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let held = json?["heldTransaction"] as? [String: Any]
        #expect(held?["pid"] as? Int == pid, "\(result)")
        #expect((held?["ageSeconds"] as? Double ?? 0) >= 1, "\(result)")
        #expect(held?["application"] as? String == "psql", "\(result)")
        #expect(held?["state"] as? String == "idle in transaction", "\(result)")

        let outbox = scenario.seqd.directory.appendingPathComponent("outbox").path
        let daemon = DaemonProcess(
            scenario.seqd,
            environment: DaemonRunTests.daemonEnvironment(outbox: outbox).merging(Self.warnSoon) { $1 }
                .merging(["SEQD_LOG_LEVEL": "notice"]) { $1 },
            name: "held")
        try daemon.start()
        try await waitUntil(timeout: .seconds(20), "the daemon's warning") {
            daemon.log.contains("backend pid \(pid) (psql) has held a transaction open for")
        }
        // It keeps working while the transaction lasts: every first email goes out.
        try await waitUntil(timeout: .seconds(60), "the first emails to be sent while the transaction is held") {
            try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE step_key = 'one' AND status = 'sent'")[0]
                .decode("n", as: Int.self) == 20
        }
        #expect(try holder.query("SELECT 1 AS one")[0].decode("one", as: Int.self) == 1, "the holder's session is still open")

        try holder.execute("COMMIT")
        try await waitUntil(timeout: .seconds(20), "the daemon to say the transaction ended") {
            daemon.log.contains("the long transaction of backend pid \(pid) has ended")
        }
        result = try await scenario.seqd.run(["status"], environment: Self.warnSoon)
        #expect(result.status == 0 && !result.stdout.contains("warning:"), "\(result)")

        daemon.send(SIGTERM)
        let status = try await daemon.waitForExit()
        #expect(status == 0, "daemon exited \(status):\n\(daemon.log)")
        // The warning names no address (the log never carries them).
        #expect(!daemon.log.contains("@example.com"), "\(daemon.log)")
    }
}
