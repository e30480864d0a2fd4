import Foundation
import Postgres
import Testing
import TestSupport

/// Webhook steps end to end (issue 17): `seqd` runs them against a real HTTP receiver
/// (`Tests/Fixtures/webhook_receiver.py`), which checks `Seqd-Signature` with its own code,
/// written from the README's description.
@Suite("webhook steps end to end", .serialized)
struct WebhookStepTests {
    /// One receiver's view of a request.
    struct Received: Decodable {
        let method: String
        let path: String
        let headers: [String: String]
        let body: String
        let signature_valid: Bool
    }

    static func requests(_ server: FixtureServer) throws -> [Received] {
        guard let data = FileManager.default.contents(atPath: server.directory + "/requests.jsonl") else { return [] }
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode(Received.self, from: Data($0.utf8))
        }
    }

    /// The secret `seqd migrate` stored, as an operator reads it to configure a receiver.
    static func webhookSecret(_ scenario: Scenario) throws -> String {
        try scenario.connect().query("SELECT value FROM seqd.settings WHERE name = 'webhook.secret'")[0].decode("value")
    }

    static func sequence(port: Int, onFailure: String = "stop", url: String? = nil) -> String {
        """
        name: hooks
        sender: { address: team@example.com }
        on_failure: \(onFailure)
        steps:
          - key: score
            type: webhook
            url: "\(url ?? "http://127.0.0.1:\(port)/score/{{enrollment_id}}")"
            method: PUT
            headers:
              Authorization: "Bearer ${HOOK_TOKEN}"
              X-Contact-Name: "{{first_name}}"
            body: { name: "{{first_name}}", email: "{{email}}", step: "{{step_key}}", note: "quote \\" and {{first_name}}" }
            save: [score, tier]
            timeout: 5s
          - type: branch
            when:
              - if: { step_data: score, greater_than: 50 }
                goto: hot
          - { key: cold, type: email, subject: cold, body: cold }
          - type: branch
            when:
              - { if: { attribute: email, exists: true }, goto: end }
          - { key: hot, type: email, subject: hot, body: hot }
        """
    }

    static func startReceiver(_ scenario: Scenario, _ script: String, responses: [String: [String: Any]] = [:]) async throws -> FixtureServer {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("responses-\(UUID().uuidString).json").path
        try JSONSerialization.data(withJSONObject: responses).write(to: URL(fileURLWithPath: file))
        return try await FixtureServer.start(
            "webhook_receiver.py", ["--secret", try webhookSecret(scenario), "--responses", file, script])
    }

    /// A scenario whose sequence needs the receiver's port: the sequence is applied after the
    /// receiver started (its secret comes from the migrated database).
    static func prepare(_ prefix: String, contacts: [String], script: String, responses: [String: [String: Any]] = [:],
                        sequence: (Int) -> String) async throws -> (Scenario, FixtureServer) {
        let placeholder = """
            name: placeholder
            sender: { address: team@example.com }
            steps: [{ type: wait, duration: 1d }]
            """
        let scenario = try await Scenario.prepare(prefix: prefix, sequence: placeholder, name: "placeholder", contacts: contacts)
        let server = try await startReceiver(scenario, script, responses: responses)
        _ = try scenario.seqd.write("hooks.yaml", sequence(server.port))
        for arguments in [["sequence", "apply", "hooks.yaml"], ["enroll", "--sequence", "hooks", "--all"]] {
            let result = try await scenario.seqd.run(arguments)
            #expect(result.status == 0, "\(arguments): \(result)")
        }
        return (scenario, server)
    }

    static let loopbackAllowed = ["--set", "webhook.allow_private_networks=true"]

    static func statuses(_ scenario: Scenario) throws -> [String: String] {
        var result = [String: String]()
        for row in try scenario.connect().query(
            "SELECT c.first_name, e.status::text AS status FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id "
                + "JOIN seqd.sequences s ON s.id = e.sequence_id WHERE s.name = 'hooks'"
        ).rows {
            result[try row.decode("first_name")] = try row.decode("status")
        }
        return result
    }

    static func sentSteps(_ scenario: Scenario) throws -> [String] {
        try scenario.connect().query(
            "SELECT c.first_name || ':' || d.step_key AS s FROM seqd.deliveries d JOIN seqd.enrollments e ON e.id = d.enrollment_id "
                + "JOIN seqd.contacts c ON c.id = e.contact_id WHERE d.status = 'sent' ORDER BY 1"
        ).rows.map { try $0.decode("s", as: String.self) }
    }

    @Test("the request arrives as written and signed; a saved response field steers the branch")
    func requestAndBranch() async throws {
        let (scenario, server) = try await Self.prepare(
            "hookreq", contacts: ["hot@example.com", "cold@example.com"], script: "200",
            responses: ["Name0": ["score": 80, "tier": "gold", "ignored": 1], "Name1": ["score": 10]],
            sequence: { Self.sequence(port: $0) })
        defer { server.stop() }
        let result = try await scenario.seqd.run(
            ["run", "--once", "--set", "delivery.transport=null"] + Self.loopbackAllowed, environment: ["HOOK_TOKEN": "s3cret-token"])
        #expect(result.status == 0, "\(result)")

        let received = try Self.requests(server)
        try #require(received.count == 2, "one request per enrollment: \(received)")
        let ids = try scenario.connect().query(
            "SELECT e.id, c.first_name, d.idempotency_key FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id "
                + "JOIN seqd.deliveries d ON d.enrollment_id = e.id AND d.step_key = 'score' ORDER BY c.first_name"
        ).rows.map { (try $0.decode("id", as: Int64.self), try $0.decode("first_name", as: String.self), try $0.decode("idempotency_key", as: String.self)) }
        for request in received {
            #expect(request.method == "PUT")
            #expect(request.signature_valid, "the receiver's own check of Seqd-Signature")
            #expect(request.headers["authorization"] == "Bearer s3cret-token", "the ${HOOK_TOKEN} secret is read from the environment")
            #expect(request.headers["content-type"] == "application/json")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: String])
            let id = try #require(ids.first { $0.1 == body["name"] })
            #expect(request.path == "/score/\(id.0)")
            #expect(request.headers["x-contact-name"] == id.1)
            #expect(request.headers["idempotency-key"] == id.2, "the delivery key")
            #expect(body["step"] == "score")
            #expect(body["note"] == "quote \" and \(id.1)", "placeholders are JSON-escaped inside strings")
        }
        // No secret reaches the database: the stored request names it.
        let stored = try scenario.connect().query("SELECT message::text AS m FROM seqd.deliveries WHERE step_key = 'score'")
            .rows.map { try $0.decode("m", as: String.self) }
        #expect(stored.allSatisfy { $0.contains("${HOOK_TOKEN}") && !$0.contains("s3cret-token") })

        #expect(try Self.sentSteps(scenario) == ["Name0:hot", "Name0:score", "Name1:cold", "Name1:score"])
        #expect(try Self.statuses(scenario) == ["Name0": "completed", "Name1": "completed"])
        let saved = try scenario.connect().query(
            "SELECT e.step_data::text AS d, ev.detail::text AS detail FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id "
                + "JOIN seqd.enrollment_events ev ON ev.enrollment_id = e.id AND ev.event = 'step_data_saved' WHERE c.first_name = 'Name0'")
        try #require(saved.count == 1)
        let data = try #require(try JSONSerialization.jsonObject(with: Data(try saved[0].decode("d", as: String.self).utf8)) as? [String: Any])
        #expect(data["score"] as? Int == 80 && data["tier"] as? String == "gold" && data["ignored"] == nil, "only the save: fields")
        #expect(try saved[0].decode("detail", as: String.self).contains("\"step\": \"score\""))
        let inspect = try await scenario.seqd.run("inspect", "--contact", "hot@example.com")
        #expect(inspect.status == 0, "\(inspect)")
        #expect(inspect.stdout.contains("step data: {") && inspect.stdout.contains(#""score": 80"#), "\(inspect)")
        #expect(inspect.stdout.contains("step_data_saved"), "\(inspect)")
    }

    @Test("429 with Retry-After is retried after the wait; the second attempt is sent")
    func retryAfter() async throws {
        let (scenario, server) = try await Self.prepare(
            "hook429", contacts: ["a@example.com"], script: "429:1,200", sequence: { Self.sequence(port: $0) })
        defer { server.stop() }
        let daemon = DaemonProcess(
            scenario.seqd, arguments: ["run"] + Self.loopbackAllowed,
            environment: ["SEQD_DELIVERY_TRANSPORT": "null", "HOOK_TOKEN": "t", "SEQD_DELIVERY_BACKOFF": "1s", "SEQD_WORKER_POLL_INTERVAL": "1s"],
            name: "hook429")
        try daemon.start()
        let connection = try scenario.connect()
        try await waitUntil(timeout: .seconds(60), "the webhook to be sent after its 429") {
            try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE step_key = 'score' AND status = 'sent'")[0]
                .decode("n", as: Int.self) == 1
        }
        daemon.send(SIGTERM)
        _ = try await daemon.waitForExit()
        let attempts = try connection.query(
            "SELECT a.outcome, a.reply, a.started_at FROM seqd.delivery_attempts a JOIN seqd.deliveries d ON d.id = a.delivery_id "
                + "WHERE d.step_key = 'score' ORDER BY a.id"
        ).rows.map { (try $0.decode("outcome", as: String.self), try $0.decode("reply", as: String?.self), try $0.decode("started_at", as: Date.self)) }
        #expect(attempts.map(\.0) == ["temporary_failure", "sent"])
        #expect(attempts.first?.1?.hasPrefix("HTTP 429") == true)
        if attempts.count == 2 { #expect(attempts[1].2.timeIntervalSince(attempts[0].2) >= 1, "Retry-After: 1 was honoured") }
        let received = try Self.requests(server)
        #expect(received.count == 2 && Set(received.map { $0.headers["idempotency-key"] }).count == 1, "both tries carry one key")
    }

    @Test("400 fails the step: on_failure stop fails the enrollment; skip goes on with the next step")
    func permanentFailure() async throws {
        for onFailure in ["stop", "skip"] {
            let (scenario, server) = try await Self.prepare(
                "hook400\(onFailure)", contacts: ["a@example.com"], script: "400",
                sequence: { Self.sequence(port: $0, onFailure: onFailure) })
            defer { server.stop() }
            let result = try await scenario.seqd.run(
                ["run", "--once", "--set", "delivery.transport=null"] + Self.loopbackAllowed, environment: ["HOOK_TOKEN": "t"])
            #expect(result.status == 0, "\(result)")
            let row = try scenario.connect().query(
                "SELECT e.status::text AS status, e.last_error, d.status::text AS delivery FROM seqd.enrollments e "
                    + "JOIN seqd.deliveries d ON d.enrollment_id = e.id AND d.step_key = 'score'")[0]
            #expect(try row.decode("delivery", as: String.self) == "failed")
            if onFailure == "stop" {
                #expect(try row.decode("status", as: String.self) == "failed")
                #expect(try row.decode("last_error", as: String?.self)?.contains("HTTP 400") == true)
                #expect(try Self.sentSteps(scenario).isEmpty)
            } else {
                #expect(try row.decode("status", as: String.self) == "completed")
                #expect(try Self.sentSteps(scenario) == ["Name0:cold"], "no saved score: the branch falls through to cold")
            }
            #expect(try Self.requests(server).count == 1, "a permanent failure is not retried")
        }
    }

    @Test("a private address is refused unless webhook.allow_private_networks is true")
    func privateNetworks() async throws {
        let (scenario, server) = try await Self.prepare(
            "hookssrf", contacts: ["a@example.com"], script: "200", sequence: { Self.sequence(port: $0) })
        defer { server.stop() }
        let refusedRun = try await scenario.seqd.run(["run", "--once", "--set", "delivery.transport=null"], environment: ["HOOK_TOKEN": "t"])
        #expect(refusedRun.status == 0, "\(refusedRun)")
        let connection = try scenario.connect()
        let refused = try connection.query(
            "SELECT d.status::text AS status, d.last_error FROM seqd.deliveries d WHERE d.step_key = 'score'")[0]
        #expect(try refused.decode("status", as: String.self) == "failed")
        #expect(try refused.decode("last_error", as: String?.self)?.contains("webhook.allow_private_networks") == true)
        #expect(try Self.requests(server).isEmpty, "nothing reached the loopback receiver")

        // Allowed: the operator retries the enrollment and the request goes out.
        let retry = try await scenario.seqd.run(["retry", "--contact", "a@example.com", "--sequence", "hooks"])
        #expect(retry.status == 0, "\(retry)")
        let result = try await scenario.seqd.run(
            ["run", "--once", "--set", "delivery.transport=null"] + Self.loopbackAllowed, environment: ["HOOK_TOKEN": "t"])
        #expect(result.status == 0, "\(result)")
        #expect(try Self.requests(server).count == 1)
        #expect(try connection.query("SELECT status::text AS s FROM seqd.deliveries WHERE step_key = 'score'")[0].decode("s", as: String.self) == "sent")
    }

    @Test("SIGKILL between the request and its settle: the retry carries the same Idempotency-Key")
    func sameKeyAfterKill() async throws {
        let (scenario, server) = try await Self.prepare(
            "hookkill", contacts: ["a@example.com"], script: "stall:1,200", sequence: { Self.sequence(port: $0) })
        defer { server.stop() }
        let environment = [
            "SEQD_DELIVERY_TRANSPORT": "null", "HOOK_TOKEN": "t", "SEQD_DELIVERY_BACKOFF": "1s", "SEQD_WORKER_POLL_INTERVAL": "1s",
            "SEQD_DELIVERY_LEASE_TIMEOUT": "3s",
        ]
        let first = DaemonProcess(scenario.seqd, arguments: ["run"] + Self.loopbackAllowed, environment: environment, name: "hookkill-1")
        try first.start()
        try await waitUntil(timeout: .seconds(60), "the first request to reach the receiver") { try Self.requests(server).count == 1 }
        first.send(SIGKILL)
        _ = try await first.waitForExit()
        let second = DaemonProcess(scenario.seqd, arguments: ["run"] + Self.loopbackAllowed, environment: environment, name: "hookkill-2")
        try second.start()
        let connection = try scenario.connect()
        try await waitUntil(timeout: .seconds(60), "the retry to be sent") {
            try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE step_key = 'score' AND status = 'sent'")[0]
                .decode("n", as: Int.self) == 1
        }
        second.send(SIGTERM)
        _ = try await second.waitForExit()
        let received = try Self.requests(server)
        #expect(received.count == 2)
        #expect(Set(received.map { $0.headers["idempotency-key"] }).count == 1, "the receiver can drop the second as a duplicate")
        let outcomes = try connection.query(
            "SELECT a.outcome FROM seqd.delivery_attempts a JOIN seqd.deliveries d ON d.id = a.delivery_id WHERE d.step_key = 'score' ORDER BY a.id"
        ).rows.map { try $0.decode("outcome", as: String.self) }
        #expect(outcomes == ["unknown", "sent"], "the killed send is recorded as unknown, not lost")
    }
}
