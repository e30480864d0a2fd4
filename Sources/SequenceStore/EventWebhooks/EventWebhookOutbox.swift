import Foundation
import Postgres

/// The kinds of enrollment event posted to `event_webhook.url` (`event_webhook.types`). Raw values
/// are the payload's `type` and the outbox's `type` column.
public enum EventWebhookType: String, CaseIterable, Sendable, Codable {
    case replied
    case bounced
    case optedOut = "opted_out"
    case completed
    case failed
    case stopped
    /// A goal (`exit_when`) was met (issue 19).
    case converted
    /// A delivery step's message or request went out (the `delivered` audit event).
    case delivered

    /// `event_webhook.types` as configured: comma-separated, spaces allowed, duplicates dropped.
    public static func parse(list: String) throws -> [EventWebhookType] {
        var types = [EventWebhookType]()
        for name in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let type = EventWebhookType(rawValue: name) else {
                throw StoreError(
                    .badInput,
                    "event_webhook.types: unknown type '\(name)' (allowed: \(allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if !types.contains(type) { types.append(type) }
        }
        return types
    }
}

/// One claimed outbox row, ready to post.
public struct EventWebhookPost: Sendable, Equatable {
    /// The outbox row's id; the webhook's id is `evt_<id>`.
    public let id: Int64
    public let type: EventWebhookType
    /// Attempts already made (0 for a first post).
    public let attempts: Int
    /// The exact body to post and sign; the same bytes on every attempt.
    public let body: [UInt8]

    /// The webhook's id: the payload's `id`, `Idempotency-Key` and `Seqd-Event-Id`.
    public var webhookID: String { Self.webhookID(id) }

    public static func webhookID(_ id: Int64) -> String { "evt_\(id)" }
}

/// The SQL of the event webhook outbox (migration 0012): which types the trigger writes, and the
/// sender's claim, outcomes and give-backs. Every row is posted at least once: a claim only moves
/// the row's `next_attempt_at` a lease ahead (in a transaction of its own, held for no longer than
/// the claim), so a sender that dies mid-post leaves rows that come due again after the lease.
public enum EventWebhookOutbox {
    /// Writes the types the trigger enqueues (`seqd.settings` row `event_webhook.types`); an empty
    /// list switches the outbox off. Called by `seqd run` at start with its configuration, so
    /// every replica should share `event_webhook.*`.
    public static func enable(_ connection: Connection, types: [EventWebhookType]) throws {
        let present = try connection.query("SELECT to_regclass('seqd.event_webhook_outbox') IS NOT NULL AS present")[0]
            .decode("present", as: Bool.self)
        guard present else {
            if types.isEmpty { return }  // nothing to switch off on a schema without the outbox
            throw StoreError(.notMigrated, "event webhooks need schema version 12: run `seqd migrate`")
        }
        try connection.query(
            """
            INSERT INTO seqd.settings (name, value, updated_at) VALUES ('event_webhook.types', $1, now())
            ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
            WHERE seqd.settings.value IS DISTINCT FROM EXCLUDED.value
            """, [types.map(\.rawValue).joined(separator: ",")])
    }

    /// Claims up to `limit` due rows (oldest first) for `leaseSeconds`, building the payload of
    /// rows posted for the first time. Rows another sender holds are skipped, not waited for.
    static let claimStatement = PreparedStatement(
        name: "event_webhook_claim",
        sql: """
            WITH due AS (
                SELECT o.id FROM seqd.event_webhook_outbox o
                WHERE o.delivered_at IS NULL AND o.next_attempt_at <= now()
                ORDER BY o.next_attempt_at, o.id
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            ), built AS (
                -- Left joins throughout: a row whose event or enrollment was pruned or erased is
                -- still posted, with what is left.
                SELECT o.id,
                       jsonb_build_object(
                           'id', 'evt_' || o.id,
                           'type', o.type,
                           'occurred_at', to_char(o.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                           'event', ev.event,
                           'enrollment', jsonb_build_object(
                               'id', o.enrollment_id,
                               'status', ev.to_status,
                               'previous_status', ev.from_status,
                               'sequence', s.name,
                               'version', o.sequence_version,
                               'step', v.definition -> 'steps' -> ev.to_step ->> 'key'),
                           'contact', jsonb_build_object('id', e.contact_id))
                       || CASE WHEN o.type = 'delivered'
                               THEN jsonb_build_object('delivery', jsonb_build_object(
                                        'id', d.id, 'step', v.definition -> 'steps' -> ev.from_step ->> 'key'))
                               ELSE '{}'::jsonb END AS payload
                FROM due
                JOIN seqd.event_webhook_outbox o ON o.id = due.id
                LEFT JOIN seqd.enrollment_events ev ON ev.id = o.event_id
                LEFT JOIN seqd.enrollments e ON e.id = o.enrollment_id
                LEFT JOIN seqd.sequences s ON s.id = e.sequence_id
                LEFT JOIN seqd.sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = o.sequence_version
                LEFT JOIN seqd.deliveries d
                    ON o.type = 'delivered' AND d.enrollment_id = o.enrollment_id
                   AND d.step_key = v.definition -> 'steps' -> ev.from_step ->> 'key'
                WHERE o.payload IS NULL
            )
            UPDATE seqd.event_webhook_outbox o
            SET next_attempt_at = now() + make_interval(secs => $2), payload = COALESCE(o.payload, built.payload)
            FROM due LEFT JOIN built ON built.id = due.id
            WHERE o.id = due.id
            RETURNING o.id, o.type, o.attempts, o.payload::text AS body
            """)

    public static func claim(_ connection: Connection, limit: Int, leaseSeconds: Int) throws -> [EventWebhookPost] {
        let rows = try connection.query(claimStatement, [limit, leaseSeconds]).rows
        return try rows.map { row in
            let name = try row.decode("type", as: String.self)
            guard let type = EventWebhookType(rawValue: name) else {
                throw StoreError(.badInput, "event_webhook_outbox row has unknown type '\(name)'")
            }
            return EventWebhookPost(
                id: try row.decode("id"), type: type, attempts: try row.decode("attempts"),
                body: Array(try row.decode("body", as: String.self).utf8))
        }.sorted { $0.id < $1.id }
    }

    /// The receiver answered 2xx.
    public static func markDelivered(_ connection: Connection, id: Int64) throws {
        try connection.query(
            """
            UPDATE seqd.event_webhook_outbox
            SET delivered_at = now(), attempts = attempts + 1, last_error = NULL
            WHERE id = $1 AND delivered_at IS NULL
            """, [id])
    }

    /// The attempt failed: one attempt spent, the next in `retryInSeconds`.
    public static func markFailed(_ connection: Connection, id: Int64, reason: String, retryInSeconds: Double) throws {
        try connection.query(
            """
            UPDATE seqd.event_webhook_outbox
            SET attempts = attempts + 1, last_error = left($2, 500), next_attempt_at = now() + make_interval(secs => $3)
            WHERE id = $1 AND delivered_at IS NULL
            """, [id, reason, retryInSeconds])
    }

    /// Claimed rows not attempted (the receiver failed on an earlier one, or the daemon is
    /// stopping) become due again in `afterSeconds`, no attempt spent.
    public static func giveBack(_ connection: Connection, ids: [Int64], afterSeconds: Double) throws {
        guard !ids.isEmpty else { return }
        try connection.query(
            """
            UPDATE seqd.event_webhook_outbox SET next_attempt_at = now() + make_interval(secs => $2)
            WHERE id = ANY($1::bigint[]) AND delivered_at IS NULL
            """, [ids, afterSeconds])
    }
}

/// What `seqd event-webhook status` and the daemon's gauges report: what is waiting to be posted
/// and whether it is stuck.
public struct EventWebhookStatus: Sendable, Codable, Equatable {
    /// The types the outbox is enqueuing (`seqd.settings`, as the last `seqd run` wrote them);
    /// empty when off, nil when not readable by this role or never written.
    public let enabledTypes: [String]?
    /// Rows not delivered yet (first attempts and retries).
    public let pending: Int
    /// Of those, rows with at least one failed attempt (being retried).
    public let failed: Int
    /// Seconds since the oldest pending row was written; 0 when nothing is pending.
    public let oldestPendingSeconds: Double
    /// Rows delivered in the last hour.
    public let deliveredLastHour: Int
    /// When the next retry of a failed row is due, if one is.
    public let nextRetryAt: Date?
    /// The most recent failed attempt's error (the receiver's status and the start of its body).
    public let lastError: String?

    public static func load(_ connection: Connection) throws -> EventWebhookStatus {
        try SchemaCheck.requireSupported(connection)
        let present = try connection.query("SELECT to_regclass('seqd.event_webhook_outbox') IS NOT NULL AS present")[0]
            .decode("present", as: Bool.self)
        guard present else { throw StoreError(.notMigrated, "event webhooks need schema version 12: run `seqd migrate`") }
        let row = try connection.query(
            """
            SELECT p.pending, p.failed, p.oldest, p.next_retry,
                   (SELECT count(*) FROM seqd.event_webhook_outbox o
                    WHERE o.delivered_at > now() - interval '1 hour') AS delivered_last_hour,
                   (SELECT o.last_error FROM seqd.event_webhook_outbox o
                    WHERE o.delivered_at IS NULL AND o.attempts > 0
                    ORDER BY o.next_attempt_at DESC, o.id DESC LIMIT 1) AS last_error
            FROM (SELECT count(*) AS pending, count(*) FILTER (WHERE o.attempts > 0) AS failed,
                         COALESCE(extract(epoch FROM now() - min(o.created_at)), 0)::float8 AS oldest,
                         min(o.next_attempt_at) FILTER (WHERE o.attempts > 0) AS next_retry
                  FROM seqd.event_webhook_outbox o WHERE o.delivered_at IS NULL) AS p
            """)[0]
        // seqd_readonly may not read seqd.settings (it holds secrets): the types are then unknown.
        let types: [String]?
        do {
            types = try connection.query("SELECT value FROM seqd.settings WHERE name = 'event_webhook.types'").rows.first
                .map { try $0.decode("value", as: String.self).split(separator: ",").map(String.init) }
        } catch let error as PostgresError where error.isPermissionDenied {
            types = nil
        }
        return EventWebhookStatus(
            enabledTypes: types, pending: try row.decode("pending"), failed: try row.decode("failed"),
            oldestPendingSeconds: try row.decode("oldest"), deliveredLastHour: try row.decode("delivered_last_hour"),
            nextRetryAt: try row.decode("next_retry", as: Date?.self), lastError: try row.decode("last_error", as: String?.self))
    }
}
