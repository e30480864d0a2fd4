import Foundation
import Postgres

/// Where application calls run their statements. Front ends hold a `Database` and never a
/// connection: the CLI one per command, the HTTP listener a small pool shared by its requests and
/// one each for its background checks. Every connection is named by its purpose
/// (`application_name` "seqd status", "seqd http"), so operators can tell them apart in
/// `pg_stat_activity`.
public final class Database: Sendable {
    private enum Backing: Sendable {
        case dedicated(ConfinedConnection)
        case pool(ConnectionPool)
    }

    private let backing: Backing

    private init(_ backing: Backing) { self.backing = backing }

    /// One connection, opened on first use, for a command or a background loop. `purpose` names
    /// it: "status" shows as `seqd status`.
    public static func dedicated(
        _ url: String, purpose: String, statementTimeoutMilliseconds: Int = 0
    ) -> Database {
        Database(
            .dedicated(
                ConfinedConnection(
                    url, options: SessionOptions(applicationName: "seqd \(purpose)", statementTimeoutMilliseconds: statementTimeoutMilliseconds),
                    label: "seqd.\(purpose.replacingOccurrences(of: " ", with: "-"))")))
    }

    /// `size` connections shared by concurrent callers (the API's requests); more callers than
    /// that wait their turn instead of opening more. Statements, lock waits and idle transactions
    /// are capped so one request cannot hold a connection for long.
    public static func pool(_ url: String, purpose: String, size: Int) -> Database {
        let options = SessionOptions(
            applicationName: "seqd \(purpose)", statementTimeoutMilliseconds: 30_000, lockTimeoutMilliseconds: 10_000,
            idleInTransactionTimeoutMilliseconds: 60_000)
        return Database(.pool(ConnectionPool(databaseURL: url, size: size, options: options)))
    }

    /// Runs `body` on a connection's own thread; what the store and libpq throw comes out as
    /// `ApplicationError`.
    func run<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        do {
            switch backing {
            case .dedicated(let connection): return try await connection.run(body)
            case .pool(let pool): return try await pool.run(body)
            }
        } catch {
            throw ApplicationError.mapping(error)
        }
    }

    /// Shutdown: stops the statements running now; they roll back.
    public func cancel() {
        switch backing {
        case .dedicated(let connection): connection.cancel()
        case .pool(let pool): pool.cancel()
        }
    }

    /// Closes the connections (blocking until their statements end; call off the concurrency pool
    /// when one may be running). The next call reconnects.
    public func close() {
        switch backing {
        case .dedicated(let connection): connection.close()
        case .pool(let pool): pool.close()
        }
    }
}
