import Foundation
import Postgres
import SequenceEngine

/// What recording one event did. A repeat of a key seen before (`duplicate`) changed nothing and
/// names the event that was recorded first.
public struct EventOutcome: Sendable, Codable {
    /// The stored event (the first one with this key, for a duplicate).
    public let eventID: Int64
    public let contactID: Int64
    /// The key was seen before: nothing was written.
    public let duplicate: Bool
    /// The contact did not exist and was created (with nothing but its address).
    public var contactCreated = false
    /// Enrollments the event's triggers made.
    public var enrolled: [Enrolled] = []
    /// Sequences whose trigger names the event but that did not enroll the contact, and why.
    public var skipped: [Skipped] = []
    /// Live enrollments of the contact that the event (or nothing else) completed a goal of.
    public var converted: [Conversion] = []

    /// A new enrollment.
    public struct Enrolled: Sendable, Codable {
        public let sequence: String
        public let version: Int
        public let enrollmentID: Int64

        enum CodingKeys: String, CodingKey {
            case sequence, version
            case enrollmentID = "enrollment_id"
        }
    }

    /// A trigger that matched the name but enrolled nobody: `condition_not_met`, `already_live`,
    /// `enrolled_before`, `suppressed` or `missing_template_fields` (with the fields).
    public struct Skipped: Sendable, Codable {
        public let sequence: String
        public let reason: String
        public var missingFields: [String]? = nil

        enum CodingKeys: String, CodingKey {
            case sequence, reason
            case missingFields = "missing_fields"
        }
    }

    enum CodingKeys: String, CodingKey {
        case duplicate, enrolled, skipped, converted
        case eventID = "event_id"
        case contactID = "contact_id"
        case contactCreated = "contact_created"
    }
}

/// Records events that other systems report (`POST /v1/events`, `seqd event send`), in one
/// transaction each: the contact is created if it is new, the event stored once per key, goals
/// of the contact's live enrollments checked with the event counted, and the contact enrolled in
/// every sequence whose trigger the event meets, under the rules of `seqd enroll` (a contact that
/// went through a sequence is not enrolled again). A repeated key rolls everything back and says
/// so, so a sender may retry as often as it likes.
public enum EventIntake {
    /// Records `event`; `source` (`http`, `cli`) is stored with it, `actor` audits what it changed.
    public static func record(_ connection: Connection, _ event: IncomingEvent, source: String, actor: String) throws -> EventOutcome {
        try SchemaCheck.requireSupported(connection)
        do {
            // Goals lock enrollments, which senders settling lock the other way round.
            return try connection.transaction(retryingConflicts: 5) { try recordInTransaction($0, event, source: source, actor: actor) }
        } catch let repeated as Repeated {
            return repeated.outcome
        }
    }

    /// Thrown to roll back a repeated event's transaction (the contact it may have created too).
    private struct Repeated: Error {
        let outcome: EventOutcome
    }

    private static func recordInTransaction(
        _ connection: Connection, _ event: IncomingEvent, source: String, actor: String
    ) throws -> EventOutcome {
        let contact = try ContactStore.ensure(connection, email: event.email)
        // ON CONFLICT waits for a concurrent insert of the same key to commit or roll back, so
        // of two simultaneous deliveries of one event exactly one is recorded.
        let inserted = try connection.query(
            """
            INSERT INTO seqd.events (contact_id, name, key, properties, occurred_at, source)
            VALUES ($1, $2, $3, $4::jsonb, $5, $6)
            ON CONFLICT ON CONSTRAINT events_key DO NOTHING
            RETURNING id
            """,
            [contact.id, event.name, event.key, try ContactStore.attributesJSON(event.properties), event.occurredAt, source])
        guard let row = inserted.rows.first else {
            let first = try connection.query("SELECT id, contact_id FROM seqd.events WHERE key = $1", [event.key])[0]
            throw Repeated(outcome: EventOutcome(eventID: try first.decode("id"), contactID: try first.decode("contact_id"), duplicate: true))
        }
        var outcome = EventOutcome(eventID: try row.decode("id"), contactID: contact.id, duplicate: false)
        outcome.contactCreated = contact.created
        let cache = DefinitionCache()
        outcome.converted = try Goals.convertMet(connection, contactIDs: [contact.id], actor: actor, cache: cache)

        let targets = try Enroller.triggered(by: event.name, connection)
        guard !targets.isEmpty else { return outcome }
        guard var fields = try ContactStore.find(connection, email: event.email) else { return outcome }
        fields.event = event.properties
        try EnrollmentWriter.setAuditContext(
            connection, event: "enroll", actor: actor, reason: "trigger: event \(event.name) (event \(outcome.eventID))")
        for target in targets {
            guard target.definition.trigger?.matches(fields) ?? false else {
                outcome.skipped.append(.init(sequence: target.name, reason: "condition_not_met"))
                continue
            }
            let summary = try Enroller.enroll(
                connection, contactID: contact.id, in: target,
                for: Enroller.TriggeringEvent(id: outcome.eventID, properties: event.properties))
            if summary.enrolled == 1 {
                let id = try connection.query(
                    """
                    SELECT id FROM seqd.enrollments
                    WHERE contact_id = $1 AND sequence_id = $2 AND status IN ('active', 'paused', 'failed')
                    """, [contact.id, target.sequenceID])[0].decode("id", as: Int64.self)
                outcome.enrolled.append(.init(sequence: target.name, version: target.version, enrollmentID: id))
            } else {
                let reason = summary.alreadyLive > 0 ? "already_live" : summary.enrolledBefore > 0 ? "enrolled_before"
                    : summary.suppressed > 0 ? "suppressed" : "missing_template_fields"
                let missing = reason == "missing_template_fields" ? summary.missingFields.keys.sorted() : nil
                outcome.skipped.append(.init(sequence: target.name, reason: reason, missingFields: missing))
            }
        }
        if !outcome.enrolled.isEmpty {
            // Delivered at commit, so running daemons start on the new enrollments at once.
            try connection.query("SELECT pg_notify('seqd_wakeup', '')")
        }
        return outcome
    }
}
