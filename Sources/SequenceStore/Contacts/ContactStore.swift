import Foundation
import Postgres
import SequenceEngine

/// What an upsert of contacts did. Every input contact is counted exactly once.
public struct ContactUpsertSummary: Sendable, Equatable, Codable {
    /// Contacts that did not exist before.
    public var created = 0
    /// Existing contacts whose stored fields changed.
    public var updated = 0
    /// Existing contacts the input did not change (nothing was written for them).
    public var unchanged = 0
    /// Live enrollments of the updated contacts that now meet a goal (`exit_when`) and ended
    /// `converted` in the same transaction.
    public var converted: [Conversion] = []

    /// All contacts the upsert accepted.
    public var total: Int { created + updated + unchanged }

    public init() {}
}

/// Contacts (`seqd contact add|import`): one row per address whatever its case
/// (`contacts_email_key` on `lower(email)`).
///
/// Upserting merges rather than replaces, so importing a file that lacks a column, or a blank cell,
/// never erases what an earlier import stored: a given first name, last name or time zone
/// overwrites the stored one, an absent one keeps it, and attributes are merged key by key (new
/// values win). The address itself takes the spelling last given.
public enum ContactStore {
    /// Contacts per statement: big enough that a million rows is a thousand round trips, small
    /// enough that one statement's arrays stay a few hundred kilobytes.
    public static let batchSize = 1_000

    static let upsert = PreparedStatement(
        name: "contacts_upsert",
        sql: """
            WITH input AS (
                -- One row per address: ON CONFLICT DO UPDATE cannot touch a row twice in a statement,
                -- and the server's lower() is the one the unique index uses. The last one given wins.
                SELECT DISTINCT ON (lower(u.email)) u.email, u.first_name, u.last_name, u.time_zone,
                       u.attributes::jsonb AS attributes
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                    WITH ORDINALITY AS u(email, first_name, last_name, time_zone, attributes, position)
                ORDER BY lower(u.email), u.position DESC
            )
            INSERT INTO seqd.contacts AS c (email, first_name, last_name, time_zone, attributes)
            SELECT email, first_name, last_name, time_zone, attributes FROM input
            ON CONFLICT ((lower(email))) DO UPDATE
            SET email = EXCLUDED.email,
                first_name = COALESCE(EXCLUDED.first_name, c.first_name),
                last_name = COALESCE(EXCLUDED.last_name, c.last_name),
                time_zone = COALESCE(EXCLUDED.time_zone, c.time_zone),
                attributes = c.attributes || EXCLUDED.attributes,
                updated_at = now()
            -- Unchanged contacts are not rewritten: re-importing the same file costs no row versions.
            WHERE (c.email, c.first_name, c.last_name, c.time_zone, c.attributes) IS DISTINCT FROM
                  (EXCLUDED.email, COALESCE(EXCLUDED.first_name, c.first_name),
                   COALESCE(EXCLUDED.last_name, c.last_name), COALESCE(EXCLUDED.time_zone, c.time_zone),
                   c.attributes || EXCLUDED.attributes)
            -- xmax is 0 only on a freshly inserted row version.
            RETURNING c.id, (c.xmax = 0) AS created
            """)

    /// The contact with this address (any case), as templates, branches and the state machine
    /// see it; nil when there is none.
    public static func find(_ connection: Connection, email: String) throws -> ContactFields? {
        let rows = try connection.query(
            """
            SELECT email, first_name, last_name, time_zone, attributes::text AS attributes
            FROM seqd.contacts WHERE lower(email) = lower($1)
            """, [email])
        return try rows.rows.first.map(Enroller.contactFields)
    }

    /// Upserts `contacts` in batches inside one transaction, so an import lands entirely or not at
    /// all. `progress` receives the number of contacts written so far after each batch.
    ///
    /// A contact an upsert changed may now meet a goal of a live enrollment: those enrollments
    /// end `converted` in the same transaction, audited by `actor`.
    public static func upsert(
        _ connection: Connection, _ contacts: [ContactFields], actor: String = defaultActor, progress: (Int) -> Void = { _ in }
    ) throws -> ContactUpsertSummary {
        try SchemaCheck.requireSupported(connection)
        // Goals lock enrollments, as senders settling do (the other way round): a deadlock victim is retried.
        return try connection.transaction(retryingConflicts: 5) { try upsertInTransaction($0, contacts, actor: actor, progress: progress) }
    }

    /// The audit actor of conversions when a caller names none (library callers and tests).
    public static let defaultActor = "contacts"

    /// The id of the contact with this address, created (with nothing but the address) when there
    /// is none; an existing contact is left exactly as it is, its address's spelling included.
    static func ensure(_ connection: Connection, email: String) throws -> (id: Int64, created: Bool) {
        try validate([ContactFields(email: email)])
        let inserted = try connection.query(
            "INSERT INTO seqd.contacts (email) VALUES ($1) ON CONFLICT ((lower(email))) DO NOTHING RETURNING id", [email])
        if let row = inserted.rows.first { return (try row.decode("id"), true) }
        let rows = try connection.query("SELECT id FROM seqd.contacts WHERE lower(email) = lower($1)", [email])
        guard let row = rows.rows.first else { throw StoreError(.notFound, "the contact was not stored") }
        return (try row.decode("id"), false)
    }

    /// Imports a parsed contact file: its valid contacts, or with `strict` nothing at all when any
    /// row was rejected (the caller reports `csv.rejected` either way).
    public static func importFile(
        _ connection: Connection, _ csv: ContactCSV, strict: Bool, actor: String = defaultActor, progress: (Int) -> Void = { _ in }
    ) throws -> ContactUpsertSummary {
        if strict && !csv.rejected.isEmpty { return ContactUpsertSummary() }
        return try upsert(connection, csv.contacts, actor: actor, progress: progress)
    }

    /// The same, inside the caller's transaction (`enroll --csv` imports and enrolls atomically).
    static func upsertInTransaction(
        _ connection: Connection, _ contacts: [ContactFields], actor: String, progress: (Int) -> Void = { _ in }
    ) throws -> ContactUpsertSummary {
        try validate(contacts)
        // Duplicates are resolved per statement by the SQL; across batches the later batch simply
        // updates what the earlier one wrote. Counting each address once needs the dedup here too.
        var seen = Set<String>()
        var summary = ContactUpsertSummary()
        var duplicates = 0
        var done = 0
        var updatedIDs = [Int64]()
        for start in stride(from: 0, to: contacts.count, by: batchSize) {
            let batch = contacts[start..<min(start + batchSize, contacts.count)]
            for contact in batch where !seen.insert(contact.email.lowercased()).inserted { duplicates += 1 }
            let rows = try connection.query(
                upsert,
                [
                    batch.map(\.email), batch.map(\.firstName), batch.map(\.lastName), batch.map(\.timeZone),
                    try batch.map { try attributesJSON($0.attributes) },
                ])
            let created = try rows.rows.filter { try $0.decode("created", as: Bool.self) }.count
            updatedIDs += try rows.rows.filter { try !$0.decode("created", as: Bool.self) }.map { try $0.decode("id", as: Int64.self) }
            summary.created += created
            summary.updated += rows.count - created
            done += batch.count
            progress(done)
        }
        // Whatever the statements did not return was an existing contact left as it was.
        summary.unchanged = max(0, contacts.count - duplicates - summary.created - summary.updated)
        // New contacts have no enrollments; unchanged ones met no new goal.
        summary.converted = try Goals.convertMet(connection, contactIDs: updatedIDs.sorted(), actor: actor, cache: DefinitionCache())
        return summary
    }

    /// Rejects what the table's CHECK would reject anyway, but with a message naming the problem.
    static func validate(_ contacts: [ContactFields]) throws {
        for contact in contacts {
            if let problem = EmailAddress.problem(contact.email) { throw StoreError(.badInput, problem) }
            if let zone = contact.timeZone, !TimeZones.isValid(zone) {
                throw StoreError(.badInput, "unknown time zone '\(zone)' (use an IANA name such as Europe/Berlin)")
            }
        }
    }

    /// Attributes are stored as a JSON object of strings, with sorted keys so equal maps compare equal.
    static func attributesJSON(_ attributes: [String: String]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(attributes), as: UTF8.self)
    }
}
