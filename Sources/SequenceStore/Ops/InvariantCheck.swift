import Foundation
import Postgres
import SequenceEngine

/// `seqd check`: verifies the invariants of design.md §3 on a live database with read-only SQL.
/// Each check is one query that returns the offending rows; an empty result is a pass.
public enum InvariantCheck {
    /// One broken invariant at one row.
    public struct Violation: Sendable, Codable {
        public let check: String
        public let enrollmentID: Int64?
        public let deliveryID: Int64?
        public let problem: String
    }

    /// A check and its outcome.
    public struct Result: Sendable, Codable {
        public let check: String
        public let description: String
        public let violations: [Violation]
        /// More rows violated it than `limit`; only the first ones are listed.
        public let truncated: Bool
    }

    struct Check {
        let name: String
        let description: String
        /// Selects `enrollment_id`, `delivery_id` (either may be NULL) and `problem`.
        let sql: String
    }

    /// The statuses that never change again, from the engine's own list.
    static let terminal = "(" + EnrollmentStatus.allCases.filter(\.isTerminal).map { "'\($0.rawValue)'" }.joined(separator: ", ") + ")"

    /// True while `index` exists, is unique and valid: the database then enforces what a check
    /// would look for, and the check need not read the table.
    static func uniqueIndexHolds(_ index: String) -> String {
        "EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = to_regclass('\(index)') AND i.indisunique AND i.indisvalid)"
    }

    static let checks: [Check] = [
        Check(
            name: "one-delivery-per-step",
            description: "at most one delivery per enrollment and step key (invariant 1)",
            // The unique constraint makes a duplicate impossible while its index is valid; only
            // without it are all deliveries grouped (4.4 s at a million enrollments).
            sql: """
                SELECT enrollment_id, min(id) AS delivery_id,
                       count(*) || ' deliveries for step ' || step_key AS problem
                FROM seqd.deliveries
                WHERE NOT \(uniqueIndexHolds("seqd.deliveries_one_per_step"))
                GROUP BY enrollment_id, step_key HAVING count(*) > 1
                """),
        Check(
            name: "audited-state",
            description: "each enrollment's current status and step equal the end of its audit trail (invariant 2)",
            sql: """
                SELECT e.id AS enrollment_id, NULL::bigint AS delivery_id,
                       CASE WHEN last.to_status IS NULL THEN 'no audit events at all'
                            ELSE 'row says ' || e.status || ' at step ' || e.current_step_index || ', audit trail ends at '
                                 || last.to_status || ' at step ' || last.to_step END AS problem
                FROM seqd.enrollments e
                LEFT JOIN LATERAL (
                    SELECT to_status, to_step FROM seqd.enrollment_events v
                    WHERE v.enrollment_id = e.id ORDER BY v.id DESC LIMIT 1
                ) last ON true
                WHERE last.to_status IS DISTINCT FROM e.status OR last.to_step IS DISTINCT FROM e.current_step_index
                """),
        Check(
            name: "contiguous-history",
            description: "every audit event starts where the previous one ended (no unaudited change between) (invariant 2)",
            // One pass over the history index (its INCLUDE columns make it index-only) with two
            // window functions; the event's name is read only for the rows that fail.
            sql: """
                SELECT h.enrollment_id, NULL::bigint AS delivery_id,
                       'event ' || h.id || ' (' || ev.event || ') starts at ' || COALESCE(h.from_status::text, 'nothing') || '/'
                       || COALESCE(h.from_step::text, '-') || ' but the previous ended at ' || COALESCE(h.prev_status::text, 'nothing')
                       || '/' || COALESCE(h.prev_step::text, '-') AS problem
                FROM (
                    SELECT v.id, v.enrollment_id, v.from_status, v.from_step,
                           lag(v.to_status) OVER w AS prev_status, lag(v.to_step) OVER w AS prev_step
                    FROM seqd.enrollment_events v WINDOW w AS (PARTITION BY v.enrollment_id ORDER BY v.id)
                ) h
                JOIN seqd.enrollment_events ev ON ev.id = h.id
                -- to_status is never NULL: a NULL previous one means the first event.
                WHERE h.prev_status IS NOT NULL
                  AND (h.from_status IS DISTINCT FROM h.prev_status OR h.from_step IS DISTINCT FROM h.prev_step)
                """),
        Check(
            name: "opt-out-wins",
            description: "no delivery attempt started after its address's suppression (invariant 3)",
            // From the suppressions to their contacts' attempts, by index: a plain address through
            // contacts_email_key; a hashed one (an erased contact's) by hashing the contacts, which
            // only runs when such suppressions exist. One join on `s.email IN (lower(c.email),
            // address_hash(c.email))` hashed every contact of every attempt: 48 s at a million.
            sql: """
                SELECT d.enrollment_id, d.id AS delivery_id,
                       'attempt ' || a.id || ' started ' || (a.started_at - s.created_at) || ' after the address was suppressed ('
                       || s.reason || ')' AS problem
                FROM seqd.suppressions s
                JOIN seqd.contacts c ON lower(c.email) = s.email
                JOIN seqd.deliveries d ON d.contact_id = c.id
                JOIN seqd.delivery_attempts a ON a.delivery_id = d.id
                WHERE a.started_at > s.created_at
                UNION ALL
                SELECT d.enrollment_id, d.id AS delivery_id,
                       'attempt ' || a.id || ' started ' || (a.started_at - s.created_at) || ' after the address was suppressed ('
                       || s.reason || ')' AS problem
                FROM seqd.suppressions s
                JOIN seqd.contacts c ON seqd.address_hash(c.email) = s.email
                JOIN seqd.deliveries d ON d.contact_id = c.id
                JOIN seqd.delivery_attempts a ON a.delivery_id = d.id
                WHERE s.email LIKE 'sha256:%' AND a.started_at > s.created_at
                """),
        Check(
            name: "terminal-is-terminal",
            description: "completed, replied, opted_out, bounced, stopped and converted never change again (invariant 4)",
            sql: """
                SELECT enrollment_id, NULL::bigint AS delivery_id,
                       'event ' || id || ' (' || event || ') changed a ' || from_status || ' enrollment to ' || to_status
                       || ' at step ' || to_step AS problem
                FROM seqd.enrollment_events
                WHERE from_status IN \(terminal) AND (to_status <> from_status OR to_step <> from_step)
                """),
        Check(
            name: "deferrals-in-place",
            description: "a deferral moves only the time: its audit event keeps the status and step (issue 7)",
            sql: """
                SELECT enrollment_id, NULL::bigint AS delivery_id,
                       'event ' || id || ' (deferred, ' || COALESCE(reason, 'no reason') || ') moved ' || from_status || '/'
                       || from_step || ' to ' || to_status || '/' || to_step AS problem
                FROM seqd.enrollment_events
                WHERE event = 'deferred' AND (to_status IS DISTINCT FROM from_status OR to_step IS DISTINCT FROM from_step
                                              OR reason IS NULL)
                """),
        Check(
            name: "one-live-enrollment",
            description: "at most one live (active, paused, failed) enrollment per contact and sequence (invariant 5)",
            sql: """
                SELECT min(id) AS enrollment_id, NULL::bigint AS delivery_id,
                       count(*) || ' live enrollments of contact ' || contact_id || ' in sequence ' || sequence_id AS problem
                FROM seqd.enrollments
                WHERE status IN ('active', 'paused', 'failed') AND NOT \(uniqueIndexHolds("seqd.enrollments_one_live"))
                GROUP BY contact_id, sequence_id HAVING count(*) > 1
                """),
        Check(
            name: "way-forward",
            description: "every active enrollment is scheduled or has a delivery that can still move it",
            sql: """
                SELECT e.id AS enrollment_id, NULL::bigint AS delivery_id,
                       'active, not scheduled, and no pending, sending or unknown delivery' AS problem
                FROM seqd.enrollments e
                WHERE e.status = 'active' AND e.next_run_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM seqd.deliveries d
                                  WHERE d.enrollment_id = e.id AND d.status IN ('pending', 'sending', 'unknown'))
                """),
        Check(
            name: "leases-rescued",
            description: "no delivery stays 'sending' long after its lease expired (the rescuer runs)",
            sql: """
                SELECT d.enrollment_id, d.id AS delivery_id,
                       'lease of ' || COALESCE(d.lease_owner, '?') || ' expired ' || date_trunc('second', now() - d.lease_expires_at)
                       || ' ago' AS problem
                FROM seqd.deliveries d
                WHERE d.status = 'sending' AND d.lease_expires_at < now() - make_interval(secs => $1)
                """),
    ]

    /// The query of the check named `name`, as `run` executes it (for plan tests).
    package static func checkSQL(_ name: String) -> String? {
        checks.first { $0.name == name }.map { $0.sql.replacingOccurrences(of: "$1", with: "60") }
    }

    /// Runs every check in one read-only, repeatable-read transaction, so all see one snapshot.
    public static func run(_ connection: Connection, leaseGraceSeconds: Int, limit: Int = 100) throws -> [Result] {
        try SchemaCheck.requireSupported(connection)
        try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        defer { _ = try? connection.execute("ROLLBACK") }
        return try checks.map { check in
            let parameters: [any PostgresEncodable] = check.sql.contains("$1") ? [leaseGraceSeconds] : []
            let rows = try connection.query(
                "SELECT * FROM (\(check.sql)) AS violations ORDER BY enrollment_id NULLS LAST LIMIT \(limit + 1)", parameters)
            let violations = try rows.rows.prefix(limit).map { row in
                Violation(
                    check: check.name, enrollmentID: try row.decode("enrollment_id", as: Int64?.self),
                    deliveryID: try row.decode("delivery_id", as: Int64?.self), problem: try row.decode("problem"))
            }
            return Result(check: check.name, description: check.description, violations: violations, truncated: rows.count > limit)
        }
    }
}
