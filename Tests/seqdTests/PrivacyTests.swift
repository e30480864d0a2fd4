import Foundation
import Postgres
import Testing
import TestSupport

/// Retention and data-subject requests: prune, export, erase — and what the logs never contain.
@Suite("retention and privacy")
struct PrivacyTests {
    static let single = """
        name: once
        sender: { address: team@example.com }
        steps:
          - { key: hello, type: email, subject: "Hello {{first_name|there}}", body: "Hi" }
        """

    @Test("prune removes old bodies, attempts and all but the last event of finished work; check stays clean")
    func prune() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "prune", sequence: Self.single, name: "once", contacts: ["a@example.com", "b@example.com"])
        try await scenario.runOnce()
        let connection = try scenario.connect()
        try connection.execute("UPDATE seqd.deliveries SET updated_at = now() - interval '200 days'")
        try connection.execute("UPDATE seqd.enrollments SET updated_at = now() - interval '200 days'")
        // Sender daily counts: one day long over, yesterday and today (kept: their day may still run somewhere).
        try connection.execute(
            """
            INSERT INTO seqd.sender_daily_counts (sender, day, reserved, last_grant)
            VALUES ('team@example.com', current_date - 200, 5, 5), ('team@example.com', current_date - 1, 3, 3),
                   ('team@example.com', current_date, 1, 1)
            """)
        // Pruning deletes audit rows: the owner's job, refused to the runtime role.
        let asRuntime = try await scenario.seqd.run("prune")
        #expect(asRuntime.status == 70 || asRuntime.status == 1, "\(asRuntime)")
        let owner = ["--database-url", scenario.databaseURL]
        let dry = try await scenario.seqd.run(["prune", "--dry-run", "--json"] + owner)
        #expect(dry.status == 0, "\(dry)")
        #expect(dry.stdout.contains("\"bodies_removed\" : 2") || dry.stdout.contains("\"bodiesRemoved\" : 2"), "\(dry)")
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE message IS NOT NULL")[0].decode("n", as: Int.self) == 2)
        let real = try await scenario.seqd.run(["prune"] + owner)
        #expect(real.status == 0, "\(real)")
        #expect(real.stdout.contains("removed: 2 message bodies, 2 attempt rows, 2 audit events, 1 sender daily counts"), "\(real)")
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.sender_daily_counts WHERE day >= current_date - 1")[0].decode("n", as: Int.self) == 2)
        let left = try connection.query(
            """
            SELECT (SELECT count(*) FROM seqd.deliveries WHERE message IS NOT NULL) AS bodies,
                   (SELECT count(*) FROM seqd.delivery_attempts) AS attempts,
                   (SELECT count(*) FROM seqd.enrollment_events) AS events
            """)[0]
        #expect(try left.decode("bodies", as: Int.self) == 0)
        #expect(try left.decode("attempts", as: Int.self) == 0)
        #expect(try left.decode("events", as: Int.self) == 2)
        let check = try await scenario.seqd.run("check")
        #expect(check.status == 0, "\(check)")
        // Recent work is kept.
        let recent = try await scenario.seqd.run(["prune", "--older-than", "1d"] + owner)
        #expect(recent.stdout.contains("removed: 0 message bodies, 0 attempt rows, 0 audit events, 0 sender daily counts"))
    }

    @Test("export returns everything held; erase keeps only a hashed suppression and the anonymised trail")
    func exportAndErase() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "erase", sequence: Self.single, name: "once", contacts: ["ada@example.com", "bob@example.com"])
        try await scenario.runOnce()
        let connection = try scenario.connect()
        let export = try await scenario.seqd.run("contact", "export", "--contact", "ada@example.com")
        #expect(export.status == 0, "\(export)")
        let document = try JSONSerialization.jsonObject(with: Data(export.stdout.utf8)) as? [String: Any]
        #expect((document?["contact"] as? [String: Any])?["email"] as? String == "ada@example.com")
        let enrollments = document?["enrollments"] as? [[String: Any]]
        #expect(enrollments?.count == 1)
        #expect((enrollments?.first?["deliveries"] as? [[String: Any]])?.count == 1)
        #expect(((enrollments?.first?["events"] as? [[String: Any]])?.count ?? 0) >= 2)

        // The address also sits in a delivery error and in the reasons operators typed (issue 16).
        try connection.query("UPDATE seqd.deliveries d SET last_error = '550 5.1.1 <ADA@example.com>: unknown' FROM seqd.contacts c WHERE c.id = d.contact_id AND c.email = 'ada@example.com'")
        try connection.query(
            """
            INSERT INTO seqd.enrollment_events (enrollment_id, event, from_status, to_status, from_step, to_step, actor, reason, detail)
            SELECT e.id, 'note', e.status, e.status, e.current_step_index, e.current_step_index, 'cli:test',
                   'ada@example.com asked by phone', '{"contact": "Ada@Example.com"}'
            FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = 'ada@example.com'
            """)
        #expect(try await scenario.seqd.run("contact", "erase", "--contact", "ada@example.com").status == 64)
        let erased = try await scenario.seqd.run("contact", "erase", "--contact", "ada@example.com", "--yes")
        #expect(erased.status == 0, "\(erased)")
        let plain = try connection.query(
            "SELECT count(*) AS n FROM seqd.contacts WHERE email ILIKE '%ada%' OR first_name IS NOT NULL AND email LIKE 'erased-%'")[0]
        #expect(try plain.decode("n", as: Int.self) == 0)
        let suppressions = try connection.query("SELECT email, reason FROM seqd.suppressions").rows
            .map { (try $0.decode("email", as: String.self), try $0.decode("reason", as: String.self)) }
        #expect(suppressions.count == 1)
        #expect(suppressions.first?.0.hasPrefix("sha256:") == true)
        #expect(suppressions.first?.1 == "erased")
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE message IS NOT NULL")[0].decode("n", as: Int.self) == 1)
        let mentions = try connection.query(
            """
            SELECT (SELECT count(*) FROM seqd.deliveries WHERE last_error ILIKE '%ada@example.com%')
                 + (SELECT count(*) FROM seqd.enrollments WHERE last_error ILIKE '%ada@example.com%')
                 + (SELECT count(*) FROM seqd.enrollment_events WHERE reason ILIKE '%ada@example.com%' OR detail::text ILIKE '%ada@example.com%')
                 + (SELECT count(*) FROM seqd.signals WHERE detail::text ILIKE '%ada@example.com%') AS n
            """)[0].decode("n", as: Int.self)
        #expect(mentions == 0, "the address is scrubbed from errors and audit reasons")
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.enrollment_events WHERE reason LIKE 'erased-%@erased.invalid asked by phone'")[0].decode("n", as: Int.self) == 1)
        // The address comes back in a later import: it is still never mailed.
        try scenario.seqd.write("again.csv", "email\nAda@Example.com\n")
        #expect(try await scenario.seqd.run("contact", "import", "again.csv").status == 0)
        let enroll = try await scenario.seqd.run("enroll", "--sequence", "once", "--contact", "ada@example.com", "--json")
        #expect(enroll.stdout.contains("\"suppressed\" : 1"), "\(enroll)")
        #expect(try await scenario.seqd.run("contact", "export", "--contact", "erased@nowhere.example").status == 1)
        let check = try await scenario.seqd.run("check")
        #expect(check.status == 0, "\(check)")
    }

    @Test("a daemon's logs at trace level carry no address, password, token, secret or connection string")
    func logsCarryNoSecrets() async throws {
        let contacts = (0..<50).map { "person\($0)@example.com" }
        let scenario = try await Scenario.prepare(prefix: "logscan", sequence: Self.single, name: "once", contacts: contacts)
        let secrets = ["SEQD_UNSUBSCRIBE_SECRET": "unsub-secret-4f1c2e", "SEQD_HTTP_API_TOKEN": "api-token-9a8b7c",
                       "SEQD_DELIVERY_SMTP_PASSWORD": "smtp-password-5d6e"]
        var logs = ""
        for format in ["text", "json"] {
            let daemon = DaemonProcess(
                scenario.seqd,
                environment: secrets.merging([
                    "SEQD_LOG_LEVEL": "trace", "SEQD_LOG_FORMAT": format, "SEQD_DELIVERY_TRANSPORT": "smtp",
                    "SEQD_DELIVERY_SMTP_URL": "smtp://127.0.0.1:9", "SEQD_DELIVERY_SMTP_USERNAME": "mailer",
                    "SEQD_UNSUBSCRIBE_BASE_URL": "http://127.0.0.1:8080", "SEQD_DELIVERY_BACKOFF": "1s",
                ]) { $1 },
                name: "logscan-\(format)")
            try daemon.start()
            // Nothing listens on port 9: every send is a transport fault, so errors are logged too.
            try await waitUntil(timeout: .seconds(30), "the circuit to open") { daemon.log.contains("circuit opened") }
            daemon.send(SIGTERM)
            _ = try await daemon.waitForExit()
            logs += daemon.log
        }
        #expect(!logs.isEmpty)
        #expect(logs.contains("circuit opened"), "the workload should have produced error logs:\n\(logs)")
        let address = try Regex(#"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"#)
        #expect(logs.firstMatch(of: address) == nil, "an address in the logs:\n\(logs)")
        for (name, value) in secrets { #expect(!logs.contains(value), "\(name) in the logs") }
        #expect(!logs.contains(scenario.runtimeURL), "the connection string in the logs")
        #expect(!logs.contains("postgresql://"))
    }
}
