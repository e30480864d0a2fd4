import Foundation
import Postgres

/// The gauges `/metrics` computes by SQL: how far behind the daemons are and whether anything in
/// the database is holding work up. Read on an interval, never per scrape, so a scrape storm
/// cannot load the database.
public struct DatabaseGauges: Sendable, Equatable {
    /// Active enrollments whose `next_run_at` has passed (as `seqd status` counts them).
    public let dueBacklog: Int
    /// Seconds since the oldest due enrollment became due; 0 when nothing is due.
    public let oldestDueAgeSeconds: Double
    /// Deliveries still `sending` after their lease ran out (`seqd.expired_leases`).
    public let expiredLeases: Int
    /// Age in seconds of the oldest open transaction in this database, other than ours; 0 when
    /// none. Long transactions hold back vacuum and the claim queries' index scans. Sessions of
    /// other roles are only visible to roles with `pg_read_all_stats` (see Deploy's roles).
    public let oldestTransactionAgeSeconds: Double

    public static func load(_ connection: Connection) throws -> DatabaseGauges {
        let row = try connection.query(
            """
            SELECT due.n AS due_backlog, due.oldest AS oldest_due,
                   (SELECT count(*) FROM seqd.expired_leases) AS expired_leases,
                   (SELECT COALESCE(extract(epoch FROM max(clock_timestamp() - a.xact_start)), 0)::float8
                    FROM pg_stat_activity a
                    WHERE a.xact_start IS NOT NULL AND a.pid <> pg_backend_pid()
                      AND a.datname = current_database()) AS oldest_transaction
            FROM (SELECT count(*) AS n,
                         COALESCE(extract(epoch FROM now() - min(e.next_run_at)), 0)::float8 AS oldest
                  FROM seqd.enrollments e
                  WHERE e.status = 'active' AND e.next_run_at <= now()) AS due
            """)[0]
        return DatabaseGauges(
            dueBacklog: try row.decode("due_backlog"), oldestDueAgeSeconds: try row.decode("oldest_due"),
            expiredLeases: try row.decode("expired_leases"),
            oldestTransactionAgeSeconds: try row.decode("oldest_transaction"))
    }
}
