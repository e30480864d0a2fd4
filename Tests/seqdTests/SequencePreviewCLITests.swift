import Foundation
import Postgres
import Testing
import TestSupport

/// `seqd sequence preview`: the bytes equal what the daemon's file transport then writes for the
/// same step (up to the parts that derive from the delivery key, the send time and the
/// enrollment), nothing is written, and bad input exits as documented.
@Suite("CLI: sequence preview")
struct SequencePreviewCLITests {
    static let sequence = """
        name: welcome
        sender: { address: hello@example.com, name: "Acme Onboarding" }
        steps:
          - key: intro
            type: email
            subject: "Welcome, {{first_name}} — ça va?"
            body: "Hi {{first_name}}, your plan is {{plan|free}}."
            html: "<p>Hi {{first_name}} &amp; welcome</p>"
          - { type: wait, duration: 2d }
          - { key: nudge, type: email, thread: true, body: "Just checking in, {{first_name}}." }
        """

    static let unsubscribe = ["--set", "unsubscribe.base_url=https://mail.example.com"]

    /// Everything that identifies one send rather than the message: the Date header, the key in
    /// Message-ID (and In-Reply-To), the MIME boundary, the unsubscribe token.
    static func normalised(_ message: String) -> String {
        message.split(separator: "\r\n", omittingEmptySubsequences: false).map { line -> String in
            if line.hasPrefix("Date: ") { return "Date: (send time)" }
            var text = String(line)
            for (pattern, replacement) in [
                (#"<seqd\.[^@>]+@"#, "<seqd.(key)@"), (#"=_seqd_[0-9a-f]+"#, "=_seqd_(boundary)"),
                (#"/u/[A-Za-z0-9_-]+"#, "/u/(token)"),
            ] {
                text = text.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
            }
            return text
        }.joined(separator: "\r\n")
    }

    func rowCounts(_ connection: Connection) throws -> [Int] {
        try ["enrollments", "enrollment_events", "deliveries", "delivery_attempts", "signals", "contacts"].map {
            try connection.query("SELECT count(*) AS n FROM seqd.\($0)")[0].decode("n", as: Int.self)
        }
    }

    @Test("the preview is the message the daemon then sends, and writes nothing")
    func sameBytesAsTheDaemon() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "cli_preview", sequence: Self.sequence, name: "welcome", contacts: ["ada@example.com"])
        let (seqd, connection) = (scenario.seqd, try scenario.connect())
        let before = try rowCounts(connection)
        let preview = try await seqd.run(["sequence", "preview", "welcome", "--contact", "ADA@example.com", "--step", "intro"] + Self.unsubscribe)
        #expect(preview.status == 0, "\(preview)")
        #expect(try rowCounts(connection) == before)
        #expect(preview.stderr.contains("==> step intro (email 1 of 2), delivery key preview-"))
        #expect(preview.stderr.contains("version 1 (the version enrollment "))
        #expect(preview.stdout.contains("\r\nSubject: =?UTF-8?B?"))  // RFC 2047: the subject is not ASCII
        #expect(preview.stdout.contains("\r\nTo: Name0 <ada@example.com>\r\n"))
        #expect(preview.stdout.contains("Message-ID: <seqd.preview-"))
        #expect(preview.stdout.contains("List-Unsubscribe: <https://mail.example.com/u/"))
        #expect(preview.stdout.contains("Hi Name0, your plan is free."))

        let outbox = seqd.directory.appendingPathComponent("outbox").path
        try await scenario.runOnce(transport: "file", ["--set", "delivery.file.directory=\(outbox)"] + Self.unsubscribe)
        let key = try connection.query("SELECT idempotency_key FROM seqd.deliveries WHERE step_key = 'intro'")[0]
            .decode("idempotency_key", as: String.self)
        let sent = try String(contentsOfFile: "\(outbox)/\(key).eml", encoding: .utf8)
        #expect(Self.normalised(preview.stdout) == Self.normalised(sent))
        #expect(preview.stdout != sent)  // the key-derived parts really are preview ones

        // The threaded step now replies to the Message-ID the daemon really sent.
        let sentID = try connection.query("SELECT message_id FROM seqd.deliveries WHERE step_key = 'intro'")[0]
            .decode("message_id", as: String.self)
        let nudge = try await seqd.run("sequence", "preview", "welcome", "--contact", "ada@example.com", "--step", "nudge")
        #expect(nudge.status == 0, "\(nudge)")
        #expect(nudge.stdout.contains("\r\nIn-Reply-To: \(sentID)\r\n"), "\(nudge)")
        #expect(nudge.stdout.contains("\r\nSubject: =?UTF-8?B?"))
        #expect(!nudge.stdout.contains("List-Unsubscribe"))  // no unsubscribe.base_url this time
    }

    @Test("every email step in order; unknown names exit 1, a missing field exits 65 naming step and field")
    func stepsAndErrors() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "cli_preview_err", sequence: Self.sequence, name: "welcome", contacts: ["ada@example.com"])
        let seqd = scenario.seqd
        var result = try await seqd.run("sequence", "preview", "welcome", "--contact", "ada@example.com")
        #expect(result.status == 0, "\(result)")
        let intro = try #require(result.stdout.range(of: "Message-ID: <seqd.preview-"))
        #expect(result.stdout.components(separatedBy: "\r\nMessage-ID: <seqd.preview-").count == 3)
        let nudge = try #require(result.stdout.range(of: "In-Reply-To: <seqd.preview-"))
        #expect(intro.lowerBound < nudge.lowerBound)

        #expect(try await seqd.run("contact", "add", "--email", "anon@example.com").status == 0)
        let cases: [([String], Int32, String)] = [
            (["nope", "--contact", "ada@example.com"], 1, "no sequence named 'nope'"),
            (["welcome", "--contact", "nobody@example.com"], 1, "no contact with address nobody@example.com"),
            (["welcome", "--contact", "ada@example.com", "--step", "outro"], 1, "version 1 has no step 'outro' (its steps: intro, wait-2, nudge)"),
            (["welcome", "--contact", "ada@example.com", "--step", "wait-2"], 1, "step 'wait-2' is a wait step"),
            (["welcome", "--contact", "ada@example.com", "--version", "2"], 1, "sequence 'welcome' has no version 2"),
            (["welcome", "--contact", "ada@example.com", "--version", "0"], 64, "--version must be 1 or more"),
            (["welcome"], 64, "--contact"),
            (["welcome", "--contact", "anon@example.com"], 65, "step 'intro': missing contact field without fallback: first_name"),
        ]
        for (arguments, status, message) in cases {
            result = try await seqd.run(["sequence", "preview"] + arguments)
            #expect(result.status == status, "\(arguments): \(result)")
            #expect(result.stderr.contains(message), "\(arguments): \(result)")
            #expect(status == 0 || result.stdout.isEmpty, "\(arguments): \(result)")
        }
        // Both steps lack the field; both are named.
        #expect(result.stderr.contains("step 'nudge': missing contact field without fallback: first_name"))
    }

    @Test("tracking.clicks: preview and the daemon send the same rewritten links (the daemon's signed for the real delivery); plain-http tracking.base_url is refused by the smtp transport; no base URL sends untracked")
    func trackedLinks() async throws {
        let tracked = """
            name: launch
            sender: { address: hello@example.com }
            tracking: { clicks: true }
            steps:
              - { key: intro, type: email, subject: Hi, body: "Pricing: https://example.com/pricing?plan=pro.", html: "<a href=\\"https://example.com/pricing?plan=pro\\">Pricing</a>" }
            """
        let scenario = try await Scenario.prepare(prefix: "cli_clicks", sequence: tracked, name: "launch", contacts: ["ada@example.com"])
        let (seqd, connection) = (scenario.seqd, try scenario.connect())
        let base = ["--set", "tracking.base_url=https://go.example.com"] + Self.unsubscribe
        let preview = try await seqd.run(["sequence", "preview", "launch", "--contact", "ada@example.com"] + base)
        #expect(preview.status == 0, "\(preview)")
        #expect(preview.stderr.contains("launch tracks clicks"))
        let unfolded = preview.stdout.replacingOccurrences(of: "=\r\n", with: "")
        #expect(unfolded.contains("Pricing: https://go.example.com/c/"))
        #expect(!unfolded.contains("example.com/pricing"))

        let refused = try await seqd.run(
            ["run", "--once", "--set", "delivery.transport=smtp", "--set", "delivery.smtp.url=smtp://127.0.0.1:1",
             "--set", "tracking.base_url=http://go.example.com"] + Self.unsubscribe)
        #expect(refused.status == 65, "\(refused)")
        #expect(refused.stderr.contains("tracking.base_url: plain http is allowed only on loopback"))

        let outbox = seqd.directory.appendingPathComponent("outbox").path
        try await scenario.runOnce(transport: "file", ["--set", "delivery.file.directory=\(outbox)"] + base)
        let row = try connection.query("SELECT id, idempotency_key FROM seqd.deliveries WHERE step_key = 'intro'")[0]
        let sent = try String(contentsOfFile: "\(outbox)/\(try row.decode("idempotency_key", as: String.self)).eml", encoding: .utf8)
            .replacingOccurrences(of: "=\r\n", with: "")
        #expect(sent.contains("Pricing: https://go.example.com/c/"))
        #expect(sent.contains("display:none"))
        // The token names the real delivery (big-endian, after the version byte).
        let token = try #require(sent.firstMatch(of: /Pricing: https:\/\/go\.example\.com\/c\/([A-Za-z0-9_-]+)/)).1
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        let bytes = try #require(Data(base64Encoded: base64))
        #expect(bytes[1..<9].reduce(Int64(0)) { $0 << 8 | Int64($1) } == (try row.decode("id", as: Int64.self)))
        // The stored message keeps the author's text: the links are rewritten only when composed.
        let stored = try connection.query("SELECT message->>'text' AS text FROM seqd.deliveries WHERE step_key = 'intro'")[0]
            .decode("text", as: String?.self)
        #expect(stored == nil || stored == "Pricing: https://example.com/pricing?plan=pro.")

        // No base URL at all: the preview says so and shows the links as they would go out, untouched.
        let bare = try await seqd.run("sequence", "preview", "launch", "--contact", "ada@example.com")
        #expect(bare.status == 0)
        #expect(bare.stderr.contains("links are shown (and would be sent) untracked"))
        #expect(bare.stdout.replacingOccurrences(of: "=\r\n", with: "").contains("Pricing: https://example.com/pricing?plan=3Dpro."), "\(bare)")
    }
}
