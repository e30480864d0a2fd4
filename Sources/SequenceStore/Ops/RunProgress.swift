import Postgres

/// How far the enrollments (of one sequence, or all) have come: what `seqd run --until-finished`
/// shows while it works and waits for.
public struct RunProgress: Sendable, Equatable {
    public let total: Int
    /// Enrollments that are still live and not failed (active or paused).
    public let remaining: Int
    public let failed: Int
    public let sentDeliveries: Int

    public static func load(_ connection: Connection, sequence: String?) throws -> RunProgress {
        let row = try connection.query(
            """
            SELECT count(*) AS total,
                   count(*) FILTER (WHERE e.status IN ('active', 'paused')) AS remaining,
                   count(*) FILTER (WHERE e.status = 'failed') AS failed,
                   (SELECT count(*) FROM seqd.deliveries d JOIN seqd.enrollments x ON x.id = d.enrollment_id
                     JOIN seqd.sequences y ON y.id = x.sequence_id
                     WHERE d.status = 'sent' AND ($1::text IS NULL OR y.name = $1)) AS sent
            FROM seqd.enrollments e JOIN seqd.sequences s ON s.id = e.sequence_id
            WHERE $1::text IS NULL OR s.name = $1
            """, [sequence])[0]
        return RunProgress(
            total: try row.decode("total"), remaining: try row.decode("remaining"), failed: try row.decode("failed"),
            sentDeliveries: try row.decode("sent"))
    }
}
