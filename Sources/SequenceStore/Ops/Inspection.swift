import Foundation
import Postgres

/// `seqd inspect`: everything about one contact's enrollments — where each stands, why it is not
/// moving, and its full audit history — read from the views operators also use in psql.
public struct Inspection: Sendable, Codable {
    public struct Event: Sendable, Codable {
        public let at: Date
        public let event: String
        public let fromStatus: String?
        public let toStatus: String
        public let fromStep: String?
        public let toStep: String
        public let actor: String
        public let reason: String?
        /// The event's detail as JSON text (a version migration, the fields a webhook step saved).
        public let detail: String?
    }

    public struct Delivery: Sendable, Codable {
        public let id: Int64
        public let stepKey: String
        public let status: String
        public let attempts: Int
        public let sentAt: Date?
        public let lastError: String?
    }

    public struct Enrollment: Sendable, Codable {
        public let id: Int64
        public let sequence: String
        public let version: Int
        public let stepKey: String
        public let status: String
        public let blockedReason: String
        public let nextRunAt: Date?
        /// Fields webhook steps saved (`step_data`) as JSON text; nil when none.
        public let stepData: String?
        public let events: [Event]
        public let deliveries: [Delivery]
    }

    public let email: String
    public let suppressed: Bool
    public let enrollments: [Enrollment]

    public static func load(_ connection: Connection, email: String) throws -> Inspection {
        try SchemaCheck.requireSupported(connection)
        let contact = try connection.query(
            """
            SELECT c.email, seqd.is_suppressed(c.email) AS suppressed
            FROM seqd.contacts c WHERE lower(c.email) = lower($1)
            """, [email])
        guard contact.count == 1 else { throw StoreError(.notFound, "no contact with that email address") }
        let rows = try connection.query(
            """
            SELECT o.enrollment_id, o.sequence, o.version, o.step_key, o.status::text AS status, o.blocked_reason, o.next_run_at,
                   NULLIF(e.step_data, '{}')::text AS step_data
            FROM seqd.enrollment_overview o JOIN seqd.enrollments e ON e.id = o.enrollment_id
            WHERE lower(o.email) = lower($1) ORDER BY o.enrollment_id
            """, [email])
        let enrollments = try rows.rows.map { try enrollment($0, connection) }
        return Inspection(
            email: try contact[0].decode("email"), suppressed: try contact[0].decode("suppressed"), enrollments: enrollments)
    }

    /// One enrollment with its history and its contact's id, by enrollment id. Unknown:
    /// `StoreError(.notFound)`.
    public static func enrollment(_ connection: Connection, id: Int64) throws -> (contactID: Int64, enrollment: Enrollment) {
        try SchemaCheck.requireSupported(connection)
        return try connection.transaction { connection in
            try connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            let rows = try connection.query(
                """
                SELECT o.enrollment_id, o.sequence, o.version, o.step_key, o.status::text AS status, o.blocked_reason, o.next_run_at,
                       NULLIF(e.step_data, '{}')::text AS step_data, e.contact_id
                FROM seqd.enrollment_overview o JOIN seqd.enrollments e ON e.id = o.enrollment_id
                WHERE o.enrollment_id = $1
                """, [id])
            guard let row = rows.rows.first else { throw StoreError(.notFound, "no enrollment with id \(id)") }
            return (try row.decode("contact_id"), try enrollment(row, connection))
        }
    }

    /// An `enrollment_overview` row with its events and deliveries.
    private static func enrollment(_ row: Row, _ connection: Connection) throws -> Enrollment {
        let id = try row.decode("enrollment_id", as: Int64.self)
        let events = try connection.query(
            """
            SELECT ev.at, ev.event, ev.from_status::text AS from_status, ev.to_status::text AS to_status,
                   v.definition -> 'steps' -> ev.from_step ->> 'key' AS from_key,
                   COALESCE(v.definition -> 'steps' -> ev.to_step ->> 'key', '(end)') AS to_key,
                   ev.from_step, ev.actor, ev.reason, ev.detail::text AS detail
            FROM seqd.enrollment_events ev
            JOIN seqd.enrollments e ON e.id = ev.enrollment_id
            JOIN seqd.sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.sequence_version
            WHERE ev.enrollment_id = $1 ORDER BY ev.id
            """, [id]
        ).rows.map { event in
            Event(
                at: try event.decode("at"), event: try event.decode("event"),
                fromStatus: try event.decode("from_status", as: String?.self), toStatus: try event.decode("to_status"),
                fromStep: try event.decode("from_step", as: Int?.self) == nil
                    ? nil : (try event.decode("from_key", as: String?.self) ?? "(end)"),
                toStep: try event.decode("to_key"), actor: try event.decode("actor"),
                reason: try event.decode("reason", as: String?.self), detail: try event.decode("detail", as: String?.self))
        }
        let deliveries = try connection.query(
            """
            SELECT id, step_key, status::text AS status, attempts, sent_at, last_error
            FROM seqd.deliveries WHERE enrollment_id = $1 ORDER BY id
            """, [id]
        ).rows.map { delivery in
            Delivery(
                id: try delivery.decode("id"), stepKey: try delivery.decode("step_key"),
                status: try delivery.decode("status"), attempts: try delivery.decode("attempts"),
                sentAt: try delivery.decode("sent_at", as: Date?.self),
                lastError: try delivery.decode("last_error", as: String?.self))
        }
        return Enrollment(
            id: id, sequence: try row.decode("sequence"), version: try row.decode("version"),
            stepKey: try row.decode("step_key"), status: try row.decode("status"),
            blockedReason: try row.decode("blocked_reason"), nextRunAt: try row.decode("next_run_at", as: Date?.self),
            stepData: try row.decode("step_data", as: String?.self), events: events, deliveries: deliveries)
    }
}
