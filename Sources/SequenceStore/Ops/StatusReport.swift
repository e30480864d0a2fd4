import Foundation
import Postgres

/// `seqd status`: how many enrollments sit at each step in each status, and how far behind the
/// daemon is, by the database clock.
public struct StatusReport: Sendable, Codable {
    public struct Line: Sendable, Codable {
        public let sequence: String
        public let version: Int
        public let step: String
        public let status: String
        public let count: Int
    }

    /// Counts by sequence, pinned version, current step key and status.
    public let lines: [Line]
    /// Active enrollments whose `next_run_at` has passed.
    public let dueBacklog: Int
    /// Age in seconds of the oldest due enrollment, 0 when nothing is due.
    public let oldestDueSeconds: Double
    /// The database's `now()` when the report was taken.
    public let at: Date
    /// The oldest transaction another session has held open longer than the warning threshold
    /// (`worker.long_transaction_warning`), if any: it slows every claim while it lasts.
    public let heldTransaction: HeldTransaction?

    public static func load(
        from connection: Connection, sequence: String? = nil, longTransactionWarning: Double = 30
    ) throws -> StatusReport {
        try SchemaCheck.requireSupported(connection)
        if let sequence,
            try connection.query("SELECT 1 FROM seqd.sequences WHERE name = $1", [sequence]).count == 0
        {
            throw StoreError(.notFound, "no sequence named '\(sequence)'")
        }
        // Counted by ids first and named after: resolving each row's step key before grouping read
        // the version's definition once per enrollment (1.4 s at a million on a busy machine).
        let lines = try connection.query(
            """
            SELECT s.name AS sequence, g.version,
                   COALESCE(v.definition -> 'steps' -> g.step_index ->> 'key', '(end)') AS step,
                   g.status::text AS status, g.count
            FROM (SELECT e.sequence_id, e.sequence_version AS version, e.current_step_index AS step_index, e.status,
                         count(*) AS count
                  FROM seqd.enrollments e
                  WHERE $1::text IS NULL OR e.sequence_id = (SELECT id FROM seqd.sequences WHERE name = $1)
                  GROUP BY 1, 2, 3, 4) g
            JOIN seqd.sequences s ON s.id = g.sequence_id
            JOIN seqd.sequence_versions v ON v.sequence_id = g.sequence_id AND v.version = g.version
            ORDER BY 1, 2, g.step_index, 4
            """, [sequence]
        ).rows.map {
            Line(
                sequence: try $0.decode("sequence"), version: try $0.decode("version"), step: try $0.decode("step"),
                status: try $0.decode("status"), count: try $0.decode("count"))
        }
        let due = try connection.query(
            """
            SELECT count(*) AS due,
                   COALESCE(extract(epoch FROM now() - min(e.next_run_at)), 0)::float8 AS oldest,
                   now() AS at
            FROM seqd.enrollments e JOIN seqd.sequences s ON s.id = e.sequence_id
            WHERE e.status = 'active' AND e.next_run_at <= now() AND ($1::text IS NULL OR s.name = $1)
            """, [sequence])[0]
        return StatusReport(
            lines: lines, dueBacklog: try due.decode("due"), oldestDueSeconds: try due.decode("oldest"),
            at: try due.decode("at"),
            heldTransaction: longTransactionWarning > 0
                ? try HeldTransaction.oldest(connection, olderThan: longTransactionWarning) : nil)
    }
}
