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
        /// Event webhook outbox rows delivered before the horizon.
        public var eventWebhooksDeleted = 0
        /// Events (`seqd.events`) received before the horizon.
        public var contactEventsDeleted = 0
        public var dryRun = false
    }

    /// Rows per transaction of a real run (deliveries, then enrollments, by id range).
    public static let defaultChunkSize = 5_000

    /// Prunes, or (`dryRun`) counts what would be pruned in one read-only snapshot. A real run works
    /// through the deliveries and then the enrollments by id range, `chunkSize` ids per
    /// transaction, so no lock is held for long and an interrupted run can simply be repeated
    /// (what it removed is gone; the rest is found again). `progress` gets the ids done and in all.
    public static func prune(
        _ connection: Connection, olderThanSeconds: Int, dryRun: Bool, chunkSize: Int = defaultChunkSize,
        progress: (@Sendable (_ done: Int64, _ total: Int64) throws -> Void)? = nil
    ) throws -> Summary {
        try SchemaCheck.requireSupported(connection)
        let horizon = olderThanSeconds
        if dryRun { return try count(connection, horizon: horizon) }
        var summary = Summary()
        let bounds = try connection.query(
            """
            SELECT COALESCE((SELECT max(id) FROM seqd.deliveries), 0) AS deliveries,
                   COALESCE((SELECT max(id) FROM seqd.enrollments), 0) AS enrollments
            """)[0]
        let lastDelivery: Int64 = try bounds.decode("deliveries")
        let lastEnrollment: Int64 = try bounds.decode("enrollments")
        let step = Int64(max(1, chunkSize))
        let total = lastDelivery + lastEnrollment
        var low: Int64 = 0
        while low < lastDelivery {
            try connection.transaction { connection in
                summary.bodiesRemoved += try connection.query(
                    """
                    UPDATE seqd.deliveries SET message = NULL
                    WHERE id > $2 AND id <= $3 AND status IN ('sent', 'cancelled') AND message IS NOT NULL
                      AND updated_at < now() - make_interval(secs => $1)
                    """, [horizon, low, low + step]).affectedRows
                summary.attemptsDeleted += try connection.query(
                    """
                    DELETE FROM seqd.delivery_attempts a USING seqd.deliveries d
                    WHERE a.delivery_id = d.id AND d.id > $2 AND d.id <= $3 AND d.status IN ('sent', 'cancelled')
                      AND d.updated_at < now() - make_interval(secs => $1)
                    """, [horizon, low, low + step]).affectedRows
            }
            low += step
            try progress?(min(low, lastDelivery), total)
        }
        low = 0
        while low < lastEnrollment {
            summary.eventsDeleted += try connection.query(
                """
                DELETE FROM seqd.enrollment_events v USING seqd.enrollments e
                WHERE v.enrollment_id = e.id AND e.id > $2 AND e.id <= $3
                  AND e.status IN \(InvariantCheck.terminal)
                  AND e.updated_at < now() - make_interval(secs => $1)
                  AND v.id < (SELECT max(l.id) FROM seqd.enrollment_events l WHERE l.enrollment_id = e.id)
                """, [horizon, low, low + step]).affectedRows
            low += step
            try progress?(lastDelivery + min(low, lastEnrollment), total)
        }
        // A day's count must outlive the day in every zone (UTC-12 to UTC+14): a count
        // deleted while its day runs would let that sender go over its limit.
        summary.senderDaysDeleted = try connection.query(
            "DELETE FROM seqd.sender_daily_counts WHERE day < (now() - make_interval(secs => $1))::date - 1",
            [horizon]).affectedRows
        // Delivered event webhooks, oldest first, a chunk per transaction (rows not delivered
        // yet are never removed, however old).
        // Events received before the horizon, a chunk per transaction. What they started keeps
        // its copy of their properties; a goal on an event counts only events still stored, and a
        // key older than the horizon is no longer recognised as a repeat (so the horizon should
        // be longer than any sender retries, which the re-enrollment rule backs up).
        while true {
            let deleted = try connection.query(
                """
                DELETE FROM seqd.events WHERE id IN (
                    SELECT id FROM seqd.events WHERE received_at < now() - make_interval(secs => $1)
                    ORDER BY received_at LIMIT $2)
                """, [horizon, Int(step)]).affectedRows
            summary.contactEventsDeleted += deleted
            if deleted < step { break }
        }
        if try hasEventWebhookOutbox(connection) {
            while true {
                let deleted = try connection.query(
                    """
                    DELETE FROM seqd.event_webhook_outbox WHERE id IN (
                        SELECT id FROM seqd.event_webhook_outbox
                        WHERE delivered_at < now() - make_interval(secs => $1)
                        ORDER BY delivered_at LIMIT $2)
                    """, [horizon, Int(step)]).affectedRows
                summary.eventWebhooksDeleted += deleted
                if deleted < step { break }
            }
        }
        return summary
    }

    /// Migration 0012's outbox exists (a schema of version 11 is still supported).
    private static func hasEventWebhookOutbox(_ connection: Connection) throws -> Bool {
        try connection.query("SELECT to_regclass('seqd.event_webhook_outbox') IS NOT NULL AS present")[0].decode("present")
    }

    /// What a real run would remove now, counted in one read-only snapshot (the dry run once ran
    /// the real statements and rolled them back: 2 min 50 s at a million enrollments).
    static func count(_ connection: Connection, horizon: Int) throws -> Summary {
        try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        defer { _ = try? connection.execute("ROLLBACK") }
        let row = try connection.query(
            """
            SELECT (SELECT count(*) FROM seqd.deliveries
                    WHERE status IN ('sent', 'cancelled') AND message IS NOT NULL
                      AND updated_at < now() - make_interval(secs => $1)) AS bodies,
                   (SELECT count(*) FROM seqd.delivery_attempts a JOIN seqd.deliveries d ON d.id = a.delivery_id
                    WHERE d.status IN ('sent', 'cancelled') AND d.updated_at < now() - make_interval(secs => $1)) AS attempts,
                   (SELECT COALESCE(sum(n - 1), 0)::bigint FROM (
                        SELECT count(*) AS n FROM seqd.enrollment_events v JOIN seqd.enrollments e ON e.id = v.enrollment_id
                        WHERE e.status IN \(InvariantCheck.terminal)
                          AND e.updated_at < now() - make_interval(secs => $1)
                        GROUP BY v.enrollment_id) per_enrollment) AS events,
                   (SELECT count(*) FROM seqd.sender_daily_counts
                    WHERE day < (now() - make_interval(secs => $1))::date - 1) AS sender_days,
                   (SELECT count(*) FROM seqd.events WHERE received_at < now() - make_interval(secs => $1)) AS contact_events
            """, [horizon])[0]
        var summary = Summary()
        summary.dryRun = true
        summary.bodiesRemoved = try row.decode("bodies")
        summary.attemptsDeleted = try row.decode("attempts")
        summary.eventsDeleted = try row.decode("events")
        summary.senderDaysDeleted = try row.decode("sender_days")
        summary.contactEventsDeleted = try row.decode("contact_events")
        if try hasEventWebhookOutbox(connection) {
            summary.eventWebhooksDeleted = try connection.query(
                "SELECT count(*) AS n FROM seqd.event_webhook_outbox WHERE delivered_at < now() - make_interval(secs => $1)",
                [horizon])[0].decode("n")
        }
        return summary
    }
}
