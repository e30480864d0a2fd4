import Foundation
import Postgres
import Testing
import TestSupport

/// Event webhooks out (issue 17, part 2), end to end: `seqd run` against a real local receiver
/// (`Tests/Fixtures/event_receiver.py`) that checks `Seqd-Signature` the way the README tells a
/// receiver to, with Python's `hmac`, not with seqd's code.
@Suite("event webhooks end to end", .serialized)
struct EventWebhookTests {
    static let slow = """
        name: slow
        sender: { address: team@example.com }
        steps:
          - { key: hello, type: email, subject: "Hello", body: "first" }
          - { type: wait, duration: 1d }
          - { key: bye, type: email, subject: "Bye", body: "second" }
        """
    static let quick = """
        name: quick
        sender: { address: team@example.com }
        steps:
          - { key: only, type: email, subject: "Only", body: "one" }
        """
    static let secret = "whsec-test-0123456789abcdef"

    struct Received: Decodable {
        let id: String?
        let idempotency_key: String?
        let type: String?
        let content_type: String?
        let path: String
        let verified: Bool
        let status: Int
        let body: String

        var payload: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }
    }

    static func received(_ server: FixtureServer) throws -> [Received] {
        guard let data = FileManager.default.contents(atPath: server.directory + "/requests.jsonl") else { return [] }
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode(Received.self, from: Data($0.utf8))
        }
    }

    static func count(_ connection: Connection, _ sql: String) throws -> Int {
        try connection.query(sql)[0].decode("n", as: Int.self)
    }

    static func environment(port: Int) -> [String: String] {
        [
            "SEQD_EVENT_WEBHOOK_URL": "http://127.0.0.1:\(port)/seqd-events",
            "SEQD_WEBHOOK_SECRET": secret,
            "SEQD_DELIVERY_TRANSPORT": "null", "SEQD_DELIVERY_BACKOFF": "1s", "SEQD_WORKER_POLL_INTERVAL": "1s",
            "SEQD_LOG_LEVEL": "info",
        ]
    }

    @Test("receiver down, then back: every event arrives once it is back, one 2xx per id, same body on every retry, signatures verified by the receiver; a rolled-back change posts nothing")
    func downThenBack() async throws {
        let port = try FixtureServer.freePort()
        let contacts = ["a", "b", "c", "d", "e"].map { "\($0)@example.com" }
        let scenario = try await Scenario.prepare(prefix: "evthook", sequence: Self.slow, name: "slow", contacts: contacts)
        try scenario.seqd.write("quick.yaml", Self.quick)
        try scenario.seqd.write("f.csv", "email,first_name\nf@example.com,F\n")
        #expect(try await scenario.seqd.run("sequence", "apply", "quick.yaml").status == 0)
        #expect(try await scenario.seqd.run("enroll", "--sequence", "quick", "--csv", "f.csv").status == 0)

        let daemon = DaemonProcess(scenario.seqd, environment: Self.environment(port: port), name: "events-down")
        try daemon.start()
        let connection = try scenario.connect()
        do {
            // Nothing listens on the port: six deliveries happen, their events wait.
            try await waitUntil(timeout: .seconds(60), "the first emails' events to be enqueued") {
                try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox") == 7
            }
            // Operators end four enrollments: the CLI as the runtime role, and psql as the owner.
            #expect(try await scenario.seqd.run("reply", "--contact", "a@example.com").status == 0)
            #expect(try await scenario.seqd.run("stop", "--contact", "b@example.com").status == 0)
            #expect(try await scenario.seqd.run("opt-out", "--contact", "c@example.com").status == 0)
            try connection.execute(
                """
                UPDATE seqd.enrollments SET status = 'stopped' WHERE contact_id = (SELECT id FROM seqd.contacts WHERE email = 'd@example.com')
                """)
            // A change that rolls back leaves nothing to post, though its row existed inside it.
            try connection.execute("BEGIN")
            try connection.execute(
                """
                UPDATE seqd.enrollments SET status = 'stopped' WHERE contact_id = (SELECT id FROM seqd.contacts WHERE email = 'e@example.com')
                """)
            #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox") == 12)
            try connection.execute("ROLLBACK")
            try await waitUntil(timeout: .seconds(30), "failed attempts while the receiver is down") {
                try Self.count(connection, "SELECT COALESCE(sum(attempts), 0)::int AS n FROM seqd.event_webhook_outbox") >= 2
            }
            try await Task.sleep(for: .seconds(2))  // down a little longer: a few more retries
        } catch {
            daemon.send(SIGKILL)
            throw TimedOut(description: "\(error)\n--- daemon log\n\(daemon.log)")
        }
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox") == 11)
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox WHERE delivered_at IS NOT NULL") == 0)
        // A receiver that is down gets one request per step of the backoff, not one per event.
        #expect(try Self.count(connection, "SELECT COALESCE(sum(attempts), 0)::int AS n FROM seqd.event_webhook_outbox") < 11)

        // What an operator sees meanwhile.
        let pending = try await scenario.seqd.run("event-webhook", "status", "--json")
        #expect(pending.status == 0, "\(pending)")
        let status = try #require(try JSONSerialization.jsonObject(with: Data(pending.stdout.utf8)) as? [String: Any])
        #expect(status["pending"] as? Int == 11)
        #expect((status["failed"] as? Int ?? 0) >= 1)
        #expect((status["oldestPendingSeconds"] as? Double ?? 0) > 0)
        #expect(status["deliveredLastHour"] as? Int == 0)
        #expect((status["lastError"] as? String)?.isEmpty == false)
        let table = try await scenario.seqd.run("event-webhook", "status")
        #expect(table.status == 0)
        #expect(table.stdout.contains("PENDING"), "\(table)")
        #expect(table.stdout.contains("replied, bounced, opted_out, completed, failed, stopped, converted, delivered"), "\(table)")

        // Back up: its first two answers are 503 with Retry-After: 1, then it takes everything.
        let server = try await FixtureServer.start("event_receiver.py", ["--secret", Self.secret, "503:2,200"], port: port)
        defer { server.stop() }
        do {
            // The promise: within the backoff's five-minute cap of the receiver's return (the
            // outage's length decides how far up the curve the next try is).
            try await waitUntil(timeout: .seconds(330), "every event to be delivered after the receiver is back") {
                try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox WHERE delivered_at IS NOT NULL") == 11
            }
        } catch {
            daemon.send(SIGKILL)
            throw TimedOut(description: "\(error)\n--- daemon log\n\(daemon.log)")
        }
        daemon.send(SIGTERM)
        #expect(try await daemon.waitForExit() == 0, "\(daemon.log)")

        let requests = try Self.received(server)
        #expect(requests.allSatisfy { $0.verified }, "every signature verifies with the receiver's own check")
        #expect(requests.filter { $0.status == 503 }.count == 2)
        let accepted = requests.filter { $0.status == 200 }
        let ids = accepted.compactMap(\.id)
        #expect(ids.count == 11 && Set(ids).count == 11, "one 2xx per id: \(ids)")
        let outboxIDs = try connection.query("SELECT 'evt_' || id AS id FROM seqd.event_webhook_outbox").rows
            .map { try $0.decode("id", as: String.self) }
        #expect(Set(ids) == Set(outboxIDs))
        for request in requests {
            #expect(request.idempotency_key == request.id)
            #expect(request.content_type == "application/json")
            #expect(request.path == "/seqd-events")
            #expect(request.payload["id"] as? String == request.id)
            #expect(request.payload["type"] as? String == request.type)
        }
        // A retried event is the same id and the same bytes.
        for refused in requests.filter({ $0.status == 503 }) {
            let retry = try #require(accepted.first { $0.id == refused.id })
            #expect(retry.body == refused.body)
        }

        // The types: five first emails and the quick sequence's only one delivered (which also
        // completed it: two posts of one audit event), one reply, two stops, one opt-out.
        let types = accepted.compactMap(\.type).sorted()
        #expect(types == ["completed", "delivered", "delivered", "delivered", "delivered", "delivered", "delivered", "opted_out", "replied", "stopped", "stopped"])
        let contactIDs = try Dictionary(
            uniqueKeysWithValues: connection.query("SELECT email, id FROM seqd.contacts").rows.map {
                (try $0.decode("email", as: String.self), try $0.decode("id", as: Int64.self))
            })
        func posts(of email: String) -> [[String: Any]] {
            accepted.map(\.payload).filter { (($0["contact"] as? [String: Any])?["id"] as? Int).map(Int64.init) == contactIDs[email] }
        }
        #expect(posts(of: "e@example.com").map { $0["type"] as? String } == ["delivered"], "the rolled-back stop posted nothing")
        let replied = try #require(posts(of: "a@example.com").first { $0["type"] as? String == "replied" })
        let enrollment = try #require(replied["enrollment"] as? [String: Any])
        #expect(enrollment["status"] as? String == "replied")
        #expect(enrollment["previous_status"] as? String == "active")
        #expect(enrollment["sequence"] as? String == "slow")
        #expect(enrollment["step"] as? String == "bye", "past the wait, the enrollment stands at the next email")
        #expect(replied["event"] as? String == "reply")
        let occurred = try #require(replied["occurred_at"] as? String)
        #expect(occurred.hasSuffix("Z") && ISO8601DateFormatter().date(from: String(occurred.prefix(19)) + "Z") != nil, "\(occurred)")
        let manual = try #require(posts(of: "d@example.com").first { $0["type"] as? String == "stopped" })
        #expect(manual["event"] as? String == "manual_update")
        let quick = posts(of: "f@example.com")
        let delivered = try #require(quick.first { $0["type"] as? String == "delivered" })
        #expect((delivered["delivery"] as? [String: Any])?["step"] as? String == "only")
        #expect((delivered["delivery"] as? [String: Any])?["id"] as? Int != nil)
        #expect(quick.contains { $0["type"] as? String == "completed" && ($0["enrollment"] as? [String: Any])?["status"] as? String == "completed" })
        // No address in any payload.
        #expect(!accepted.contains { $0.body.contains("@example.com") })

        let done = try await scenario.seqd.run("event-webhook", "status", "--json")
        let after = try #require(try JSONSerialization.jsonObject(with: Data(done.stdout.utf8)) as? [String: Any])
        #expect(after["pending"] as? Int == 0)
        #expect(after["deliveredLastHour"] as? Int == 11)
        #expect(!daemon.log.contains(Self.secret))
    }

    @Test("SIGKILL while a post is in flight: after its lease the event is posted again with the same id and the same bytes; the rest once each")
    func killedMidPost() async throws {
        let contacts = (0..<3).map { "k\($0)@example.com" }
        let scenario = try await Scenario.prepare(prefix: "evthookkill", sequence: Self.quick, name: "quick", contacts: contacts)
        let server = try await FixtureServer.start("event_receiver.py", ["--secret", Self.secret, "stall:1,200"])
        defer { server.stop() }
        let first = DaemonProcess(scenario.seqd, environment: Self.environment(port: server.port), name: "killed")
        try first.start()
        try await waitUntil(timeout: .seconds(60), "the first post to reach the receiver") { try !Self.received(server).isEmpty }
        first.send(SIGKILL)
        _ = try await first.waitForExit()
        let stalled = try Self.received(server)[0]
        let connection = try scenario.connect()
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox WHERE delivered_at IS NOT NULL") == 0)
        let second = DaemonProcess(scenario.seqd, environment: Self.environment(port: server.port), name: "restarted")
        try second.start()
        do {
            // The killed process's claim holds its rows for a minute (EventWebhookSender.leaseSeconds).
            try await waitUntil(timeout: .seconds(120), "every event to be delivered after the lease") {
                try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox WHERE delivered_at IS NOT NULL") == 6
            }
        } catch {
            second.send(SIGKILL)
            throw TimedOut(description: "\(error)\n--- log\n\(second.log)")
        }
        second.send(SIGTERM)
        #expect(try await second.waitForExit() == 0, "\(second.log)")
        let requests = try Self.received(server)
        let accepted = requests.filter { $0.status == 200 }
        #expect(accepted.count == 6 && Set(accepted.compactMap(\.id)).count == 6, "one 2xx per id")
        let again = try #require(accepted.first { $0.id == stalled.id })
        #expect(again.body == stalled.body, "the same bytes under the same id")
        #expect(requests.allSatisfy { $0.verified })
    }

    @Test("without event_webhook.url nothing is enqueued, and the status says event webhooks are off")
    func offByDefault() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "evthookoff", sequence: Self.quick, name: "quick", contacts: ["a@example.com", "b@example.com"])
        try await scenario.runOnce()
        let connection = try scenario.connect()
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.enrollments WHERE status = 'completed'") == 2)
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox") == 0)
        let status = try await scenario.seqd.run("event-webhook", "status")
        #expect(status.status == 0, "\(status)")
        #expect(status.stdout.contains("off (event_webhook.url is unset)"), "\(status)")
        // seqd_readonly reads the outbox but not seqd.settings: the types are unknown, the rest is there.
        let readonly = TestDatabase.replacingUser(in: scenario.databaseURL, with: "seqd_readonly")
        let json = try await scenario.seqd.run("event-webhook", "status", "--json", "--database-url", readonly)
        #expect(json.status == 0, "\(json)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["enabledTypes"] is NSNull, "\(json)")
        #expect(object["lastError"] is NSNull && object["nextRetryAt"] is NSNull, "every key is present")
        #expect(object["pending"] as? Int == 0)
    }

    @Test("event_webhook.types chooses what is enqueued; run --once posts what is due; an unknown type exits 65")
    func typesAndOnce() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "evthooktypes", sequence: Self.quick, name: "quick", contacts: ["a@example.com", "b@example.com"])
        let server = try await FixtureServer.start("event_receiver.py", ["--secret", Self.secret, "200"])
        defer { server.stop() }
        let bad = try await scenario.seqd.run(
            ["run", "--once"], environment: Self.environment(port: server.port).merging(["SEQD_EVENT_WEBHOOK_TYPES": "completed,exploded"]) { $1 })
        #expect(bad.status == 65, "\(bad)")
        #expect(bad.stderr.contains("exploded"), "\(bad)")
        // `config check` says so before any deploy.
        let checked = try await scenario.seqd.run(
            ["config", "check"], environment: ["SEQD_EVENT_WEBHOOK_TYPES": "completed,exploded"])
        #expect(checked.status == 65 && checked.stderr.contains("unknown type 'exploded'"), "\(checked)")
        let once = try await scenario.seqd.run(
            ["run", "--once"], environment: Self.environment(port: server.port).merging(["SEQD_EVENT_WEBHOOK_TYPES": "completed"]) { $1 })
        #expect(once.status == 0, "\(once)")
        let connection = try scenario.connect()
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox WHERE type = 'completed' AND delivered_at IS NOT NULL") == 2)
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox WHERE type <> 'completed'") == 0)
        let requests = try Self.received(server)
        #expect(requests.count == 2 && requests.allSatisfy { $0.verified && $0.type == "completed" }, "\(requests.map(\.body))")

        // `seqd prune` (the owner) removes delivered rows past its horizon.
        let pruned = try await scenario.seqd.run("prune", "--older-than", "0", "--database-url", scenario.databaseURL)
        #expect(pruned.status == 0, "\(pruned)")
        #expect(pruned.stdout.contains("2 delivered event webhooks"), "\(pruned)")
        #expect(try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox") == 0)
    }

    @Test("two replicas share the outbox (FOR UPDATE SKIP LOCKED): every event posted once, each with a signature that verifies")
    func twoReplicas() async throws {
        let contacts = (0..<20).map { "r\($0)@example.com" }
        let scenario = try await Scenario.prepare(prefix: "evthookreplicas", sequence: Self.quick, name: "quick", contacts: contacts)
        let server = try await FixtureServer.start("event_receiver.py", ["--secret", Self.secret, "200"])
        defer { server.stop() }
        let daemons = (0..<2).map { DaemonProcess(scenario.seqd, environment: Self.environment(port: server.port), name: "replica-\($0)") }
        for daemon in daemons { try daemon.start() }
        let connection = try scenario.connect()
        do {
            try await waitUntil(timeout: .seconds(60), "every event to be delivered") {
                try Self.count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox WHERE delivered_at IS NOT NULL") == 40
            }
        } catch {
            for daemon in daemons { daemon.send(SIGKILL) }
            throw TimedOut(description: "\(error)\n--- logs\n\(daemons.map(\.log).joined(separator: "\n---\n"))")
        }
        for daemon in daemons { daemon.send(SIGTERM) }
        for daemon in daemons { #expect(try await daemon.waitForExit() == 0, "\(daemon.log)") }
        let requests = try Self.received(server)
        #expect(requests.count == 40, "no event posted twice")
        #expect(Set(requests.compactMap(\.id)).count == 40)
        #expect(requests.allSatisfy { $0.verified && $0.status == 200 })
        #expect(requests.filter { $0.type == "completed" }.count == 20)
    }
}
