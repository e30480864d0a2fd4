import Foundation
import Postgres
import Testing
import TestSupport

/// `seqd sequence migrate` as an operator runs it: after real sends, with a delivery held in the
/// outbox, the dry run's table, the real run, `seqd check`, and the error exits.
@Suite("CLI: sequence migrate")
struct SequenceMigrateCLITests {
    static let v1 = """
        name: two
        sender: { address: team@example.com }
        steps:
          - { key: first, type: email, subject: "First", body: "one" }
          - { type: wait, duration: 1d }
          - { key: second, type: email, subject: "Second", body: "two" }
        """

    /// `second` renamed.
    static let v2 = v1.replacingOccurrences(of: "key: second", with: "key: second-v2")

    /// ada, bob and cy have been sent `first` and wait for `second` on version 1; dan's `first` is
    /// pending (sending was paused); version 2 has been applied.
    func prepare(_ prefix: String) async throws -> (Scenario, Connection) {
        let scenario = try await Scenario.prepare(
            prefix: prefix, sequence: Self.v1, name: "two", contacts: ["ada@example.com", "bob@example.com", "cy@example.com"])
        try await scenario.runOnce()
        let seqd = scenario.seqd
        try seqd.write("dan.csv", "email\ndan@example.com\n")
        try seqd.write("v2.yaml", Self.v2)
        for arguments in [
            ["contact", "import", "dan.csv"], ["enroll", "--sequence", "two", "--contact", "dan@example.com"],
            ["sending", "pause"], ["run", "--once", "--set", "delivery.transport=null"], ["sequence", "apply", "v2.yaml"],
        ] {
            let result = try await seqd.run(arguments)
            #expect(result.status == 0, "\(arguments): \(result)")
        }
        return (scenario, try scenario.connect())
    }

    @Test("dry run shows who needs a map and who is in flight; the mapped run moves them and check stays clean")
    func dryRunThenMove() async throws {
        let (scenario, connection) = try await prepare("cli_migrate")
        let seqd = scenario.seqd
        func fingerprint() throws -> String {
            try connection.query(
                """
                SELECT (SELECT string_agg(e::text, ';' ORDER BY e.id) FROM seqd.enrollments e)
                    || (SELECT count(*) FROM seqd.enrollment_events)::text AS f
                """)[0].decode("f")
        }
        let before = try fingerprint()
        var result = try await seqd.run("sequence", "migrate", "two", "--to-version", "2", "--dry-run")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("two → version 2 (dry run: nothing was changed)"))
        #expect(result.stdout.contains("v1 second"))
        #expect(result.stdout.contains("needs --map: step 'second' is not in version 2"))
        #expect(result.stdout.contains("skipped: delivery of 'first' is pending"))
        #expect(result.stdout.contains("0 would move, 3 need a --map, 1 skipped (delivery in flight), 0 cannot be placed"))
        #expect(try fingerprint() == before)

        result = try await seqd.run("sequence", "migrate", "two", "--to-version", "2", "--map", "second=second-v2", "--dry-run")
        #expect(result.stdout.contains("v1 second  v2 second-v2  3            would move (--map)"), "\(result)")

        result = try await seqd.run("sequence", "migrate", "two", "--to-version", "2", "--map", "second=second-v2")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("3 moved, 0 need a --map, 1 skipped (delivery in flight)"), "\(result)")
        #expect(try connection.query(
            "SELECT count(*) AS n FROM seqd.enrollments WHERE sequence_version = 2 AND current_step_index = 2")[0]
            .decode("n", as: Int.self) == 3)
        #expect(try connection.query(
            "SELECT count(*) AS n FROM seqd.enrollment_events WHERE event = 'migrate' AND actor LIKE 'cli:%'")[0]
            .decode("n", as: Int.self) == 3)

        result = try await seqd.run("sequence", "migrate", "two", "--to-version", "2", "--json")
        #expect(result.status == 0, "\(result)")
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(json?["moved"] as? Int == 0 && json?["already_on_target"] as? Int == 3 && json?["in_flight"] as? Int == 1)
        #expect((json?["groups"] as? [[String: Any]])?.first?["reason"] as? String == "delivery of 'first' is pending")

        result = try await seqd.run("check")
        #expect(result.status == 0, "\(result)")
    }

    @Test("unknown sequence or version exits 1, a bad --map or version number exits 64, and nothing changes")
    func errors() async throws {
        let (scenario, connection) = try await prepare("cli_migrate_err")
        let seqd = scenario.seqd
        let events = try connection.query("SELECT count(*) AS n FROM seqd.enrollment_events")[0].decode("n", as: Int.self)
        let cases: [([String], Int32, String)] = [
            (["nope", "--to-version", "1"], 1, "no sequence named 'nope'"),
            (["two", "--to-version", "7"], 1, "sequence 'two' has no version 7 (versions 1–2)"),
            (["two", "--to-version", "0"], 64, "--to-version must be 1 or more"),
            (["two", "--to-version", "2", "--map", "second"], 64, "--map expects OLD_KEY=NEW_KEY, got 'second'"),
            (["two", "--to-version", "2", "--map", "=second-v2"], 64, "--map expects OLD_KEY=NEW_KEY"),
            (["two", "--to-version", "2", "--map", "second=a", "--map", "second=b"], 64, "--map names 'second' twice"),
            (["two", "--to-version", "2", "--map", "second=nope"], 64, "version 2 has no step 'nope'"),
            (["two", "--to-version", "2", "--map", "third=second-v2"], 64, "no version other than 2 has a step 'third'"),
        ]
        for (arguments, status, message) in cases {
            let result = try await seqd.run(["sequence", "migrate"] + arguments)
            #expect(result.status == status, "\(arguments): \(result)")
            #expect(result.stderr.contains(message), "\(arguments): \(result)")
        }
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.enrollment_events")[0].decode("n", as: Int.self) == events)
    }
}
