import Foundation
import Postgres
import Testing
import TestSupport

/// `Deploy/sql/roles.sql` and migration 0006 give each role what it needs and nothing more. (Every
/// end-to-end test already runs the CLI and the daemon as `seqd_runtime`; this checks the
/// boundaries, by logging in as each role and trying each forbidden write and read.)
@Suite("database roles")
struct RolesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// `statement` fails with `permission denied` (42501, from privileges or from 0006's triggers).
    static func expectDenied(_ connection: Connection, _ statement: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let error = #expect(throws: PostgresError.self, "\(statement)", sourceLocation: sourceLocation) { try connection.execute(statement) }
        #expect(error?.sqlState == "42501", "\(statement): \(String(describing: error))", sourceLocation: sourceLocation)
    }

    @Test("the runtime role writes rows but no schema, history or transition table; readonly only reads")
    func leastPrivilege() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "roles", sequence: SignalTests.longWait, name: "slow", contacts: ["a@example.com"])
        try await scenario.runOnce()
        let runtime = try Connection(scenario.runtimeURL)
        #expect(try runtime.query("SELECT current_user AS u")[0].decode("u", as: String.self) == "seqd_runtime")
        for statement in [
            "CREATE TABLE seqd.intruder (id int)",
            "UPDATE seqd.schema_migrations SET checksum = 'x'",
            "INSERT INTO seqd.enrollment_transitions VALUES ('completed', 'active')",
            "DELETE FROM seqd.enrollment_events",
            "DROP TABLE seqd.signals",
        ] {
            let error = #expect(throws: PostgresError.self, "\(statement)") { try runtime.execute(statement) }
            #expect(error?.sqlState == "42501" || error?.sqlState == "42P01", "\(statement): \(String(describing: error))")
        }
        // It can see other sessions' transaction ages (pg_read_all_stats) for the oldest-transaction gauge.
        let visible = try runtime.query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'postgres' AND query IS NOT NULL AND query <> '<insufficient privilege>'"
        )[0].decode("n", as: Int.self)
        #expect(visible >= 0)
        let readonly = try Connection(TestDatabase.replacingUser(in: scenario.databaseURL, with: "seqd_readonly"))
        #expect(try readonly.query("SELECT count(*) AS n FROM seqd.enrollment_overview")[0].decode("n", as: Int.self) == 1)
        let error = #expect(throws: PostgresError.self) { try readonly.execute("UPDATE seqd.enrollments SET status = 'paused'") }
        #expect(error?.sqlState == "42501")
    }

    @Test("the runtime role cannot rewrite the audit trail, attempts, signals, suppressions or the secret; it can append and finish open attempts")
    func runtimeAppendOnly() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "roles_append", sequence: SignalTests.longWait, name: "slow", contacts: ["a@example.com", "b@example.com"])
        try await scenario.runOnce()
        #expect(try await scenario.seqd.run("opt-out", "--contact", "b@example.com").status == 0)
        let owner = try scenario.connect()
        // An open attempt and one a lease rescue recorded as `unknown`, as the send path leaves them.
        try owner.execute(
            """
            INSERT INTO seqd.delivery_attempts (delivery_id, fencing_token, worker, outcome, finished_at)
            SELECT id, 99, 'test', NULL, NULL FROM seqd.deliveries LIMIT 1;
            INSERT INTO seqd.delivery_attempts (delivery_id, fencing_token, worker, outcome, finished_at)
            SELECT id, 98, 'test', 'unknown', now() FROM seqd.deliveries LIMIT 1;
            """)
        let runtime = try Connection(scenario.runtimeURL)
        for statement in [
            "UPDATE seqd.enrollment_events SET actor = 'forged'",
            "DELETE FROM seqd.enrollment_events",
            "TRUNCATE seqd.enrollment_events",
            "UPDATE seqd.suppressions SET email = 'x' || email",
            "DELETE FROM seqd.suppressions",
            "UPDATE seqd.signals SET kind = 'reply'",
            "DELETE FROM seqd.signals",
            "UPDATE seqd.delivery_attempts SET outcome = 'sent' WHERE outcome = 'skipped' OR fencing_token NOT IN (98, 99)",
            "UPDATE seqd.delivery_attempts SET worker = 'forged'",
            "DELETE FROM seqd.delivery_attempts",
            "UPDATE seqd.settings SET value = 'mine' WHERE name = 'unsubscribe.secret'",
            "DELETE FROM seqd.settings WHERE name = 'installation.id'",
            "INSERT INTO seqd.settings (name, value) VALUES ('unsubscribe.secret2', 'x')",
            "CREATE TABLE public.shadow (id int)",
            "CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql AS 'SELECT $1'",
        ] {
            Self.expectDenied(runtime, statement)
        }
        // What the runtime role needs: append, finish attempts that are not final, flip the send switch, read the secret.
        try runtime.execute("INSERT INTO seqd.signals (kind, source) VALUES ('reply', 'test')")
        try runtime.execute("UPDATE seqd.delivery_attempts SET finished_at = now(), outcome = 'sent', reply = '250 ok' WHERE fencing_token IN (98, 99)")
        #expect(try await scenario.seqd.run("sending", "pause").status == 0)
        #expect(try await scenario.seqd.run("sending", "resume").status == 0)
        #expect(try runtime.query("SELECT count(*) AS n FROM seqd.settings WHERE name = 'unsubscribe.secret'")[0].decode("n", as: Int.self) == 1)
        // Once final, an attempt stays as recorded.
        Self.expectDenied(runtime, "UPDATE seqd.delivery_attempts SET outcome = 'bounce' WHERE fencing_token = 98")
        #expect(try owner.query("SELECT count(*) AS n FROM seqd.enrollment_events WHERE actor = 'forged'")[0].decode("n", as: Int.self) == 0)
        #expect(try owner.query("SELECT email FROM seqd.suppressions")[0].decode("email", as: String.self) == "b@example.com")
    }

    @Test("readonly cannot read the unsubscribe secret, write, or call the erasure function")
    func readonlyCannotReadSecrets() async throws {
        let scenario = try await Scenario.prepare(prefix: "roles_ro", sequence: SignalTests.longWait, name: "slow", contacts: ["a@example.com"])
        let readonly = try Connection(TestDatabase.replacingUser(in: scenario.databaseURL, with: "seqd_readonly"))
        for statement in [
            "SELECT * FROM seqd.settings", "SELECT value FROM seqd.settings WHERE name = 'unsubscribe.secret'",
            "SELECT seqd.erase_contact_history(1, 'a@example.com', 'x')",
            "INSERT INTO seqd.suppressions (email, reason, source) VALUES ('x@example.com', 'manual', 'ro')",
            "UPDATE seqd.enrollment_events SET actor = 'forged'", "DELETE FROM seqd.signals",
            "CREATE TABLE public.shadow (id int)",
        ] {
            Self.expectDenied(readonly, statement)
        }
        // The views still show what operators ask, the send switch included.
        #expect(try readonly.query("SELECT count(*) AS n FROM seqd.enrollment_overview")[0].decode("n", as: Int.self) == 1)
        #expect(try readonly.query("SELECT seqd.is_suppressed('a@example.com') AS s")[0].decode("s", as: Bool.self) == false)
    }

    @Test("only the owner lifts a suppression, and the removal is audited; the runtime role is refused")
    func suppressionRemoval() async throws {
        let scenario = try await Scenario.prepare(prefix: "roles_unsup", sequence: SignalTests.longWait, name: "slow", contacts: ["a@example.com"])
        #expect(try await scenario.seqd.run("opt-out", "--contact", "a@example.com").status == 0)
        let refused = try await scenario.seqd.run("suppression", "remove", "--contact", "a@example.com", "--reason", "asked again")
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.stderr.contains("permission denied"), "\(refused)")
        let owner = ["--database-url", scenario.databaseURL]
        let removed = try await scenario.seqd.run(["suppression", "remove", "--contact", "A@example.com", "--reason", "ticket 4711"] + owner)
        #expect(removed.status == 0, "\(removed)")
        let connection = try scenario.connect()
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.suppressions")[0].decode("n", as: Int.self) == 0)
        let audit = try connection.query("SELECT kind, detail->>'why' AS why, detail->>'removed_reason' AS was, contact_id FROM seqd.signals WHERE kind = 'unsuppress'")
        #expect(audit.count == 1)
        #expect(try audit[0].decode("why", as: String.self) == "ticket 4711")
        #expect(try audit[0].decode("was", as: String.self) == "opt_out")
        #expect(try audit[0].decode("contact_id", as: Int64?.self) != nil)
        let again = try await scenario.seqd.run(["suppression", "remove", "--contact", "a@example.com", "--reason", "again"] + owner)
        #expect(again.status == 1, "not suppressed any more: \(again)")
    }

    @Test("every function and trigger function in schema seqd pins its search_path")
    func searchPathPinned() async throws {
        let connection = try Connection(try await TestDatabase.shared.makeMigratedDatabase(prefix: "searchpath"))
        let functions = try connection.query(
            """
            SELECT p.oid::regprocedure::text AS name, COALESCE(array_to_string(p.proconfig, ','), '') AS config
            FROM pg_proc p WHERE p.pronamespace = 'seqd'::regnamespace ORDER BY 1
            """).rows.map { (try $0.decode("name", as: String.self), try $0.decode("config", as: String.self)) }
        #expect(functions.count >= 10)
        for (name, config) in functions {
            #expect(config.contains("search_path=pg_catalog, seqd, pg_temp"), "\(name): \(config)")
        }
        let triggers = try connection.query(
            """
            SELECT count(*) AS n FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE NOT t.tgisinternal AND t.tgrelid::regclass::text LIKE 'seqd.%' AND p.proconfig IS NULL
            """)[0].decode("n", as: Int.self)
        #expect(triggers == 0)
        // The claims write seqd.address_hash out (it is not inlined any more); both must agree.
        let agree = try connection.query(
            """
            SELECT bool_and(seqd.address_hash(a) = ('sha256:' || encode(sha256(convert_to(lower(a), 'UTF8')), 'hex'))) AS same
            FROM unnest(ARRAY['Ada@Example.com', 'ünï@bücher.de', '']) AS a
            """)[0].decode("same", as: Bool.self)
        #expect(agree)
    }

    @Test("Deploy/README.md's install steps, run as written on a fresh database: roles, migrate as the owner, roles again, the daemon as the runtime role")
    func installSteps() async throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("Deploy/README.md"), encoding: .utf8)
        let install = try #require(readme.components(separatedBy: "## Install").dropFirst().first?.components(separatedBy: "\n## ").first)
        var commands = [String]()
        var inBlock = false
        for line in install.components(separatedBy: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("```") {
                inBlock = trimmed == "```sh"
                continue
            }
            if inBlock && !trimmed.isEmpty { commands.append(trimmed) }
        }
        #expect(commands.count == 5, "\(commands)")
        #expect(commands.first == "createdb seqd")

        // The server as libpq's environment names it; the database is literally `seqd`.
        let admin = try Connection(try TestDatabase.serverURL)
        let socket = try admin.query("SELECT split_part(current_setting('unix_socket_directories'), ',', 1) AS s")[0].decode("s", as: String.self)
        let port = try admin.query("SELECT current_setting('port') AS p")[0].decode("p", as: String.self)
        let superuser = try admin.query("SELECT current_user AS u")[0].decode("u", as: String.self)
        try admin.execute("DROP DATABASE IF EXISTS seqd WITH (FORCE)")
        let bindir = try await ExternalCommand.run(["pg_config", "--bindir"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let binary = try SeqdProcess.locateBinary()
        let path = [binary.deletingLastPathComponent().path, bindir, "/usr/local/bin", "/usr/bin", "/bin"].joined(separator: ":")
        // Run where an operator would: a directory holding Deploy/ (and no Config/, so no outbox
        // appears in the repository).
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("install-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createSymbolicLink(
            at: directory.appendingPathComponent("Deploy"), withDestinationURL: Self.root.appendingPathComponent("Deploy"))
        for command in commands {
            // The one change: the daemon makes one pass and exits, so the test can check its work.
            let line = command.hasSuffix("seqd run") ? command + " --once" : command
            let result = try await ExternalCommand.run(
                ["bash", "-c", "cd \"$1\" && eval \"$2\"", "install", directory.path, line],
                environment: ["PATH": path, "PGHOST": socket, "PGPORT": port, "PGUSER": superuser], check: false)
            #expect(result.status == 0, "\(line)\n\(result)")
        }
        let database = ConnectionString.replacingDatabase(in: try TestDatabase.serverURL, with: "seqd")
        let connection = try Connection(database)
        let owners = try connection.query(
            "SELECT DISTINCT tableowner::text AS o FROM pg_tables WHERE schemaname = 'seqd'").rows.map { try $0.decode("o", as: String.self) }
        #expect(owners == ["seqd_owner"])
        #expect(try connection.query("SELECT max(version) AS v FROM seqd.schema_migrations")[0].decode("v", as: Int.self) >= 6)
        // The runtime role got its rights from the second run of roles.sql, and only those.
        let runtime = try Connection(TestDatabase.replacingUser(in: database, with: "seqd_runtime"))
        #expect(try runtime.query("SELECT count(*) AS n FROM seqd.enrollments")[0].decode("n", as: Int.self) == 0)
        Self.expectDenied(runtime, "UPDATE seqd.enrollment_events SET actor = 'x'")
        Self.expectDenied(runtime, "CREATE TABLE public.t (id int)")
        try admin.execute("DROP DATABASE IF EXISTS seqd WITH (FORCE)")
    }
}
