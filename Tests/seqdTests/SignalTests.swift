import Foundation
import Postgres
import Testing
import TestSupport

/// Opt-out, pause, resume, reply and sequence pause, as an operator issues them while (or between)
/// daemon runs. `seqd run --once` drives the daemon one pass at a time where timing must not matter.
@Suite("signals and operator commands end to end")
struct SignalTests {
    static let longWait = """
        name: slow
        sender: { address: team@example.com }
        steps:
          - key: hello
            type: email
            subject: "Hello"
            body: "first"
          - type: wait
            duration: 1h
          - key: again
            type: email
            subject: "Again"
            body: "second"
        """

    func prepare(_ prefix: String, contacts: [String], sequence: String = longWait, name: String = "slow") async throws
        -> (SeqdProcess, Connection)
    {
        let scenario = try await Scenario.prepare(prefix: prefix, sequence: sequence, name: name, contacts: contacts)
        return (scenario.seqd, try scenario.connect())
    }

    func runOnce(_ seqd: SeqdProcess) async throws {
        let result = try await seqd.run(["run", "--once", "--set", "delivery.transport=null"])
        try #require(result.status == 0, "run --once: \(result)")
    }

    func sent(_ connection: Connection, _ email: String) throws -> Int {
        try connection.query(
            """
            SELECT count(*) AS n FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id
            WHERE c.email = $1 AND d.status = 'sent'
            """, [email])[0].decode("n")
    }

    func status(_ connection: Connection, _ email: String) throws -> String {
        try connection.query(
            "SELECT e.status::text AS s FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = $1",
            [email])[0].decode("s")
    }

    @Test("pause keeps the remaining wait; nothing is sent while paused; resume restores the wait")
    func pauseResume() async throws {
        let (seqd, connection) = try await prepare("pause", contacts: ["ada@example.com", "bob@example.com"])
        // Bob is paused before his first step runs: his pending first step must wait.
        #expect(try await seqd.run("pause", "--contact", "bob@example.com").status == 0)
        try await runOnce(seqd)
        #expect(try sent(connection, "ada@example.com") == 1)
        #expect(try sent(connection, "bob@example.com") == 0)

        #expect(try await seqd.run("pause", "--contact", "ada@example.com", "--sequence", "slow").status == 0)
        let paused = try connection.query(
            """
            SELECT extract(epoch FROM e.remaining_wait)::float8 AS remaining FROM seqd.enrollments e
            JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = 'ada@example.com'
            """)[0].decode("remaining", as: Double.self)
        #expect(paused > 3_590 && paused <= 3_600)
        try await Task.sleep(for: .milliseconds(1_500))
        let resumed = try await seqd.run("resume", "--contact", "ada@example.com")
        #expect(resumed.status == 0, "\(resumed)")
        #expect(resumed.stdout.contains("paused → active"))
        // The wait left is the wait it had when paused: the 1.5 s spent paused did not count.
        // Measured from the resume's own database time (its audit row), so a slow machine adds nothing.
        let left = try connection.query(
            """
            SELECT extract(epoch FROM e.next_run_at - ev.at)::float8 AS left
            FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id
            JOIN LATERAL (SELECT at FROM seqd.enrollment_events WHERE enrollment_id = e.id ORDER BY id DESC LIMIT 1) ev ON true
            WHERE c.email = 'ada@example.com'
            """)[0].decode("left", as: Double.self)
        #expect(abs(left - paused) < 0.001, "left \(left) s after resume, \(paused) s when paused")

        #expect(try await seqd.run("resume", "--contact", "bob@example.com").status == 0)
        try await runOnce(seqd)
        #expect(try sent(connection, "bob@example.com") == 1)
        #expect(try sent(connection, "ada@example.com") == 1)
    }

    @Test("an invalid operator command exits 1 naming the status, and changes nothing")
    func invalidTransition() async throws {
        let (seqd, connection) = try await prepare("invalid", contacts: ["ada@example.com"])
        let result = try await seqd.run("resume", "--contact", "ada@example.com", "--sequence", "slow")
        #expect(result.status == 1)
        #expect(result.stdout.contains("enrollment is active"), "\(result)")
        #expect(try status(connection, "ada@example.com") == "active")
        let unknown = try await seqd.run("pause", "--contact", "nobody@example.com")
        #expect(unknown.status == 1)
        #expect(unknown.stdout.contains("no such contact"))
    }

    @Test("a reply ends the enrollment and cancels what was pending")
    func replyEnds() async throws {
        let (seqd, connection) = try await prepare("reply", contacts: ["ada@example.com"])
        try await runOnce(seqd)
        let result = try await seqd.run("reply", "--contact", "ada@example.com")
        #expect(result.status == 0, "\(result)")
        #expect(try status(connection, "ada@example.com") == "replied")
        try await runOnce(seqd)
        #expect(try sent(connection, "ada@example.com") == 1)
        let again = try await seqd.run("reply", "--contact", "ada@example.com", "--sequence", "slow")
        #expect(again.status == 1)
        #expect(again.stdout.contains("enrollment is replied"))
    }

    @Test("opt-out on a finished contact still records the suppression and exits 0")
    func optOutAfterFinish() async throws {
        let (seqd, connection) = try await prepare("optout_done", contacts: ["ada@example.com"])
        try connection.execute("UPDATE seqd.enrollments SET status = 'stopped'")
        let result = try await seqd.run("opt-out", "--contact", "ADA@example.com")
        #expect(result.status == 0, "\(result)")
        #expect(try connection.query("SELECT email FROM seqd.suppressions")[0].decode("email", as: String.self) == "ada@example.com")
        // Re-enrolling a suppressed address is skipped and counted.
        let enroll = try await seqd.run("enroll", "--sequence", "slow", "--contact", "ada@example.com", "--allow-reenroll", "--json")
        #expect(enroll.stdout.contains("\"suppressed\" : 1"), "\(enroll)")
    }

    @Test("sequence pause holds every enrollment in place and resume releases them")
    func sequencePause() async throws {
        let (seqd, connection) = try await prepare("seqpause", contacts: ["a@example.com", "b@example.com", "c@example.com"])
        #expect(try await seqd.run("sequence", "pause", "slow").status == 0)
        try await runOnce(seqd)
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.deliveries")[0].decode("n", as: Int.self) == 0)
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.enrollments WHERE status = 'active'")[0].decode("n", as: Int.self) == 3)
        #expect(try await seqd.run("sequence", "resume", "slow").status == 0)
        try await runOnce(seqd)
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'")[0].decode("n", as: Int.self) == 3)
    }

    @Test("opt-outs issued while a daemon sends: nothing for those addresses is claimed after the command returned")
    func optOutRacingSends() async throws {
        let contacts = (0..<400).map { "r\($0)@example.com" }
        let (seqd, connection) = try await prepare("optout_race", contacts: contacts, sequence: DaemonRunTests.sequence, name: "drip")
        let outbox = seqd.directory.appendingPathComponent("outbox").path
        let daemon = DaemonProcess(seqd, environment: DaemonRunTests.daemonEnvironment(outbox: outbox), name: "race")
        try daemon.start()
        try await waitUntil(timeout: .seconds(60), "the first sends") {
            try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'")[0].decode("n", as: Int.self) > 50
        }
        let victims = Array(contacts.shuffled().prefix(40))
        let result = try await seqd.run(["opt-out"] + victims.flatMap { ["--contact", $0] })
        #expect(result.status == 0, "\(result)")
        let returnedAt = try connection.query("SELECT now() AS at")[0].decode("at", as: Date.self)
        try await waitUntil(timeout: .seconds(120), "the run to finish") { try DaemonRunTests.remaining(connection) == 0 }
        daemon.send(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        let late = try connection.query(
            """
            SELECT count(*) AS n FROM seqd.delivery_attempts a
            JOIN seqd.deliveries d ON d.id = a.delivery_id JOIN seqd.contacts c ON c.id = d.contact_id
            WHERE c.email = ANY($1::text[]) AND a.started_at >= $2
            """, [victims, returnedAt])[0].decode("n", as: Int.self)
        #expect(late == 0)
        let live = try connection.query(
            """
            SELECT count(*) AS n FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id
            WHERE c.email = ANY($1::text[]) AND e.status NOT IN ('opted_out', 'completed')
            """, [victims])[0].decode("n", as: Int.self)
        #expect(live == 0)
        let stillOpen = try connection.query(
            """
            SELECT count(*) AS n FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id
            WHERE c.email = ANY($1::text[]) AND d.status NOT IN ('sent', 'cancelled')
            """, [victims])[0].decode("n", as: Int.self)
        #expect(stillOpen == 0)
        let check = try await seqd.run("check")
        #expect(check.status == 0, "\(check)")
    }
}

@Suite("the global send switch")
struct SendSwitchTests {
    @Test("sending pause holds every delivery (advancing goes on) and resume releases them, losing none")
    func holdAndRelease() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "sendswitch", sequence: SignalTests.longWait, name: "slow", contacts: ["a@example.com", "b@example.com"])
        let connection = try scenario.connect()
        let paused = try await scenario.seqd.run("sending", "pause")
        #expect(paused.status == 0, "\(paused)")
        #expect(paused.stdout.contains("PAUSED"))
        try await scenario.runOnce()
        let held = try connection.query(
            "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, count(*) AS total FROM seqd.deliveries")[0]
        #expect(try held.decode("total", as: Int.self) == 2)
        #expect(try held.decode("pending", as: Int.self) == 2)
        #expect(try await scenario.seqd.run("sending", "resume").status == 0)
        try await scenario.runOnce()
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'")[0].decode("n", as: Int.self) == 2)
        let status = try await scenario.seqd.run("sending", "status", "--json")
        #expect(status.stdout.contains("\"paused\" : false"), "\(status)")
    }
}
