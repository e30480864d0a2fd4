import Foundation
import Postgres
import SequenceEngine

/// Enrollments page by page, for the API: filtered by sequence and status, in id order, resumed
/// from a cursor (the last id seen) so pages stay stable while rows are added and cost the same
/// at any depth (keyset pagination, never OFFSET).
public struct EnrollmentPage: Sendable {
    public struct Item: Sendable {
        public let id: Int64
        public let contactID: Int64
        public let sequence: String
        public let version: Int
        public let stepKey: String
        public let status: String
        public let nextRunAt: Date?
        public let updatedAt: Date
    }

    public let items: [Item]
    /// The id to resume after; nil on the last page.
    public let nextCursor: Int64?

    /// Largest page a caller may ask for.
    public static let maximumLimit = 500

    /// Up to `limit` enrollments with ids above `after`, of `sequence` and in `status` when given.
    public static func load(
        _ connection: Connection, sequence: String?, status: EnrollmentStatus?, after: Int64, limit: Int
    ) throws -> EnrollmentPage {
        try SchemaCheck.requireSupported(connection)
        let limit = min(max(limit, 1), maximumLimit)
        let rows = try connection.query(
            """
            SELECT e.id, e.contact_id, s.name AS sequence, e.sequence_version AS version,
                   COALESCE(v.definition -> 'steps' -> e.current_step_index ->> 'key', '(end)') AS step_key,
                   e.status::text AS status, e.next_run_at, e.updated_at
            FROM seqd.enrollments e
            JOIN seqd.sequences s ON s.id = e.sequence_id
            JOIN seqd.sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.sequence_version
            WHERE e.id > $1 AND ($2::text IS NULL OR s.name = $2)
              AND ($3::text IS NULL OR e.status = $3::seqd.enrollment_status)
            ORDER BY e.id
            LIMIT $4
            """, [after, sequence, status?.rawValue, limit + 1])
        let items = try rows.rows.prefix(limit).map { row in
            Item(
                id: try row.decode("id"), contactID: try row.decode("contact_id"), sequence: try row.decode("sequence"),
                version: try row.decode("version"), stepKey: try row.decode("step_key"), status: try row.decode("status"),
                nextRunAt: try row.decode("next_run_at", as: Date?.self), updatedAt: try row.decode("updated_at"))
        }
        return EnrollmentPage(items: items, nextCursor: rows.count > limit ? items.last?.id : nil)
    }
}
