import Foundation
import Postgres
import Testing
import TestSupport

/// The input-side commands as an operator runs them: the built binary, its exit codes and messages.
@Suite("CLI: sequence, contact, enroll")
struct CLITests {
    let seqd: SeqdProcess
    let connection: Connection

    init() async throws {
        let url = try await TestDatabase.shared.makeMigratedDatabase(prefix: "cli")
        seqd = try SeqdProcess(databaseURL: url)
        connection = try Connection(url)
    }

    static let onboarding = """
        name: onboarding
        sender: { address: hello@example.com, name: Hello }
        steps:
          - key: intro
            type: email
            subject: "Welcome, {{first_name|there}}"
            body: "Hi from {{company}}"
          - type: wait
            duration: 2d
          - key: followup
            type: email
            subject: "Still there?"
            body: "Checking in."
        """

    func count(_ sql: String) throws -> Int {
        try connection.query("SELECT count(*) AS n FROM \(sql)")[0].decode("n")
    }

    @Test("apply creates a version, then reports the same content unchanged; list and show read it back")
    func applyListShow() async throws {
        let file = try seqd.write("onboarding.yaml", Self.onboarding)
        var result = try await seqd.run("sequence", "apply", file)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "onboarding: version 1 created\n")
        result = try await seqd.run("sequence", "apply", file)
        #expect(result.stdout == "onboarding: unchanged (version 1)\n")

        result = try await seqd.run("sequence", "list")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("onboarding") && result.stdout.contains("running"))

        result = try await seqd.run("sequence", "show", "onboarding")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("wait-2") && result.stdout.contains("wait 2d"))
        #expect(result.stdout.contains("subject: Welcome, {{first_name|there}}"))

        result = try await seqd.run("sequence", "show", "onboarding", "--json")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["version"] as? Int == 1)
        #expect((json?["definition"] as? [String: Any])?["name"] as? String == "onboarding")

        result = try await seqd.run("sequence", "show", "nope")
        #expect(result.status == 1 && result.stderr.contains("no sequence named 'nope'"), "\(result)")
    }

    @Test("an invalid file exits 65 naming the file and the field, and nothing is stored")
    func invalidSequence() async throws {
        let good = try seqd.write("good.yaml", Self.onboarding)
        let bad = try seqd.write(
            "bad.yaml",
            """
            name: broken
            sender: { address: hello@example.com }
            steps:
              - type: email
                subject: Hi
                body: Hi
              - type: wait
                duration: 2x
              - type: email
                subject: Hi
            """)
        let result = try await seqd.run("sequence", "apply", good, bad)
        #expect(result.status == 65, "\(result)")
        #expect(result.stderr.contains("bad.yaml: steps[1].duration: '2x' is not a duration"), "\(result)")
        #expect(result.stderr.contains("bad.yaml: steps[2]"), "\(result)")
        #expect(result.stdout.isEmpty)
        #expect(try count("seqd.sequences") == 0)
    }

    @Test("webhook steps at apply: a bad one exits 65 naming each field and stores nothing; a valid one is stored")
    func webhookValidatedAtApply() async throws {
        let bad = try seqd.write(
            "hook.yaml",
            """
            name: hooked
            sender: { address: hello@example.com }
            steps:
              - { type: email, subject: Hi, body: Hi }
              - { type: webhook, url: "https://crm.example.com/{{first_name}}", method: FETCH, body: '{"n": {{n}}}' }
            """)
        let refused = try await seqd.run("sequence", "apply", bad)
        #expect(refused.status == 65, "\(refused)")
        #expect(refused.stderr.contains("hook.yaml: steps[1].method: 'FETCH' is not allowed"), "\(refused)")
        #expect(refused.stderr.contains("hook.yaml: steps[1].body: is not JSON after rendering a sample contact"), "\(refused)")
        #expect(try count("seqd.sequences") == 0)

        let good = try seqd.write(
            "hook-ok.yaml",
            """
            name: hooked
            sender: { address: hello@example.com }
            steps:
              - { type: email, subject: Hi, body: Hi }
              - { type: webhook, url: "https://crm.example.com/{{first_name}}", body: { n: "{{n|0}}" }, save: [score] }
            """)
        let applied = try await seqd.run("sequence", "apply", good)
        #expect(applied.status == 0, "\(applied)")
        #expect(try count("seqd.sequences") == 1)
    }

    @Test("a missing sequence file exits 66")
    func missingSequenceFile() async throws {
        let result = try await seqd.run("sequence", "apply", "missing.yaml")
        #expect(result.status == 66, "\(result)")
        #expect(result.stderr.contains("missing.yaml: no such file"), "\(result)")
    }

    @Test("pause and resume a sequence; pausing twice is refused")
    func pauseResume() async throws {
        _ = try await seqd.run("sequence", "apply", try seqd.write("onboarding.yaml", Self.onboarding))
        var result = try await seqd.run("sequence", "pause", "onboarding")
        #expect(result.status == 0 && result.stdout.hasPrefix("onboarding: paused at "), "\(result)")
        result = try await seqd.run("sequence", "pause", "onboarding")
        #expect(result.status == 1 && result.stderr.contains("already paused"), "\(result)")
        result = try await seqd.run("sequence", "resume", "onboarding")
        #expect(result.status == 0 && result.stdout.contains("resumed after"), "\(result)")
    }

    @Test("bad CSV rows exit 65 with their line numbers on stderr; the good rows are imported")
    func importWithBadRows() async throws {
        let file = try seqd.write(
            "contacts.csv",
            """
            email,first_name,company
            ada@example.com,Ada,ACME
            not-an-address,Bob,ACME
            cy@example.com,Cy
            dee@example.com,Dee,ACME

            """)
        var result = try await seqd.run("contact", "import", file)
        #expect(result.status == 65, "\(result)")
        #expect(result.stderr.contains("contacts.csv:3: invalid email address"), "\(result)")
        #expect(result.stderr.contains("contacts.csv:4: expected 3 columns, found 2"), "\(result)")
        #expect(result.stdout == "imported 2 contacts (2 new, 0 updated), rejected 2 rows\n")
        #expect(try count("seqd.contacts") == 2)

        result = try await seqd.run("contact", "import", file, "--strict", "--json")
        #expect(result.status == 65, "\(result)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["imported"] as? Int == 0)
        #expect((json?["rejected"] as? [Any])?.count == 2)

        result = try await seqd.run("contact", "import", "nope.csv")
        #expect(result.status == 66, "\(result)")
        result = try await seqd.run("contact", "import", try seqd.write("empty.csv", "name\nx\n"))
        #expect(result.status == 65 && result.stderr.contains("no 'email' column"), "\(result)")
    }

    @Test("addresses with control characters are refused by contact add and contact import (65), nothing stored")
    func controlCharacters() async throws {
        // Cut at the first control character when sent, so refused before they are stored (issue 16).
        for address in ["ada\u{7}@example.com", "ada@example.com\r", "a\u{1B}[31m@example.com"] {
            let result = try await seqd.run("contact", "add", "--email", address)
            #expect(result.status == 65 && result.stderr.contains("control character"), "\(result)")
        }
        #expect(try count("seqd.contacts") == 0)
        let file = try seqd.write("controls.csv", "email\nok@example.com\n\"bad\u{1}@example.com\"\nalso\u{B}bad@example.com\n")
        let result = try await seqd.run("contact", "import", file)
        #expect(result.status == 65, "\(result)")
        #expect(result.stderr.contains("controls.csv:3: invalid email address") && result.stderr.contains("controls.csv:4:"), "\(result)")
        #expect(try count("seqd.contacts") == 1)
    }

    @Test("contact add validates the address and the zone (65) and upserts")
    func contactAdd() async throws {
        var result = try await seqd.run("contact", "add", "--email", "nope")
        #expect(result.status == 65 && result.stderr.contains("invalid email address"), "\(result)")

        result = try await seqd.run("contact", "add", "--email", "ada@example.com", "--time-zone", "GMT+5")
        #expect(result.status == 65 && result.stderr.contains("unknown time zone"), "\(result)")
        result = try await seqd.run("contact", "add", "--email", "ada@example.com", "--attr", "Plan=pro")
        #expect(result.status == 0 && result.stdout == "contact created\n", "\(result)")
        result = try await seqd.run("contact", "add", "--email", "ADA@example.com", "--first-name", "Ada")
        #expect(result.stdout == "contact updated\n", "\(result)")
        result = try await seqd.run("contact", "add", "--email", "ada@example.com", "--attr", "novalue")
        #expect(result.status == 64, "\(result)")
        let row = try connection.query("SELECT first_name, attributes->>'plan' AS plan FROM seqd.contacts")[0]
        #expect(try row.decode("first_name", as: String.self) == "Ada")
        #expect(try row.decode("plan", as: String.self) == "pro")
    }

    @Test("enroll needs exactly one selector (64) and a known sequence (1)")
    func enrollUsage() async throws {
        var result = try await seqd.run("enroll", "--sequence", "onboarding")
        #expect(result.status == 64, "\(result)")
        #expect(result.stderr.contains("--contact"), "\(result)")
        result = try await seqd.run("enroll", "--sequence", "onboarding", "--all", "--contact", "a@example.com")
        #expect(result.status == 64, "\(result)")
        result = try await seqd.run("enroll", "--sequence", "nope", "--all")
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("no sequence named 'nope'"), "\(result)")
    }

    @Test("enroll --csv imports and enrolls; counts are printed; a dry run writes nothing")
    func enrollFromCSV() async throws {
        _ = try await seqd.run("sequence", "apply", try seqd.write("onboarding.yaml", Self.onboarding))
        let file = try seqd.write(
            "signups.csv",
            """
            email,first_name,company
            ada@example.com,Ada,ACME
            bob@example.com,Bob,
            bad,Bad,ACME

            """)
        var result = try await seqd.run("enroll", "--sequence", "onboarding", "--csv", file, "--dry-run", "--json")
        #expect(result.status == 65, "\(result)")
        #expect(result.stderr.contains("signups.csv:4:"), "\(result)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["enrolled"] as? Int == 1)
        #expect(json?["missing_template_fields"] as? Int == 1)
        #expect(json?["dry_run"] as? Bool == true)
        #expect(try count("seqd.contacts") == 0)

        result = try await seqd.run("enroll", "--sequence", "onboarding", "--csv", file)
        #expect(result.status == 65, "\(result)")
        #expect(result.stdout.contains("enrolled                 1"), "\(result)")
        #expect(result.stdout.contains("missing fields: company (1)"), "\(result)")
        #expect(try count("seqd.enrollments") == 1)

        result = try await seqd.run(
            "enroll", "--sequence", "onboarding", "--contact", "ada@example.com", "--contact", "zed@example.com")
        // Nothing enrolled (ada is already live) and an address unknown: refused.
        #expect(result.status == 1 && result.stderr.contains("1 address is not a known contact"), "\(result)")
        #expect(result.stdout.contains("already live             1"), "\(result)")
        #expect(!result.stderr.contains("zed@"), "addresses stay out of messages")
    }
}
