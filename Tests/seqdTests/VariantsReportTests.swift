import Foundation
import Postgres
import Testing
import TestSupport

/// Issue 19 items 3 and 5 end to end: A/B variants split real enrollments and threaded replies
/// keep their variant's subject; `seqd report` counts per step and variant agree with counts
/// computed independently from the tables.
@Suite("variants and results end to end")
struct VariantsReportTests {
    static let sequence = """
        name: split
        sender: { address: team@example.com }
        exit_when: [{ attribute: plan, equals: paid }]
        steps:
          - key: intro
            type: email
            body: "Hi {{first_name|there}}"
            variants:
              - { key: a, weight: 3, subject: "Quick question" }
              - { key: b, subject: "An idea for you" }
          - { type: wait, duration: 1d }
          - { key: bump, type: email, thread: true, body: "Any thoughts?" }
          - { type: wait, duration: 3d }
          - { key: last, type: email, subject: "Closing the loop", body: "Last one" }
        """

    static func address(_ index: Int) -> String { "c\(index)@example.com" }

    func count(_ connection: Connection, _ sql: String) throws -> Int {
        try connection.query(sql)[0].decode("n")
    }

    @Test("1,000 enrollments split 3:1 within a few percent, each reply carries its variant's subject; seqd report matches the tables")
    func splitAndReport() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "variants", sequence: Self.sequence, name: "split", contacts: (0..<1_000).map(Self.address))
        let connection = try scenario.connect()
        try await scenario.runOnce()
        let split = try connection.query(
            "SELECT variant, count(*) AS n FROM seqd.deliveries WHERE step_key = 'intro' AND status = 'sent' GROUP BY 1 ORDER BY 1"
        ).rows.map { (try $0.decode("variant", as: String?.self), try $0.decode("n", as: Int.self)) }
        #expect(split.map(\.0) == ["a", "b"])
        let a = split.first?.1 ?? 0
        #expect(abs(a - 750) <= 40, "variant a got \(a) of 1000 (weight 3 of 4)")
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.deliveries WHERE message ->> 'subject' = 'Quick question' AND variant = 'a'") == a)

        // Outcomes while the intro is the last email sent: credited to it.
        func cli(_ verb: String, _ range: Range<Int>) async throws {
            let result = try await scenario.seqd.run([verb] + range.flatMap { ["--contact", Self.address($0)] })
            #expect(result.status == 0, "\(result)")
        }
        try await cli("reply", 0..<20)
        try await cli("bounce", 20..<25)

        // The wait is over (as an operator would move it in psql), and the replies go out.
        try connection.execute("UPDATE seqd.enrollments SET next_run_at = now() WHERE status = 'active'")
        try await scenario.runOnce()
        let mismatched = try count(connection, """
            SELECT count(*) AS n FROM seqd.deliveries r JOIN seqd.deliveries p ON p.enrollment_id = r.enrollment_id AND p.step_key = 'intro'
            WHERE r.step_key = 'bump' AND (r.variant IS DISTINCT FROM p.variant OR r.message ->> 'subject' <> 'Re: ' || (p.message ->> 'subject')
                                           OR r.message ->> 'thread_parent_key' <> 'intro')
            """)
        #expect(mismatched == 0)
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.deliveries WHERE step_key = 'bump' AND status = 'sent'") == 975)

        // Outcomes after the reply: credited to it, by variant.
        try await cli("reply", 100..<120)
        try await cli("opt-out", 120..<135)
        for index in 135..<147 {
            let result = try await scenario.seqd.run("contact", "add", "--email", Self.address(index), "--attr", "plan=paid")
            #expect(result.status == 0, "\(result)")
        }
        // Clicks as the tracker records them: a person's, a scanner's, both.
        try connection.execute("""
            INSERT INTO seqd.clicks (delivery_id, url, scanner)
            SELECT d.id, 'https://example.com/x', s.scanner
            FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id
            CROSS JOIN LATERAL (SELECT split_part(substr(c.email, 2), '@', 1)::int AS i) AS n
            CROSS JOIN LATERAL (VALUES (NULL::text), ('head')) AS s(scanner)
            WHERE d.step_key = 'intro'
              AND ((n.i BETWEEN 200 AND 229 AND s.scanner IS NULL)
                OR (n.i BETWEEN 230 AND 244 AND s.scanner IS NOT NULL)
                OR n.i BETWEEN 240 AND 244)
            """)

        // The last email, which has no variants, goes to everyone still active.
        try connection.execute("UPDATE seqd.enrollments SET next_run_at = now() WHERE status = 'active'")
        try await scenario.runOnce()

        let reported = try await scenario.seqd.run("report", "--sequence", "split", "--json")
        #expect(reported.status == 0, "\(reported)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(reported.stdout.utf8)) as? [String: Any])
        let lines = try #require(json["lines"] as? [[String: Any]])
        var fromReport = [String: [Int]]()
        for line in lines {
            let key = "\(line["step"] as? String ?? "?")/\(line["variant"] as? String ?? "-")"
            fromReport[key] = ["sent", "replied", "bounced", "opted_out", "converted", "clicked", "scanner_clicked"].map { line[$0] as? Int ?? -1 }
        }
        let expected = try independentCounts(connection)
        #expect(fromReport == expected)
        #expect(lines.map { "\($0["step"] ?? "")/\($0["variant"].flatMap { $0 is NSNull ? nil : $0 } ?? "<null>")" } == ["intro/a", "intro/b", "bump/a", "bump/b", "last/<null>"], "step order, then variant")
        #expect(lines.last?["variant"] is NSNull)
        #expect(expected["last/-", default: []].first == 1_000 - 72)
        #expect(expected["intro/a", default: []].first == a)
        // Every outcome was credited somewhere: 20 + 5 before the reply, 20 + 15 + 12 after.
        #expect(expected.values.reduce(0) { $0 + $1[1] + $1[2] + $1[3] + $1[4] } == 72)
        #expect(expected.values.reduce(0) { $0 + $1[5] } == 35 && expected.values.reduce(0) { $0 + $1[6] } == 15)
        let first = try #require(lines.first)
        let rate = try #require(first["reply_rate"] as? Double)
        #expect(abs(rate - Double(expected["intro/a"]![1]) / Double(a)) < 1e-9, "reply rate \(rate)")

        // The view says the same; a day after today has nothing; the table reads as a table.
        #expect(try count(connection, "SELECT sum(sent)::int AS n FROM seqd.step_results WHERE sequence = 'split'")
            == expected.values.reduce(0) { $0 + $1[0] })
        let tomorrow = try connection.query("SELECT (current_date + 1)::text AS d")[0].decode("d", as: String.self)
        let none = try await scenario.seqd.run("report", "--sequence", "split", "--since", tomorrow)
        #expect(none.status == 0 && none.stdout.contains("no email sent yet (emails sent since \(tomorrow) (UTC))"), "\(none)")
        let text = try await scenario.seqd.run("report", "--sequence", "split")
        #expect(text.stdout.contains("STEP   VARIANT  SENT  REPLIED"), "\(text)")
        #expect(text.stdout.contains("intro  a        \(a)"), "\(text)")
        let bad = try await scenario.seqd.run("report", "--sequence", "split", "--since", "yesterday")
        #expect(bad.status == 64 && bad.stderr.contains("--since 'yesterday' is not a date (YYYY-MM-DD)"), "\(bad)")
        let unknown = try await scenario.seqd.run("report", "--sequence", "nope")
        #expect(unknown.status != 0 && unknown.stderr.contains("no sequence named 'nope'"), "\(unknown)")
        #expect(try await scenario.seqd.run("check").status == 0)

        // A reply after the sequence completed changes no status, but counts for its last email:
        // named by the operator, or as inbound mail answering that email.
        let late = try await scenario.seqd.run("reply", "--contact", Self.address(500))
        #expect(late.stdout.contains(
            "no live enrollment (finished: completed); counted as a reply to the completed sequence's last email (seqd report)"), "\(late)")
        let lateAgain = try await scenario.seqd.run("reply", "--contact", Self.address(500))
        #expect(!lateAgain.stdout.contains("counted as a reply"), "an email is credited once: \(lateAgain)")
        let lastMessageID = try connection.query(
            "SELECT d.message_id FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id WHERE c.email = $1 AND d.step_key = 'last'",
            [Self.address(501)])[0].decode("message_id", as: String.self)
        let mail = """
            From: Someone <\(Self.address(501))>\r
            To: team@example.com\r
            Subject: Re: Closing the loop\r
            Message-ID: <late-501@example.com>\r
            In-Reply-To: \(lastMessageID)\r
            Date: Tue, 8 Dec 2026 10:00:00 +0000\r
            \r
            Thanks, let's talk next month.\r

            """
        let inbound = try await scenario.seqd.run(["inbound"], input: Data(mail.utf8))
        #expect(inbound.stdout.contains("counted as a reply to the completed sequence's last email"), "\(inbound)")
        let after = try await scenario.seqd.run("report", "--sequence", "split", "--json")
        let afterLines = try #require((try JSONSerialization.jsonObject(with: Data(after.stdout.utf8)) as? [String: Any])?["lines"] as? [[String: Any]])
        #expect(afterLines.last?["replied"] as? Int == 2, "\(after)")

        // The preview renders one variant on request, and its reply follows.
        let preview = try await scenario.seqd.run("sequence", "preview", "split", "--contact", Self.address(999), "--variant", "b")
        #expect(preview.status == 0, "\(preview)")
        #expect(preview.stdout.contains("Subject: An idea for you") && preview.stdout.contains("Subject: Re: An idea for you"), "\(preview)")
        #expect(preview.stderr.contains("==> step intro (email 1 of 3, variant b)"), "\(preview)")
        let noSuch = try await scenario.seqd.run("sequence", "preview", "split", "--contact", Self.address(999), "--variant", "c")
        #expect(noSuch.status != 0 && noSuch.stderr.contains("has a variant 'c' (variants: a, b)"), "\(noSuch)")
    }

    /// `step/variant` → sent, replied, bounced, opted out, converted, clicked, scanner clicked,
    /// from the raw rows: each ended enrollment's outcome goes to its last email sent (by time),
    /// without reading `deliveries.credited_outcome`.
    func independentCounts(_ connection: Connection) throws -> [String: [Int]] {
        let sent = try connection.query("""
            SELECT d.id, d.enrollment_id, d.step_key, d.variant, e.status::text AS status
            FROM seqd.deliveries d JOIN seqd.enrollments e ON e.id = d.enrollment_id
            WHERE d.kind = 'email' AND d.status = 'sent' ORDER BY d.sent_at, d.id
            """).rows
        let clicks = try connection.query("SELECT delivery_id, scanner FROM seqd.clicks").rows
        var human = Set<Int64>(), scanner = Set<Int64>()
        for click in clicks {
            let id: Int64 = try click.decode("delivery_id")
            if try click.decode("scanner", as: String?.self) == nil { human.insert(id) } else { scanner.insert(id) }
        }
        var lastSent = [Int64: (key: String, status: String)]()
        var counts = [String: [Int]]()
        for row in sent {
            let key = "\(try row.decode("step_key", as: String.self))/\(try row.decode("variant", as: String?.self) ?? "-")"
            let id: Int64 = try row.decode("id")
            lastSent[try row.decode("enrollment_id")] = (key, try row.decode("status"))
            var line = counts[key] ?? Array(repeating: 0, count: 7)
            line[0] += 1
            if human.contains(id) { line[5] += 1 }
            if scanner.contains(id) { line[6] += 1 }
            counts[key] = line
        }
        let column = ["replied": 1, "bounced": 2, "opted_out": 3, "converted": 4]
        for (_, last) in lastSent {
            if let index = column[last.status] { counts[last.key]![index] += 1 }
        }
        return counts
    }
}
