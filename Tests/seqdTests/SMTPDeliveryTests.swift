import Foundation
import Postgres
import Testing
import TestSupport

/// The daemon against a real SMTP server (aiosmtpd, scripted faults): what issue 4 promises
/// end to end — retries, bounces, the circuit breaker and ambiguous sends.
@Suite("SMTP delivery end to end", .serialized)
struct SMTPDeliveryTests {
    static let twoEmails = """
        name: intro
        sender: { address: team@example.com, name: Tëam Ünicode }
        steps:
          - { key: hello, type: email, subject: "Grüße, {{first_name|there}} ✓", body: "Line one\\n.starts with a dot\\nbye" }
          - { key: thread, type: email, thread: true, body: "second" }
        """

    func environment(port: Int, extra: [String: String] = [:]) -> [String: String] {
        [
            "SEQD_DELIVERY_TRANSPORT": "smtp", "SEQD_DELIVERY_SMTP_URL": "smtp://127.0.0.1:\(port)",
            "SEQD_UNSUBSCRIBE_BASE_URL": "http://127.0.0.1:8080", "SEQD_UNSUBSCRIBE_MAILTO": "unsubscribe@example.com",
            "SEQD_DELIVERY_BACKOFF": "1s", "SEQD_DELIVERY_SMTP_TIMEOUT": "5s", "SEQD_WORKER_POLL_INTERVAL": "1s",
            "SEQD_LOG_LEVEL": "info", "SEQD_DELIVERY_LEASE_TIMEOUT": "10s",
        ].merging(extra) { $1 }
    }

    func run(
        _ scenario: Scenario, port: Int, extra: [String: String] = [:], timeout: Duration = .seconds(60),
        until done: (Connection) throws -> Bool
    ) async throws -> String {
        let daemon = DaemonProcess(scenario.seqd, environment: environment(port: port, extra: extra), name: "smtp-\(UUID().uuidString)")
        try daemon.start()
        let connection = try scenario.connect()
        do {
            try await waitUntil(timeout: timeout, "the deliveries to settle") { try done(connection) }
        } catch {
            daemon.send(SIGTERM)
            _ = try await daemon.waitForExit()
            throw TimedOut(description: "\(error)\n--- daemon log\n\(daemon.log)")
        }
        daemon.send(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        return daemon.log
    }

    static func count(_ connection: Connection, _ sql: String) throws -> Int {
        try connection.query(sql)[0].decode("n", as: Int.self)
    }

    @Test("451 twice, then accepted: delivered once with three attempts; headers, threading and one-click unsubscribe arrive")
    func temporaryFailuresThenAccept() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["rcpt:451 4.3.0 try later:2"])
        defer { server.stop() }
        let scenario = try await Scenario.prepare(prefix: "smtp451", sequence: Self.twoEmails, name: "intro", contacts: ["ada@example.com"])
        _ = try await run(scenario, port: server.port) {
            try Self.count($0, "SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'") == 2
        }
        let connection = try scenario.connect()
        let attempts = try connection.query(
            "SELECT outcome FROM seqd.delivery_attempts a JOIN seqd.deliveries d ON d.id = a.delivery_id WHERE d.step_key = 'hello' ORDER BY a.id"
        ).rows.map { try $0.decode("outcome", as: String.self) }
        #expect(attempts == ["temporary_failure", "temporary_failure", "sent"])
        let messages = try server.files(endingWith: ".eml")
        #expect(messages.count == 2)
        let first = String(decoding: try server.contents(messages[0]), as: UTF8.self)
        let second = String(decoding: try server.contents(messages[1]), as: UTF8.self)
        let ids = try connection.query("SELECT step_key, message_id FROM seqd.deliveries ORDER BY id").rows
            .map { (try $0.decode("step_key", as: String.self), try $0.decode("message_id", as: String.self)) }
        #expect(first.contains("Message-ID: \(ids[0].1)"))
        #expect(second.contains("In-Reply-To: \(ids[0].1)"), "the threaded step replies to the first email")
        #expect(second.contains("Subject: =?UTF-8?") || second.contains("Subject: Re:"))
        #expect(first.contains("List-Unsubscribe: <http://127.0.0.1:8080/u/"))
        #expect(first.contains("mailto:unsubscribe@example.com"))
        #expect(first.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"))
        #expect(first.contains("\r\n.starts with a dot\r\n"), "a body line starting with a dot arrives intact")
        #expect(!first.contains("\n..starts"))
    }

    @Test("550 5.1.1 at RCPT: the enrollment is bounced, the address suppressed, nothing more is sent")
    func bounce() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["rcpt:550 5.1.1 no such user"])
        defer { server.stop() }
        let scenario = try await Scenario.prepare(prefix: "smtp550", sequence: Self.twoEmails, name: "intro", contacts: ["gone@example.com"])
        _ = try await run(scenario, port: server.port) {
            try Self.count($0, "SELECT count(*) AS n FROM seqd.enrollments WHERE status = 'bounced'") == 1
        }
        let connection = try scenario.connect()
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.suppressions WHERE email = 'gone@example.com' AND reason = 'bounce'") == 1)
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.deliveries") == 1)
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.delivery_attempts WHERE outcome = 'bounce'") == 1)
        #expect(try server.files(endingWith: ".eml").isEmpty)
        #expect(try await scenario.seqd.run("check").status == 0)
    }

    @Test("server down, then up: the circuit opens, no attempts are spent, everything goes out once it is back")
    func outage() async throws {
        let port = try FixtureServer.freePort()
        let contacts = (0..<5).map { "p\($0)@example.com" }
        let scenario = try await Scenario.prepare(prefix: "smtpdown", sequence: Self.twoEmails, name: "intro", contacts: contacts)
        let daemon = DaemonProcess(scenario.seqd, environment: environment(port: port), name: "outage")
        try daemon.start()
        let connection = try scenario.connect()
        try await waitUntil(timeout: .seconds(30), "the circuit to open") { daemon.log.contains("circuit opened") }
        try await Task.sleep(for: .seconds(2))  // let it probe a few times while down
        #expect(try Self.count(connection, "SELECT COALESCE(max(attempts), 0) AS n FROM seqd.deliveries") == 0)
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.deliveries WHERE status IN ('failed', 'cancelled')") == 0)
        let server = try await FixtureServer.start("smtp_server.py", ["accept"], port: port)
        defer { server.stop() }
        try await waitUntil(timeout: .seconds(90), "everything to be delivered after the outage") {
            try Self.count(connection, "SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'") == 10
        }
        daemon.send(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        #expect(daemon.log.contains("circuit closed"))
        #expect(try Self.count(connection, "SELECT max(attempts) AS n FROM seqd.deliveries") == 1)
        #expect(try server.files(endingWith: ".eml").count == 10)
        #expect(try await scenario.seqd.run("check").status == 0)
    }

    @Test("stopped while its only session is stuck on a stalled server: the deliveries queued for it go back to pending, unsent")
    func stopGivesBackQueued() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["data:stall:1"])
        defer { server.stop() }
        let single = "name: one\nsender: { address: team@example.com }\nsteps:\n  - { key: only, type: email, subject: s, body: b }\n"
        let contacts = (0..<30).map { "q\($0)@example.com" }
        let scenario = try await Scenario.prepare(prefix: "smtpstop", sequence: single, name: "one", contacts: contacts)
        // One session, whose first message gets no reply for a minute. The advance writes all 30
        // deliveries; its queue holds four more than the one in flight (room for a network
        // session: a few messages), leased by the advancer and the claimer; 25 wait as pending.
        let daemon = DaemonProcess(
            scenario.seqd,
            environment: environment(port: server.port, extra: [
                "SEQD_DELIVERY_CONCURRENCY": "1", "SEQD_WORKER_CONCURRENCY": "1", "SEQD_DELIVERY_SMTP_TIMEOUT": "50s",
                "SEQD_DELIVERY_LEASE_TIMEOUT": "120s", "SEQD_WORKER_SHUTDOWN_GRACE": "1s",
            ]),
            name: "stop-queued")
        try daemon.start()
        let connection = try scenario.connect()
        try await waitUntil(timeout: .seconds(30), "the stalled message's data") { try server.files(endingWith: ".eml").count == 1 }
        try await waitUntil(timeout: .seconds(30), "one in flight and four queued") {
            try Self.count(connection, "SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sending'") == 5
        }
        daemon.send(SIGTERM)
        #expect(try await daemon.waitForExit() == 0)
        #expect(daemon.log.contains("gave back 4 queued deliveries unsent"), "\(daemon.log)")
        // The stuck message keeps its lease (it may have arrived); the rest wait, the given-back
        // ones with their skipped attempt saying why, for the next daemon.
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sending'") == 1)
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'pending' AND attempts = 0") == 29)
        #expect(try Self.count(connection, """
            SELECT count(*) AS n FROM seqd.delivery_attempts
            WHERE outcome = 'skipped' AND reply = 'not sent: the daemon stopped before sending it'
            """) == 4)
    }

    @Test("connection dropped after DATA: the attempt is unknown and retried with the same Message-ID")
    func droppedAfterData() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["data:drop:1"])
        defer { server.stop() }
        let single = "name: one\nsender: { address: team@example.com }\nsteps:\n  - { key: only, type: email, subject: s, body: b }\n"
        let scenario = try await Scenario.prepare(prefix: "smtpdrop", sequence: single, name: "one", contacts: ["ada@example.com"])
        _ = try await run(scenario, port: server.port) {
            try Self.count($0, "SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'") == 1
        }
        let connection = try scenario.connect()
        let outcomes = try connection.query("SELECT outcome FROM seqd.delivery_attempts ORDER BY id").rows
            .map { try $0.decode("outcome", as: String.self) }
        #expect(outcomes == ["unknown", "sent"])
        let messageID = try connection.query("SELECT message_id FROM seqd.deliveries")[0].decode("message_id", as: String.self)
        let copies = try server.files(endingWith: ".eml").map { String(decoding: try server.contents($0), as: UTF8.self) }
        #expect(copies.allSatisfy { $0.contains("Message-ID: \(messageID)") })
        print("connection dropped after DATA: \(copies.count) copies arrived, all with Message-ID \(messageID)")
        #expect(copies.count == 2)
    }

    /// Fault-suite scenario 5: the outcomes above, mixed, under load — 4 senders, hundreds of
    /// messages, one server that refuses some recipients for good, defers some once, hangs up
    /// after some messages' data and stalls on others past the client's timeout.
    @Test("SMTP faults under load: every message's outcome is the one its fault calls for; only unknown attempts put a message on the wire twice")
    func faultsUnderLoad() async throws {
        let start = ContinuousClock.now
        let server = try await FixtureServer.start("smtp_server.py", ["mixed"])
        defer { server.stop() }
        let faulty = 12
        let kinds = ["perm", "temp", "drop", "stall"]
        let plain = (0..<200).map { "ok\($0)@example.com" }
        let contacts = plain + kinds.flatMap { kind in (0..<faulty).map { "\(kind)\($0)@example.com" } }
        let scenario = try await Scenario.prepare(prefix: "smtpload", sequence: Self.twoEmails, name: "intro", contacts: contacts)
        let expectedSent = (contacts.count - faulty) * 2
        let settings = ["SEQD_DELIVERY_SMTP_TIMEOUT": "5s", "SEQD_DELIVERY_CONCURRENCY": "4", "SEQD_DELIVERY_LEASE_TIMEOUT": "30s"]
        _ = try await run(scenario, port: server.port, extra: settings, timeout: .seconds(240)) {
            try Self.count($0, "SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'") == expectedSent
                && Self.count($0, "SELECT count(*) AS n FROM seqd.enrollments WHERE status IN ('active', 'paused')") == 0
        }
        let connection = try scenario.connect()
        // Each delivery's attempts in order; `skipped` ones (given back unsent) never reached the server.
        struct Delivery { let key: String; let outcomes: [String]; let messageID: String? }
        let deliveries = try connection.query(
            """
            SELECT c.email || '/' || d.step_key AS key, d.message_id,
                   COALESCE(array_to_string(array_agg(a.outcome ORDER BY a.id) FILTER (WHERE a.outcome <> 'skipped'), ','), '') AS outcomes
            FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id
            LEFT JOIN seqd.delivery_attempts a ON a.delivery_id = d.id
            GROUP BY c.email, d.step_key, d.message_id
            """).rows.map {
                Delivery(key: try $0.decode("key"), outcomes: try $0.decode("outcomes", as: String.self).split(separator: ",").map(String.init),
                         messageID: try $0.decode("message_id"))
            }
        var copies: [String: Int] = [:]
        for file in try server.files(endingWith: ".eml") {
            let text = String(decoding: try server.contents(file), as: UTF8.self)
            let id = text.split(separator: "\r\n").first { $0.hasPrefix("Message-ID: ") }.map { String($0.dropFirst(12)) } ?? "(none)"
            copies[id, default: 0] += 1
        }
        func check(_ prefix: String, _ step: String, count: Int, _ rule: String, _ holds: (Delivery) -> Bool) {
            let group = deliveries.filter { $0.key.hasPrefix(prefix) && $0.key.hasSuffix("/" + step) }
            #expect(group.count == count, "\(prefix) \(step): \(group.count) deliveries, expected \(count)")
            let wrong = group.filter { !holds($0) }.map { "\($0.key)=\($0.outcomes) copies=\(copies[$0.messageID ?? ""] ?? 0)" }
            #expect(wrong.isEmpty, "\(prefix) \(step) must be \(rule): \(wrong.prefix(5))")
        }
        let unknowns = { (d: Delivery) in d.outcomes.count { $0 == "unknown" } }
        let onWire = { (d: Delivery) in copies[d.messageID ?? ""] ?? 0 }
        // Delivered, each extra copy on the wire explained by an unknown attempt (an unknown
        // attempt may also have ended before the data went out: then there is no extra copy).
        let delivered = { (d: Delivery) in d.outcomes.last == "sent" && onWire(d) >= 1 && onWire(d) <= unknowns(d) + 1 }
        for prefix in ["ok", "temp", "drop", "stall"] {
            check(prefix, "thread", count: prefix == "ok" ? plain.count : faulty, "sent", delivered)
        }
        check("ok", "hello", count: plain.count, "sent", delivered)
        check("temp", "hello", count: faulty, "temporary_failure, then sent", { delivered($0) && $0.outcomes.contains("temporary_failure") })
        // The fault is served on the first message data the server sees. An attempt that ended
        // before that (a connect or greeting timeout on a loaded machine) put nothing on the wire.
        let faultedOnce = { (d: Delivery) in delivered(d) && unknowns(d) >= 1 && onWire(d) == 2 }
        check("drop", "hello", count: faulty, "unknown, then sent: two copies", faultedOnce)
        check("stall", "hello", count: faulty, "unknown, then sent: two copies", faultedOnce)
        check("perm", "hello", count: faulty, "bounce, never on the wire", { $0.outcomes.last == "bounce" && !$0.outcomes.contains("sent") && onWire($0) == 0 })
        #expect(!deliveries.contains { $0.key.hasPrefix("perm") && $0.key.hasSuffix("/thread") }, "a bounced address got its next step")
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.suppressions WHERE reason = 'bounce'") == faulty)
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.enrollments WHERE status = 'bounced'") == faulty)
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.enrollments WHERE status = 'completed'") == contacts.count - faulty)
        let known = Set(deliveries.compactMap(\.messageID))
        #expect(copies.keys.allSatisfy { known.contains($0) }, "a message arrived that no delivery row explains: \(copies.keys.filter { !known.contains($0) })")
        #expect(try await scenario.seqd.run("check").status == 0)
        let twice = deliveries.filter { onWire($0) > 1 }.count
        let skipped = try Self.count(connection, "SELECT count(*) AS n FROM seqd.delivery_attempts WHERE outcome = 'skipped'")
        let beforeData = try connection.query("SELECT reply FROM seqd.delivery_attempts WHERE outcome = 'transport_fault'").rows
            .map { try $0.decode("reply", as: String?.self) ?? "" }
        print("transport faults: \(beforeData)")
        print("SMTP faults under load: \(contacts.count) contacts, \(copies.values.reduce(0, +)) messages on the wire, "
            + "\(twice) on the wire twice (each after an unknown attempt, same Message-ID), \(faulty) bounced, "
            + "\(skipped) given back unsent (half a lease used, or after a transport fault), \(beforeData.count) transport faults before any reply; \(ContinuousClock.now - start)")
    }
}
