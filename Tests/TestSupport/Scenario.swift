import Foundation
import Postgres
import Testing

/// A migrated database with a sequence applied and contacts enrolled, set up through the CLI as an
/// operator would: the starting point of the end-to-end tests. The CLI and the daemons run as the
/// least-privileged `seqd_runtime` role of `Deploy/sql/roles.sql`; `connect()` is the superuser,
/// for assertions and for playing the operator in psql.
public struct Scenario: Sendable {
    public let seqd: SeqdProcess
    /// The superuser's connection string.
    public let databaseURL: String
    /// The runtime role's connection string (what `seqd` gets as DATABASE_URL).
    public let runtimeURL: String

    /// - Parameters:
    ///   - sequence: the sequence file's YAML; `name` is the sequence's name in it.
    ///   - contacts: addresses to import and enroll.
    public static func prepare(prefix: String, sequence: String, name: String, contacts: [String]) async throws -> Scenario {
        let url = try await TestDatabase.shared.makeMigratedDatabase(prefix: prefix)
        let runtimeURL = try await TestDatabase.shared.withRoles(url)
        let seqd = try SeqdProcess(databaseURL: runtimeURL)
        try seqd.write("sequence.yaml", sequence)
        try seqd.write("contacts.csv", "email,first_name\n" + contacts.enumerated().map { "\($1),Name\($0)\n" }.joined())
        for arguments in [["sequence", "apply", "sequence.yaml"], ["contact", "import", "contacts.csv"], ["enroll", "--sequence", name, "--all"]] {
            let result = try await seqd.run(arguments)
            guard result.status == 0 else { throw TimedOut(description: "setup step \(arguments) failed: \(result)") }
        }
        return Scenario(seqd: seqd, databaseURL: url, runtimeURL: runtimeURL)
    }

    /// A new connection to the scenario's database, for assertions.
    public func connect() throws -> Connection { try Connection(databaseURL) }

    /// `seqd run --once` with the given transport: one deterministic pass of the daemon.
    public func runOnce(transport: String = "null", _ extra: [String] = []) async throws {
        let result = try await seqd.run(["run", "--once", "--set", "delivery.transport=\(transport)"] + extra)
        guard result.status == 0 else { throw TimedOut(description: "run --once failed: \(result)") }
    }
}
