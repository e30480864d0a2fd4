import Postgres

/// A reply from a contact whose enrollment already completed changes no status (a completed
/// enrollment never changes again, invariant 4), but it is still a reply to that sequence's mail:
/// it is credited to the enrollment's last email sent (`deliveries.credited_outcome = 'replied'`, the same
/// column an enrollment that ended `replied` fills), so `seqd report` counts replies to a
/// sequence's final email too. An email already credited keeps its outcome.
enum CompletedReplies {
    static let creditStatement = PreparedStatement(
        name: "completed_replies_credit",
        sql: """
            WITH last AS (
                SELECT (SELECT l.id FROM seqd.deliveries l
                        WHERE l.enrollment_id = e.id AND l.kind = 'email' AND l.status = 'sent'
                        ORDER BY l.sent_at DESC, l.id DESC LIMIT 1) AS delivery_id
                FROM seqd.enrollments e
                WHERE e.id = ANY ($1::bigint[]) AND e.status = 'completed'
            ), chosen AS (
                SELECT d.id FROM seqd.deliveries d JOIN last ON d.id = last.delivery_id
                ORDER BY d.sent_at DESC, d.id DESC
                LIMIT CASE WHEN $2::boolean THEN 1 END
            )
            UPDATE seqd.deliveries d SET credited_outcome = 'replied', updated_at = now()
            FROM chosen WHERE d.id = chosen.id AND d.credited_outcome IS NULL
            RETURNING d.id
            """)

    /// Credits the reply to the last email of each completed enrollment in `enrollmentIDs` (of
    /// only the one whose last email went out most recently, with `latestOnly`: a reply named by
    /// address alone answers the newest mail). Returns how many emails were credited.
    static func credit(_ connection: Connection, enrollmentIDs: [Int64], latestOnly: Bool) throws -> Int {
        guard !enrollmentIDs.isEmpty else { return 0 }
        return try connection.query(creditStatement, [enrollmentIDs, latestOnly]).count
    }
}
