import Foundation
import Postgres
import SequenceEngine

/// Which contacts an enroll is about.
public enum EnrollmentSelection: Sendable {
    /// Existing contacts by address (any case); addresses with no contact are counted as unknown.
    case emails([String])
    /// These contacts, upserted first in the same transaction (`enroll --csv`).
    case imported([ContactFields])
    /// Every contact.
    case all
}

/// What an enroll did (or, for a dry run, would do). Every selected contact is counted in exactly
/// one of the counters, checked in the order they are declared.
public struct EnrollmentSummary: Sendable, Equatable, Codable {
    public let sequence: String
    /// The version the new enrollments are pinned to: the latest when the enroll ran.
    public let version: Int
    public let dryRun: Bool
    public var enrolled = 0
    /// Already active, paused or failed in this sequence (including a concurrent enroll that won).
    public var alreadyLive = 0
    /// Went through the sequence before and `allowReenroll` was not given.
    public var enrolledBefore = 0
    /// The address is on the suppression list.
    public var suppressed = 0
    /// A template field without fallback is missing or blank for the contact.
    public var missingTemplateFields = 0
    /// Field name → how many skipped contacts lack it (a contact may lack several).
    public var missingFields: [String: Int] = [:]
    /// Given addresses with no contact.
    public var unknownContacts = 0
    /// For `.imported`: what the upsert did.
    public var imported: ContactUpsertSummary?

    /// Contacts looked at, enrolled or skipped.
    public var considered: Int { enrolled + skipped }
    /// Contacts that exist but were not enrolled.
    public var skipped: Int { alreadyLive + enrolledBefore + suppressed + missingTemplateFields }

    init(sequence: String, version: Int, dryRun: Bool) {
        self.sequence = sequence
        self.version = version
        self.dryRun = dryRun
    }

    enum CodingKeys: String, CodingKey {
        case sequence, version, enrolled, suppressed, imported
        case dryRun = "dry_run"
        case alreadyLive = "already_live"
        case enrolledBefore = "enrolled_before"
        case missingTemplateFields = "missing_template_fields"
        case missingFields = "missing_fields"
        case unknownContacts = "unknown_contacts"
    }

}

/// Enrolls contacts in a sequence (`seqd enroll`), pinned to its latest version and due at once.
///
/// Set-based per batch of contacts: one query reads the batch with its skip flags, the engine
/// checks template fields, one INSERT writes the rest. The partial unique index
/// `enrollments_one_live` is the arbiter for concurrent enrolls (invariant 5): `ON CONFLICT DO
/// NOTHING` makes the loser count the contact as already live instead of failing.
public enum Enroller {
    static let batchSize = 1_000

    /// Enrolls the selection in one transaction, or for `dryRun` runs the very same statements and
    /// rolls back, so the counts are the real ones and nothing (not even `.imported` contacts) is
    /// written. Unknown sequence: `StoreError(.notFound)`.
    public static func enroll(
        _ connection: Connection, sequence: String, selection: EnrollmentSelection, allowReenroll: Bool = false,
        dryRun: Bool = false, actor: String
    ) throws -> EnrollmentSummary {
        try SchemaCheck.requireSupported(connection)
        do {
            return try connection.transaction { connection in
                let summary = try enrollInTransaction(
                    connection, sequence: sequence, selection: selection, allowReenroll: allowReenroll,
                    dryRun: dryRun, actor: actor)
                if dryRun { throw DryRunRollback(summary: summary) }
                return summary
            }
        } catch let rollback as DryRunRollback {
            return rollback.summary
        }
    }

    /// Thrown to make `transaction` roll a dry run back; carries the counts out.
    private struct DryRunRollback: Error {
        let summary: EnrollmentSummary
    }

    private static func enrollInTransaction(
        _ connection: Connection, sequence: String, selection: EnrollmentSelection, allowReenroll: Bool, dryRun: Bool,
        actor: String
    ) throws -> EnrollmentSummary {
        let target = try latestVersion(connection, sequence: sequence)
        var summary = EnrollmentSummary(sequence: sequence, version: target.version, dryRun: dryRun)
        try EnrollmentWriter.setAuditContext(connection, event: "enroll", actor: actor)
        // Contacts are taken in id order, in every selection, so concurrent enrolls that overlap
        // wait for each other in the same order instead of deadlocking.
        func process(_ ids: [Int64]) throws {
            for start in stride(from: 0, to: ids.count, by: batchSize) {
                try enrollBatch(
                    connection, contactIDs: Array(ids[start..<min(start + batchSize, ids.count)]), target: target,
                    allowReenroll: allowReenroll, into: &summary)
            }
        }

        switch selection {
        case .emails(let emails):
            let (ids, unknown) = try resolve(connection, emails)
            summary.unknownContacts = unknown
            try process(ids)
        case .imported(let contacts):
            summary.imported = try ContactStore.upsertInTransaction(connection, contacts, actor: actor)
            let (ids, unknown) = try resolve(connection, contacts.map(\.email))
            summary.unknownContacts = unknown
            try process(ids)
        case .all:
            // Keyset pages, so a large contact table is read in bounded pieces.
            var after: Int64 = 0
            while true {
                let ids = try connection.query(
                    "SELECT id FROM seqd.contacts WHERE id > $1 ORDER BY id LIMIT $2", [after, batchSize]
                ).rows.map { try $0.decode("id", as: Int64.self) }
                guard let last = ids.last else { break }
                try process(ids)
                after = last
            }
        }
        if summary.enrolled > 0 && !dryRun {
            // Delivered at commit, so running daemons start on the new enrollments at once.
            try connection.query("SELECT pg_notify('seqd_wakeup', '')")
        }
        return summary
    }

    /// A sequence's latest version, which new enrollments are pinned to.
    struct Target {
        let name: String
        let sequenceID: Int64
        let version: Int
        let definition: SequenceDefinition

        init(row: Row) throws {
            name = try row.decode("name")
            sequenceID = try row.decode("id")
            version = try row.decode("version")
            definition = try SequenceDefinition.decodeStored(Data(try row.decode("definition", as: String.self).utf8))
        }
    }

    private static func latestVersion(_ connection: Connection, sequence: String) throws -> Target {
        let rows = try connection.query(
            """
            SELECT s.name, s.id, v.version, v.definition::text AS definition
            FROM seqd.sequences s
            JOIN seqd.sequence_versions v ON v.sequence_id = s.id
            WHERE s.name = $1
            ORDER BY v.version DESC LIMIT 1
            """, [sequence])
        guard let row = rows.rows.first else { throw StoreError(.notFound, "no sequence named '\(sequence)'") }
        return try Target(row: row)
    }

    /// The sequences whose latest version has a trigger on this event name, by name. Reads every
    /// sequence's latest version (sequences number in the tens or hundreds, not millions).
    static func triggered(by event: String, _ connection: Connection) throws -> [Target] {
        try connection.query(
            """
            SELECT * FROM (
                SELECT DISTINCT ON (v.sequence_id) s.name, s.id, v.version, v.definition::text AS definition,
                       v.definition -> 'trigger' ->> 'event' AS trigger_event
                FROM seqd.sequence_versions v JOIN seqd.sequences s ON s.id = v.sequence_id
                ORDER BY v.sequence_id, v.version DESC
            ) latest
            WHERE latest.trigger_event = $1
            ORDER BY latest.name
            """, [event]
        ).rows.map(Target.init(row:))
    }

    /// The event that enrolls a contact through a sequence's trigger: stored on the enrollment,
    /// so its templates can name `{{event.NAME}}`.
    struct TriggeringEvent {
        let id: Int64
        let properties: [String: String]
    }

    /// Enrolls one contact in `target` for an event, under the usual rules (one live enrollment,
    /// not again after a finished one, never a suppressed address, no template holes), in the
    /// caller's transaction; the caller names the audit context.
    static func enroll(
        _ connection: Connection, contactID: Int64, in target: Target, for event: TriggeringEvent
    ) throws -> EnrollmentSummary {
        var summary = EnrollmentSummary(sequence: target.name, version: target.version, dryRun: false)
        try enrollBatch(connection, contactIDs: [contactID], target: target, allowReenroll: false, event: event, into: &summary)
        return summary
    }

    /// The contacts with these addresses (any case), each once and sorted by id, and how many
    /// addresses matched no contact.
    private static func resolve(_ connection: Connection, _ emails: [String]) throws -> (ids: [Int64], unknown: Int) {
        var unknown = 0
        var ids = Set<Int64>()
        var seen = Set<String>()
        let unique = emails.filter { seen.insert($0.lowercased()).inserted }
        for start in stride(from: 0, to: unique.count, by: batchSize) {
            let rows = try connection.query(
                """
                SELECT c.id
                FROM unnest($1::text[]) AS u(email)
                LEFT JOIN seqd.contacts c ON lower(c.email) = lower(u.email)
                """, [Array(unique[start..<min(start + batchSize, unique.count)])])
            for row in rows.rows {
                if let id = try row.decode("id", as: Int64?.self) { ids.insert(id) } else { unknown += 1 }
            }
        }
        return (ids.sorted(), unknown)
    }

    /// Reads the batch with its skip flags, lets the engine check template fields, and inserts the
    /// rest. The audit trigger writes one 'enroll' event per inserted row (context set by the caller).
    private static func enrollBatch(
        _ connection: Connection, contactIDs: [Int64], target: Target, allowReenroll: Bool, event: TriggeringEvent? = nil,
        into summary: inout EnrollmentSummary
    ) throws {
        let rows = try connection.query(
            """
            SELECT c.id, c.email, c.first_name, c.last_name, c.time_zone, c.attributes::text AS attributes,
                   EXISTS (SELECT 1 FROM seqd.enrollments e WHERE e.contact_id = c.id AND e.sequence_id = $2
                           AND e.status IN ('active', 'paused', 'failed')) AS live,
                   EXISTS (SELECT 1 FROM seqd.enrollments e WHERE e.contact_id = c.id AND e.sequence_id = $2
                           AND e.status NOT IN ('active', 'paused', 'failed')) AS before,
                   \(Suppressions.isSuppressed("c.email")) AS suppressed
            FROM seqd.contacts c
            WHERE c.id = ANY($1::bigint[])
            ORDER BY c.id
            """, [contactIDs, target.sequenceID])
        var eligible = [Int64]()
        for row in rows.rows {
            if try row.decode("live", as: Bool.self) {
                summary.alreadyLive += 1
            } else if try !allowReenroll && row.decode("before", as: Bool.self) {
                summary.enrolledBefore += 1
            } else if try row.decode("suppressed", as: Bool.self) {
                summary.suppressed += 1
            } else {
                var fields = try contactFields(row)
                fields.event = event?.properties ?? [:]
                let missing = target.definition.missingFields(for: fields)
                if missing.isEmpty {
                    eligible.append(try row.decode("id"))
                } else {
                    summary.missingTemplateFields += 1
                    for field in missing { summary.missingFields[field, default: 0] += 1 }
                }
            }
        }
        guard !eligible.isEmpty else { return }
        let inserted = try connection.query(
            """
            INSERT INTO seqd.enrollments (contact_id, sequence_id, sequence_version, next_run_at, trigger_event_id, event_properties)
            SELECT u.id, $2, $3, now(), $4, $5::jsonb FROM unnest($1::bigint[]) AS u(id) ORDER BY u.id
            ON CONFLICT (contact_id, sequence_id) WHERE status IN ('active', 'paused', 'failed') DO NOTHING
            """, [eligible, target.sequenceID, target.version, event?.id, try event.map { try ContactStore.attributesJSON($0.properties) }]
        ).affectedRows
        summary.enrolled += inserted
        // A concurrent enroll committed a live enrollment for these since the flags were read.
        summary.alreadyLive += eligible.count - inserted
    }

    /// The contact as templates see it: attributes become text, as for the state machine.
    static func contactFields(_ row: Row) throws -> ContactFields {
        let json = try row.decode("attributes", as: String.self)
        let attributes = (try? JSONDecoder().decode([String: AttributeValue].self, from: Data(json.utf8))) ?? [:]
        return ContactFields(
            email: try row.decode("email"), firstName: try row.decode("first_name", as: String?.self),
            lastName: try row.decode("last_name", as: String?.self),
            timeZone: try row.decode("time_zone", as: String?.self), attributes: attributes.mapValues(\.text))
    }
}
