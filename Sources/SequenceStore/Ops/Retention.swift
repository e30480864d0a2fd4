import Foundation
import Postgres

/// `seqd prune`: drops what is no longer needed past a horizon — rendered bodies and attempt rows
/// of finished deliveries, the audit events of finished enrollments except each one's last (which
/// keeps `seqd check`'s "state equals the end of the trail" true), and the sender daily counts of
/// days long over. The suppression list is never pruned. Runs as the owner role: the runtime role
/// may not delete audit rows.
public enum Retention {
    public struct Summary: Sendable, Codable {
        public var bodiesRemoved = 0
        public var attemptsDeleted = 0
        public var eventsDeleted = 0
        public var senderDaysDeleted = 0
        public var dryRun = false
    }

    public static func prune(_ connection: Connection, olderThanSeconds: Int, dryRun: Bool) throws -> Summary {
        try SchemaCheck.requireSupported(connection)
        let horizon = olderThanSeconds
        do {
            return try connection.transaction { connection in
                var summary = Summary()
                summary.dryRun = dryRun
                summary.bodiesRemoved = try connection.query(
                    """
                    UPDATE seqd.deliveries SET message = NULL
                    WHERE status IN ('sent', 'cancelled') AND message IS NOT NULL
                      AND updated_at < now() - make_interval(secs => $1)
                    """, [horizon]).affectedRows
                summary.attemptsDeleted = try connection.query(
                    """
                    DELETE FROM seqd.delivery_attempts a USING seqd.deliveries d
                    WHERE a.delivery_id = d.id AND d.status IN ('sent', 'cancelled')
                      AND d.updated_at < now() - make_interval(secs => $1)
                    """, [horizon]).affectedRows
                summary.eventsDeleted = try connection.query(
                    """
                    DELETE FROM seqd.enrollment_events v USING seqd.enrollments e
                    WHERE v.enrollment_id = e.id
                      AND e.status IN ('completed', 'replied', 'opted_out', 'bounced', 'stopped')
                      AND e.updated_at < now() - make_interval(secs => $1)
                      AND v.id < (SELECT max(l.id) FROM seqd.enrollment_events l WHERE l.enrollment_id = e.id)
                    """, [horizon]).affectedRows
                // A day's count must outlive the day in every zone (UTC-12 to UTC+14): a count
                // deleted while its day runs would let that sender go over its limit.
                summary.senderDaysDeleted = try connection.query(
                    "DELETE FROM seqd.sender_daily_counts WHERE day < (now() - make_interval(secs => $1))::date - 1",
                    [horizon]).affectedRows
                if dryRun { throw DryRun(summary: summary) }
                return summary
            }
        } catch let dry as DryRun {
            return dry.summary
        }
    }

    /// Rolls the transaction back while carrying out the counts it would have had.
    struct DryRun: Error {
        let summary: Summary
    }
}
