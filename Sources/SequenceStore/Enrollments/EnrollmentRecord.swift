import Foundation
import Postgres
import SequenceEngine

/// An enrollment row as the state machine needs it: its identity, the contact's fields and the
/// stored state. Loaded inside the transaction that will write the machine's answer back.
struct EnrollmentRecord {
    let id: Int64
    let contactID: Int64
    let sequenceID: Int64
    let sequenceVersion: Int
    let contact: ContactFields
    let state: EnrollmentState
    /// Fields webhook steps saved (`step_data`), as text, for branch conditions.
    let stepData: [String: String]
    /// `created_at`: goals on events count those received after it.
    let enrolledAt: Date

    /// The columns every query that loads records selects, with `e` = enrollments, `c` = contacts.
    static let columns = """
        e.id, e.contact_id, e.sequence_id, e.sequence_version, e.status::text AS status, e.current_step_index,
        e.next_run_at, extract(epoch FROM e.remaining_wait)::float8 AS remaining_wait, e.resume_at, e.last_error,
        c.email, c.first_name, c.last_name, c.time_zone, c.attributes::text AS attributes,
        e.step_data::text AS step_data, e.event_properties::text AS event_properties, e.created_at AS enrolled_at
        """

    init(row: Row) throws {
        id = try row.decode("id")
        contactID = try row.decode("contact_id")
        sequenceID = try row.decode("sequence_id")
        sequenceVersion = try row.decode("sequence_version")
        let attributesJSON = try row.decode("attributes", as: String.self)
        // Most contacts have no attributes: skip the decoder (it is most of a claimed row's cost).
        let attributes = attributesJSON == "{}" ? [:]
            : (try? JSONDecoder().decode([String: AttributeValue].self, from: Data(attributesJSON.utf8))) ?? [:]
        contact = ContactFields(
            email: try row.decode("email"), firstName: try row.decode("first_name", as: String?.self),
            lastName: try row.decode("last_name", as: String?.self), timeZone: try row.decode("time_zone", as: String?.self),
            attributes: attributes.mapValues(\.text), event: try Self.textObject(row.decode("event_properties", as: String?.self)))
        enrolledAt = try row.decode("enrolled_at")
        stepData = Self.textObject(try row.decode("step_data", as: String.self))
        let statusText = try row.decode("status", as: String.self)
        guard let status = EnrollmentStatus(rawValue: statusText) else {
            throw PostgresError(kind: .decoding, message: "unknown enrollment status \(statusText)", column: "status")
        }
        state = EnrollmentState(
            status: status, currentStepIndex: try row.decode("current_step_index"),
            nextRunAt: try row.decode("next_run_at", as: Date?.self),
            remainingWait: try row.decode("remaining_wait", as: Double?.self),
            resumeAt: try row.decode("resume_at", as: Date?.self), lastError: try row.decode("last_error", as: String?.self))
    }
}

extension EnrollmentRecord {
    /// A stored JSON object of flat values (event properties) as text; NULL or `{}` is empty.
    static func textObject(_ json: String?) -> [String: String] {
        guard let json, json != "{}" else { return [:] }
        return ((try? JSONDecoder().decode([String: AttributeValue].self, from: Data(json.utf8))) ?? [:]).mapValues(\.text)
    }
}

/// Contact attributes and step data are stored as JSON objects; templates and conditions see
/// every value as text.
struct AttributeValue: Decodable {
    let text: String
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let string = try? container.decode(String.self) {
            text = string
        } else if let number = try? container.decode(Double.self) {
            text = number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
        } else if let bool = try? container.decode(Bool.self) {
            text = bool ? "true" : "false"
        } else {
            text = ""
        }
    }
}

/// Writes state-machine results back, set-based: one UPDATE per event kind, whatever the batch size.
/// The audit trigger records one event per changed row, named by `seqd.event` for the transaction.
enum EnrollmentWriter {
    static let update = PreparedStatement(
        name: "enrollments_write_states",
        sql: """
            UPDATE seqd.enrollments e
            SET status = u.status::seqd.enrollment_status, current_step_index = u.step, next_run_at = u.next_run_at,
                remaining_wait = CASE WHEN u.remaining IS NULL THEN NULL ELSE make_interval(secs => u.remaining) END,
                resume_at = u.resume_at, last_error = u.last_error, updated_at = now()
            FROM unnest($1::bigint[], $2::text[], $3::int[], $4::timestamptz[], $5::float8[], $6::timestamptz[], $7::text[])
                AS u(id, status, step, next_run_at, remaining, resume_at, last_error)
            WHERE e.id = u.id
            """)

    static let auditContext = PreparedStatement(
        name: "audit_context",
        sql: "SELECT set_config('seqd.event', $1, true), set_config('seqd.actor', $2, true), set_config('seqd.reason', COALESCE($3, ''), true)")

    /// Names the event, actor and reason that the audit trigger records for the rest of the transaction.
    static func setAuditContext(_ connection: Connection, event: String, actor: String, reason: String? = nil) throws {
        try connection.query(auditContext, [event, actor, reason])
    }

    /// Stores `states` (enrollment id → new state) under one audit event name.
    static func write(
        _ connection: Connection, states: [(id: Int64, state: EnrollmentState)], event: String, actor: String,
        reason: String? = nil
    ) throws {
        guard !states.isEmpty else { return }
        try setAuditContext(connection, event: event, actor: actor, reason: reason)
        try connection.query(
            update,
            [
                states.map(\.id), states.map(\.state.status.rawValue), states.map(\.state.currentStepIndex),
                states.map(\.state.nextRunAt), states.map(\.state.remainingWait), states.map(\.state.resumeAt),
                states.map(\.state.lastError),
            ])
    }
}
