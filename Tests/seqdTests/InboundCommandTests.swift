import Foundation
import Postgres
import Testing
import TestSupport

/// `seqd inbound` as an MTA pipe runs it: the real binary, messages on stdin or in a file, replying
/// to mail the daemon really sent (the Message-IDs come from the `.eml` files of the file
/// transport), with the documented exit codes.
@Suite("seqd inbound end to end")
struct InboundCommandTests {
    static let sequence = """
        name: welcome
        sender: { address: team@example.com }
        steps:
          - { key: hello, type: email, subject: "Welcome, {{first_name}}", body: "Hello!" }
          - { type: wait, duration: 2d }
          - { key: again, type: email, subject: "Again", body: "Hello again" }
        """
    static let contacts = ["ada@example.org", "bob@example.org", "cy@example.org", "dee@example.org"]

    /// The scenario after one daemon pass with the file transport, and each contact's Message-ID
    /// as written in the `.eml` the transport produced.
    func prepare(_ prefix: String) async throws -> (Scenario, [String: String]) {
        let scenario = try await Scenario.prepare(prefix: prefix, sequence: Self.sequence, name: "welcome", contacts: Self.contacts)
        try await scenario.runOnce(transport: "file")
        var ids = [String: String]()
        let outbox = scenario.seqd.directory.appendingPathComponent("outbox")
        for file in try FileManager.default.contentsOfDirectory(atPath: outbox.path) {
            let text = try String(contentsOf: outbox.appendingPathComponent(file), encoding: .utf8)
            let headers = text.components(separatedBy: "\r\n\r\n")[0].components(separatedBy: "\r\n")
            guard let to = headers.first(where: { $0.hasPrefix("To: ") }), let id = headers.first(where: { $0.hasPrefix("Message-ID: ") })
            else { continue }
            let contact = Self.contacts.first { to.contains("<\($0)>") }!
            ids[contact] = String(id.dropFirst("Message-ID: ".count))
        }
        try #require(ids.count == Self.contacts.count, "one sent message per contact: \(ids)")
        return (scenario, ids)
    }

    func status(_ scenario: Scenario, _ email: String) throws -> String {
        try scenario.connect().query(
            "SELECT e.status::text AS s FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = $1",
            [email])[0].decode("s")
    }

    func fixture(_ name: String, _ ids: [String: String], _ contact: String) throws -> Data {
        Data(try InboundFixtures.text(name, messageID: ids[contact]!, contact: contact, sender: "team@example.com").utf8)
    }

    @Test("replies, bounces and delayed reports through stdin and FILE; exit 0 applied or ignored, 1 finished or unmatched")
    func classifications() async throws {
        let (scenario, ids) = try await prepare("inbound_cli")
        let seqd = scenario.seqd

        let reply = try await seqd.run(["inbound"], input: try fixture("gmail-reply.eml", ids, "ada@example.org"))
        #expect(reply.status == 0, "\(reply)")
        #expect(reply.stdout.contains("classification: reply"), "\(reply)")
        #expect(reply.stdout.contains("matched by: In-Reply-To \(ids["ada@example.org"]!)"), "\(reply)")
        #expect(reply.stdout.contains("(welcome): active → replied"), "\(reply)")
        #expect(try status(scenario, "ada@example.org") == "replied")

        // The same reply again, from a file: the enrollment is finished, and seqd says so.
        try seqd.write("reply.eml", String(decoding: try fixture("thunderbird-reply.eml", ids, "ada@example.org"), as: UTF8.self))
        let again = try await seqd.run("inbound", "reply.eml")
        #expect(again.status == 1, "\(again)")
        #expect(again.stdout.contains("no live enrollment (finished: replied)"), "\(again)")

        let bounce = try await seqd.run(["inbound", "--json"], input: try fixture("postfix-dsn-511.eml", ids, "bob@example.org"))
        #expect(bounce.status == 0, "\(bounce)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(bounce.stdout.utf8)) as? [String: Any])
        #expect(json["outcome"] as? String == "applied")
        #expect(json["classification"] as? String == "bounce")
        #expect(json["suppressed"] as? Int == 1)
        #expect(json["matched_by"] as? String == "Message-ID of the returned message \(ids["bob@example.org"]!)")
        #expect(json.keys.contains("resume_at") && json["resume_at"] is NSNull, "every key present")
        #expect(try status(scenario, "bob@example.org") == "bounced")
        #expect(!bounce.stdout.contains("bob@example.org"), "no address in the output")

        let exchange = try await seqd.run(["inbound"], input: try fixture("exchange-ndr.eml", ids, "cy@example.org"))
        #expect(exchange.status == 0, "\(exchange)")
        #expect(exchange.stdout.contains("classification: bounce (5.1.10)"), "\(exchange)")
        #expect(try status(scenario, "cy@example.org") == "bounced")

        let delayed = try await seqd.run(["inbound"], input: try fixture("postfix-delayed-447.eml", ids, "dee@example.org"))
        #expect(delayed.status == 0, "\(delayed)")
        #expect(delayed.stdout.contains("ignored: nothing changed"), "\(delayed)")
        #expect(try status(scenario, "dee@example.org") == "active")

        let stranger = try await seqd.run(
            ["inbound"], input: Data("From: stranger@example.net\nTo: team@example.com\nIn-Reply-To: <nope@example.net>\n\nhi\n".utf8))
        #expect(stranger.status == 1, "\(stranger)")
        #expect(stranger.stdout.contains("unmatched: "), "\(stranger)")

        let signals = try scenario.connect().query("SELECT kind, count(*) AS n FROM seqd.signals WHERE source = 'inbound' GROUP BY kind ORDER BY kind")
        #expect(try signals.rows.map { "\(try $0.decode("kind", as: String.self))=\(try $0.decode("n", as: Int.self))" } == ["bounce=2", "reply=1"])
        let check = try await seqd.run("check")
        #expect(check.status == 0, "\(check)")
    }

    @Test("an auto-reply pauses with resume_at = now + inbound.ooo_resume_after; the daemon's next pass resumes it")
    func outOfOfficeResumesThroughTheDaemon() async throws {
        let (scenario, ids) = try await prepare("inbound_ooo")
        let message = "From: Dee <dee@example.org>\nTo: team@example.com\nIn-Reply-To: \(ids["dee@example.org"]!)\nSubject: Out of Office: Welcome\n\nI am travelling.\n"
        let paused = try await scenario.seqd.run(["inbound", "--set", "inbound.ooo_resume_after=2s"], input: Data(message.utf8))
        #expect(paused.status == 0, "\(paused)")
        #expect(paused.stdout.contains("classification: out_of_office (Subject: out of office)"), "\(paused)")
        #expect(paused.stdout.contains("active → paused, resumes at "), "\(paused)")
        #expect(try status(scenario, "dee@example.org") == "paused")
        let connection = try scenario.connect()
        let delay = try connection.query(
            """
            SELECT extract(epoch FROM e.resume_at - ev.at)::float8 AS delay FROM seqd.enrollments e
            JOIN seqd.contacts c ON c.id = e.contact_id
            JOIN seqd.enrollment_events ev ON ev.enrollment_id = e.id AND ev.to_status = 'paused'
            WHERE c.email = 'dee@example.org'
            """)[0].decode("delay", as: Double.self)
        #expect(abs(delay - 2) < 0.5, "resume_at is the database's now() plus 2s: \(delay)")
        try await waitUntil(timeout: .seconds(10), "resume_at to pass") {
            try connection.query(
                "SELECT count(*) AS n FROM seqd.enrollments WHERE status = 'paused' AND resume_at <= now()")[0].decode("n", as: Int.self) == 1
        }
        try await scenario.runOnce()
        #expect(try status(scenario, "dee@example.org") == "active")
    }

    @Test("malformed input exits 65 naming the line, a missing FILE 66, an unreachable database 69; nothing is stored")
    func failures() async throws {
        let (scenario, _) = try await prepare("inbound_fail")
        let seqd = scenario.seqd
        let cases: [(Data, String)] = [
            (Data(), "seqd: stdin: the message is empty"),
            (Data("From: a@example.org\nnot a header\n\nbody".utf8), "seqd: stdin: line 2: a header line without a colon"),
            (Data("\r\nbody".utf8), "seqd: stdin: line 1: the message has no header section"),
            (Data("Subject: hi\n\nbody".utf8), "seqd: stdin: the header section has no From, In-Reply-To or References"),
        ]
        for (input, expected) in cases {
            let result = try await seqd.run(["inbound"], input: input)
            #expect(result.status == 65, "\(result)")
            #expect(result.stderr.hasPrefix(expected), "\(result)")
        }
        let missing = try await seqd.run("inbound", "missing.eml")
        #expect(missing.status == 66, "\(missing)")
        #expect(missing.stderr.contains("missing.eml: no such file"), "\(missing)")
        let unreachable = try await seqd.run(
            ["inbound", "--database-url", "postgresql://nobody@/x?host=/nonexistent&connect_timeout=2"],
            input: Data("From: a@example.org\n\nhi".utf8))
        #expect(unreachable.status == 69, "\(unreachable)")
        let connection = try scenario.connect()
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.signals")[0].decode("n", as: Int.self) == 0)
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.enrollments WHERE status <> 'active'")[0].decode("n", as: Int.self) == 0)
    }

    // MARK: Issue 16: what inbound mail must prove

    @Test("a guessed Message-ID and a forged report change nothing beyond the matched recipient; From-only needs trusted DMARC")
    func forgeries() async throws {
        let (scenario, ids) = try await prepare("inbound_forged")
        let seqd = scenario.seqd
        let connection = try scenario.connect()
        let keys = Dictionary(uniqueKeysWithValues: try connection.query(
            "SELECT c.email, d.idempotency_key FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id"
        ).rows.map { (try $0.decode("email", as: String.self), try $0.decode("idempotency_key", as: String.self)) })

        // A stranger replies to bob's id as it read before issue 16 (derivable from any email sent),
        // and to ada's real id with bob's enrollment number put in.
        let adaEnrollment = keys["ada@example.org"]!.split(separator: "-")[1]
        let bobEnrollment = keys["bob@example.org"]!.split(separator: "-")[1]
        for guess in ["<seqd.\(keys["bob@example.org"]!)@example.com>",
                      ids["ada@example.org"]!.replacingOccurrences(of: "-\(adaEnrollment)-", with: "-\(bobEnrollment)-")] {
            let result = try await seqd.run(
                ["inbound"], input: Data("From: mallory@evil.example\nTo: team@example.com\nIn-Reply-To: \(guess)\n\nstop\n".utf8))
            #expect(result.status == 1, "\(result)")
            #expect(result.stdout.contains("unmatched: "), "\(result)")
        }
        #expect(try status(scenario, "bob@example.org") == "active")

        // A report that returns cy's message but lists 100 other addresses and cy.
        let victims = (0..<100).map { "Final-Recipient: rfc822; victim\($0)@example.net\nAction: failed\nStatus: 5.1.1\n" }
        let report = """
            From: MAILER-DAEMON@mx.evil.example
            To: team@example.com
            Content-Type: multipart/report; report-type=delivery-status; boundary=R

            --R
            Content-Type: message/delivery-status

            Reporting-MTA: dns; mx.evil.example

            \((victims + ["Final-Recipient: rfc822; cy@example.org\nAction: failed\nStatus: 5.1.1\n"]).joined(separator: "\n"))
            --R
            Content-Type: text/rfc822-headers

            Message-ID: \(ids["cy@example.org"]!)
            --R--

            """
        let bounced = try await seqd.run(["inbound", "--json"], input: Data(report.utf8))
        #expect(bounced.status == 0, "\(bounced)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(bounced.stdout.utf8)) as? [String: Any])
        #expect(json["suppressed"] as? Int == 1)
        #expect(json["ignored_recipients"] as? Int == 100)
        #expect(try connection.query("SELECT email FROM seqd.suppressions").rows.map { try $0.decode("email", as: String.self) } == ["cy@example.org"])

        // From-only: ignored by default and without evidence; applied with trust_from and a DMARC pass from our MTA.
        let fromOnly = "From: Dee <dee@example.org>\nTo: team@example.com\nSubject: Re: Welcome\n\nplease stop\n"
        let trust = ["--set", "inbound.trust_from=true", "--set", "inbound.authserv_id=mx.example.com"]
        let untrusted = try await seqd.run(["inbound"], input: Data(fromOnly.utf8))
        #expect(untrusted.status == 1, "\(untrusted)")
        #expect(untrusted.stdout.contains("inbound.trust_from"), "\(untrusted)")
        let noEvidence = try await seqd.run(["inbound"] + trust, input: Data(fromOnly.utf8))
        #expect(noEvidence.status == 1, "\(noEvidence)")
        #expect(try status(scenario, "dee@example.org") == "active")
        let misconfigured = try await seqd.run(["inbound", "--set", "inbound.trust_from=true"], input: Data(fromOnly.utf8))
        #expect(misconfigured.status == 65, "\(misconfigured)")
        let evidence = InboundFixtures.authenticationResults(domain: "example.org")
        let applied = try await seqd.run(["inbound"] + trust, input: Data("\(evidence)\n\(fromOnly)".utf8))
        #expect(applied.status == 0, "\(applied)")
        #expect(applied.stdout.contains("matched by: sender address and sequence sender (dmarc=pass for example.org by mx.example.com)"), "\(applied)")
        #expect(try status(scenario, "dee@example.org") == "replied")
    }

    /// Peak RSS (KiB) of `seqd inbound FILE` (or `seqd inbound < FILE`), measured by python's
    /// getrusage of its only child.
    func peakRSS(_ seqd: SeqdProcess, file: String, stdin: Bool) async throws -> (kib: Int, result: SeqdProcess.Result) {
        let script = """
            import resource, subprocess, sys
            source = sys.argv[1]
            if sys.argv[2] == "stdin":
                with open(source, "rb") as f:
                    p = subprocess.run(sys.argv[3:], stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            else:
                p = subprocess.run(sys.argv[3:] + [source], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            sys.stderr.write(p.stderr.decode(errors="replace"))
            print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            sys.exit(p.returncode)
            """
        let result = try await ExternalCommand.run(
            ["python3", "-c", script, file, stdin ? "stdin" : "file", seqd.binary.path, "inbound"], environment: ["DATABASE_URL": seqd.databaseURL], check: false)
        return (Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1, result)
    }

    @Test("parsing a 32 MiB message of empty lines, or of one long line, stays under 4x its size")
    func boundedMemory() async throws {
        let (scenario, _) = try await prepare("inbound_memory")
        let size = 32 << 20
        let head = "From: stranger@example.net\nTo: team@example.com\nSubject: big\n\n"
        let cases = [
            ("empty-lines.eml", Data(head.utf8) + Data(repeating: 0x0A, count: size - head.utf8.count)),
            ("long-line.eml", Data(head.utf8) + Data(repeating: 0x61, count: size - head.utf8.count)),
            ("long-subject.eml", Data("From: stranger@example.net\nTo: team@example.com\nSubject: ".utf8)
                + Data(repeating: 0x61, count: size - 60) + Data("\n\nhi\n".utf8)),
        ]
        for ((name, data), stdin) in zip(cases, [false, false, false]) + [(cases[0], true), (cases[1], true)] {
            let path = scenario.seqd.directory.appendingPathComponent(name).path
            try data.write(to: URL(fileURLWithPath: path))
            let (kib, result) = try await peakRSS(scenario.seqd, file: path, stdin: stdin)
            // Unmatched (exit 1): parsed, classified and looked up, nothing changed.
            #expect(result.stderr.isEmpty || !result.stderr.contains("internal error"), "\(result)")
            let ratio = Double(kib) / Double(data.count >> 10)
            print("seqd inbound \(stdin ? "< " : "")\(name) (\(data.count >> 20) MiB): peak RSS \(kib >> 10) MiB, \(String(format: "%.2f", ratio))x")
            #expect(kib > 0 && ratio <= 4, "\(name): peak RSS \(kib) KiB for \(data.count >> 10) KiB (\(ratio)x)")
        }
    }
}
