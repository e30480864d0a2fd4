import Foundation
import Postgres
import SequenceStore

/// Gives each test suite its own database, cloned from a template migrated once per test process.
///
/// The server comes from `SEQD_TEST_DATABASE_URL` (set by `Scripts/test`). Cloning a migrated
/// template is fast and keeps suites independent, so they run in parallel.
public actor TestDatabase {
    public static let shared = TestDatabase()

    private var template: String?
    private var counter = 0

    /// The server's admin connection string, or a clear failure telling how to get one.
    public static var serverURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["SEQD_TEST_DATABASE_URL"], !url.isEmpty else {
                throw SetupError(
                    description: "SEQD_TEST_DATABASE_URL is not set: run the tests with Scripts/test, which starts PostgreSQL")
            }
            return url
        }
    }

    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Creates an empty database (no schema) and returns its connection string.
    public func makeEmptyDatabase(prefix: String) throws -> String {
        let name = nextName(prefix)
        try Self.admin { try $0.execute("CREATE DATABASE \(name)") }
        return ConnectionString.replacingDatabase(in: try Self.serverURL, with: name)
    }

    /// Creates a database holding seqd's migrated schema and returns its connection string.
    public func makeMigratedDatabase(prefix: String) throws -> String {
        let template = try migratedTemplate()
        let name = nextName(prefix)
        try Self.admin { try $0.execute("CREATE DATABASE \(name) TEMPLATE \(template)") }
        return ConnectionString.replacingDatabase(in: try Self.serverURL, with: name)
    }

    private func migratedTemplate() throws -> String {
        if let template { return template }
        let name = "seqd_template_\(getpid())"
        try Self.admin {
            try $0.execute("DROP DATABASE IF EXISTS \(name)")
            try $0.execute("CREATE DATABASE \(name)")
        }
        do {
            let connection = try Connection(ConnectionString.replacingDatabase(in: try Self.serverURL, with: name))
            _ = try Migrator(connection: connection).migrate()
        }
        template = name
        return name
    }

    private func nextName(_ prefix: String) -> String {
        counter += 1
        let safe = prefix.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(30)
        return "t\(getpid())_\(counter)_\(safe)"
    }

    private static func admin(_ body: (Connection) throws -> Void) throws {
        let connection = try Connection(try serverURL)
        try body(connection)
    }
}

extension TestDatabase {
    /// Applies `Deploy/sql/roles.sql` to the database (roles once per cluster, grants on this
    /// database) with psql, as an operator would, and returns the connection string for `role`.
    /// Serialised by the actor: creating roles is cluster-wide.
    public func withRoles(_ url: String, role: String = "seqd_runtime", filePath: String = #filePath) throws -> String {
        let root = URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("Deploy/sql/roles.sql").path
        let database = try Connection(url).query("SELECT current_database() AS d")[0].decode("d", as: String.self)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "database=\(database)", "-d", url, "-f", script]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SetupError(description: "psql -f Deploy/sql/roles.sql failed: \(message)")
        }
        return Self.replacingUser(in: url, with: role)
    }

    /// The same connection string for another role (test URLs are `postgresql://user@/db?host=…`).
    public static func replacingUser(in url: String, with role: String) -> String {
        guard url.hasPrefix("postgresql://"), let at = url.firstIndex(of: "@") else { return url + " user=\(role)" }
        return "postgresql://\(role)" + url[at...]
    }
}
