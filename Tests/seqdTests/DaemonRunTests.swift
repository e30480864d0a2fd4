import Foundation
import Postgres
import Testing
import TestSupport

/// The daemon as operators run it: real `seqd run` processes against a real PostgreSQL, several
/// at once, killed and restarted, checked afterwards with SQL.
@Suite("seqd run end to end", .serialized)
struct DaemonRunTests {
    /// email → 1s → email → 1s → email: three deliveries per enrollment, five steps.
    static let sequence = """
        name: drip
        sender: { address: team@example.com, name: Team }
        steps:
          - key: one
            type: email
            subject: "One for {{first_name|you}}"
            body: "first"
          - type: wait
            duration: 1s
          - key: two
            type: email
            subject: "Two"
            body: "second"
          - type: wait
            duration: 1s
          - key: three
            type: email
            thread: true
            body: "third"
        """

    /// Applies the sequence, imports `count` contacts and enrolls them all, through the CLI.
    static func prepare(count: Int, prefix: String) async throws -> (SeqdProcess, Connection, String) {
        let scenario = try await Scenario.prepare(
            prefix: prefix, sequence: sequence, name: "drip", contacts: (0..<count).map { "c\($0)@example.com" })
        let outbox = scenario.seqd.directory.appendingPathComponent("outbox").path
        return (scenario.seqd, try scenario.connect(), outbox)
    }

    static func daemonEnvironment(outbox: String, leaseTimeout: String = "30s") -> [String: String] {
        [
            "SEQD_DELIVERY_FILE_DIRECTORY": outbox, "SEQD_WORKER_POLL_INTERVAL": "1s", "SEQD_DELIVERY_LEASE_TIMEOUT": leaseTimeout,
            "SEQD_LOG_LEVEL": "warning", "SEQD_WORKER_SHUTDOWN_GRACE": "10s",
        ]
    }

    static func remaining(_ connection: Connection) throws -> Int {
        try connection.query("SELECT count(*) AS n FROM seqd.enrollments WHERE status IN ('active', 'paused')")[0].decode("n")
    }

    /// Invariants 1 and 2 and the outcome every run must reach, checked with SQL and the outbox.
    /// `killed`: a process killed mid-write may leave a hidden temporary file (never an .eml).
    static func expectCompleteAndExact(_ connection: Connection, outbox: String, enrollments: Int, killed: Bool = false) throws {
        let counts = try connection.query(
            """
            SELECT (SELECT count(*) FROM seqd.deliveries) AS deliveries,
                   (SELECT count(*) FROM seqd.deliveries WHERE status = 'sent') AS sent,
                   (SELECT count(*) FROM (SELECT DISTINCT enrollment_id, step_key FROM seqd.deliveries) d) AS distinct_steps,
                   (SELECT count(*) FROM seqd.enrollments WHERE status = 'completed') AS completed,
                   (SELECT count(*) FROM seqd.enrollments) AS enrollments
            """)[0]
        #expect(try counts.decode("enrollments", as: Int.self) == enrollments)
        #expect(try counts.decode("completed", as: Int.self) == enrollments)
        #expect(try counts.decode("deliveries", as: Int.self) == enrollments * 3)
        #expect(try counts.decode("distinct_steps", as: Int.self) == enrollments * 3)
        #expect(try counts.decode("sent", as: Int.self) == enrollments * 3)
        let files = try FileManager.default.contentsOfDirectory(atPath: outbox).filter { $0.hasSuffix(".eml") }
        #expect(files.count == enrollments * 3)
        #expect(Set(files).count == files.count)
        if !killed {
            #expect(!(try FileManager.default.contentsOfDirectory(atPath: outbox)).contains { $0.hasPrefix(".") }, "temporary files left behind")
        }
        // Each enrollment's history is contiguous: enrolled at step 0, every event starts where the
        // previous one ended, and it ends past the last step (5) exactly once.
        let broken = try connection.query(
            """
            WITH ordered AS (
                SELECT enrollment_id, event, from_step, to_step, to_status,
                       lag(to_step) OVER (PARTITION BY enrollment_id ORDER BY id) AS previous_to,
                       row_number() OVER (PARTITION BY enrollment_id ORDER BY id) AS n
                FROM seqd.enrollment_events
            )
            SELECT count(*) FILTER (WHERE n = 1 AND (event <> 'enroll' OR to_step <> 0)) AS bad_start,
                   count(*) FILTER (WHERE n > 1 AND from_step IS DISTINCT FROM previous_to) AS gaps,
                   count(*) FILTER (WHERE n > 1 AND to_step <= from_step) AS backwards,
                   count(*) FILTER (WHERE to_status = 'completed') AS completions
            FROM ordered
            """)[0]
        #expect(try broken.decode("bad_start", as: Int.self) == 0)
        #expect(try broken.decode("gaps", as: Int.self) == 0)
        #expect(try broken.decode("backwards", as: Int.self) == 0)
        #expect(try broken.decode("completions", as: Int.self) == enrollments)
    }

    @Test("three daemons take 5,000 contacts through a 3-email sequence exactly once")
    func threeReplicas() async throws {
        let (seqd, connection, outbox) = try await Self.prepare(count: 5_000, prefix: "replicas")
        let daemons = (0..<3).map { DaemonProcess(seqd, environment: Self.daemonEnvironment(outbox: outbox), name: "daemon\($0)") }
        for daemon in daemons { try daemon.start() }
        try await waitUntil(timeout: .seconds(240), "every enrollment to finish") { try Self.remaining(connection) == 0 }
        for daemon in daemons { daemon.send(SIGTERM) }
        for daemon in daemons {
            let status = try await daemon.waitForExit()
            #expect(status == 0, "daemon exited \(status):\n\(daemon.log)")
        }
        try Self.expectCompleteAndExact(connection, outbox: outbox, enrollments: 5_000)
        let check = try await seqd.run("check")
        #expect(check.status == 0, "\(check)")
        // Every replica did part of the work.
        let workers = try connection.query(
            "SELECT count(DISTINCT split_part(worker, ':', 3)) AS n FROM seqd.delivery_attempts")[0].decode("n", as: Int.self)
        #expect(workers == 3)
    }

    /// Fault suite scenario 2 (issue 5): at least ten SIGKILLs of a random daemon at random
    /// moments, each restarted at once, as systemd or an orchestrator would.
    @Test("daemons killed with SIGKILL at random moments and restarted lose nothing and duplicate nothing")
    func killAndRestart() async throws {
        let count = 2_500
        let (seqd, connection, outbox) = try await Self.prepare(count: count, prefix: "sigkill")
        let environment = Self.daemonEnvironment(outbox: outbox, leaseTimeout: "2s")
        let daemons = [DaemonProcess(seqd, environment: environment, name: "first"), DaemonProcess(seqd, environment: environment, name: "second")]
        for daemon in daemons { try daemon.start() }
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        while try Self.remaining(connection) > 0 && kills < 14 {
            try await Task.sleep(for: .milliseconds(Int.random(in: 100...500, using: &generator)))
            let target = daemons[Int.random(in: 0..<daemons.count, using: &generator)]
            target.send(SIGKILL)
            _ = try await target.waitForExit()
            kills += 1
            try target.start()
        }
        #expect(kills >= 10, "the run finished after \(kills) kills; make it longer")
        try await waitUntil(timeout: .seconds(240), "every enrollment to finish after the kills") { try Self.remaining(connection) == 0 }
        for daemon in daemons { daemon.send(SIGTERM) }
        for daemon in daemons { _ = try await daemon.waitForExit() }
        try Self.expectCompleteAndExact(connection, outbox: outbox, enrollments: count, killed: true)
        let check = try await seqd.run("check")
        #expect(check.status == 0, "\(check)")
        // A delivery handed to the transport twice always shows an attempt whose outcome was unknown
        // (`skipped` rows are claims given back unsent).
        let unexplained = try connection.query(
            """
            SELECT count(*) AS n FROM seqd.deliveries d
            WHERE (SELECT count(*) FROM seqd.delivery_attempts a WHERE a.delivery_id = d.id AND a.outcome IS DISTINCT FROM 'skipped') > 1
              AND NOT EXISTS (SELECT 1 FROM seqd.delivery_attempts a WHERE a.delivery_id = d.id AND a.outcome = 'unknown')
            """)[0].decode("n", as: Int.self)
        #expect(unexplained == 0)
        // Every message on disk carries the Message-ID its delivery row recorded. The file of a
        // delivery sent twice was written by each attempt (same name, renamed into place), so the
        // last write must carry the same Message-ID as the recorded one: the ID is the key's, not
        // the attempt's.
        var mismatched = [String]()
        let sent = try connection.query("SELECT idempotency_key, message_id FROM seqd.deliveries WHERE status = 'sent'")
        for row in sent.rows {
            let key = try row.decode("idempotency_key", as: String.self)
            let recorded = try row.decode("message_id", as: String?.self)
            let file = URL(fileURLWithPath: outbox).appendingPathComponent(key + ".eml")
            let headers = (try? String(contentsOf: file, encoding: .utf8))?.components(separatedBy: "\r\n\r\n").first ?? ""
            let onDisk = headers.components(separatedBy: "\r\n")
                .first { $0.lowercased().hasPrefix("message-id:") }
                .map { $0.dropFirst("message-id:".count).trimmingCharacters(in: .whitespaces) }
            if recorded == nil || onDisk != recorded { mismatched.append("\(key): file \(onDisk ?? "missing"), row \(recorded ?? "NULL")") }
        }
        #expect(sent.count == count * 3)
        #expect(mismatched.isEmpty, "\(mismatched.count) messages differ from their rows' Message-ID: \(mismatched.prefix(5))")
        let twice = try connection.query(
            """
            SELECT count(*) AS n FROM (SELECT delivery_id FROM seqd.delivery_attempts WHERE outcome IS DISTINCT FROM 'skipped'
                                       GROUP BY delivery_id HAVING count(*) > 1) t
            """)[0].decode("n", as: Int.self)
        let retriedUnknown = try connection.query(
            "SELECT count(DISTINCT delivery_id) AS n FROM seqd.delivery_attempts WHERE outcome = 'unknown'")[0].decode("n", as: Int.self)
        print("killed \(kills) times; \(twice) deliveries were handed to the transport more than once, each after an attempt of "
            + "unknown outcome (\(retriedUnknown) had one), and every .eml carries its row's Message-ID")
    }
}
