import Foundation
import Postgres

/// The oldest transaction another session has held open in this database for longer than a
/// threshold: a forgotten `BEGIN` in psql, a stuck migration. While it lasts, every `FOR UPDATE SKIP
/// LOCKED` claim walks the dead index entries it keeps alive and the claims slow down many times
/// over, so the daemon logs it and `seqd status` shows it, naming the backend to look at.
///
/// Sessions of other roles are visible only to roles with `pg_read_all_stats` (Deploy's roles).
public struct HeldTransaction: Sendable, Codable, Equatable {
    /// The backend's process id (`pg_stat_activity.pid`, the argument of `pg_terminate_backend`).
    public let pid: Int
    /// Seconds since its transaction began, by the database clock.
    public let ageSeconds: Double
    /// `active`, `idle in transaction`, …
    public let state: String
    /// Its `application_name` (psql sets "psql"; seqd's sessions name their worker).
    public let application: String

    static let oldest = PreparedStatement(
        name: "held_transaction_oldest",
        sql: """
            SELECT a.pid, extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS age,
                   COALESCE(a.state, '') AS state, COALESCE(a.application_name, '') AS application
            FROM pg_stat_activity a
            WHERE a.xact_start IS NOT NULL AND a.xact_start < clock_timestamp() - make_interval(secs => $1)
              AND a.pid <> pg_backend_pid() AND a.datname = current_database() AND a.backend_type = 'client backend'
            ORDER BY a.xact_start
            LIMIT 1
            """)

    /// The oldest transaction open longer than `seconds`, or nil.
    public static func oldest(_ connection: Connection, olderThan seconds: Double) throws -> HeldTransaction? {
        let rows = try connection.query(oldest, [seconds])
        guard rows.count > 0 else { return nil }
        let row = rows[0]
        return HeldTransaction(
            pid: try row.decode("pid"), ageSeconds: try row.decode("age"), state: try row.decode("state"),
            application: try row.decode("application"))
    }

    /// One line for the log and `seqd status`, saying what it costs and how to end it.
    public var warning: String {
        let who = application.isEmpty ? "" : " (\(application))"
        return "backend pid \(pid)\(who) has held a transaction open for \(Int(ageSeconds.rounded(.down)))s"
            + (state.isEmpty ? "" : ", \(state)")
            + ": claims of due work walk the dead rows it keeps and slow down until it ends"
            + " (SELECT pg_terminate_backend(\(pid)) ends it)"
    }
}
