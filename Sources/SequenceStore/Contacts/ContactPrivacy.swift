import Foundation
import Postgres
import SequenceEngine

/// Data-subject requests: export everything seqd holds about a contact, or erase it while keeping
/// the address suppressed (as a hash) and the audit trail consistent.
public final class ContactPrivacy {
    private let actor: String
    private let installationID: String
    private let cache = DefinitionCache()

    public init(actor: String, installationID: String) {
        self.actor = actor
        self.installationID = installationID
    }

    /// Everything about the contact as one JSON document: the contact row, its suppression, every
    /// enrollment with its events, deliveries (with rendered messages), their attempts and clicks on
    /// their tracked links, and signals.
    public static func export(_ connection: Connection, email: String) throws -> String {
        try SchemaCheck.requireSupported(connection)
        let row = try connection.query(
            """
            SELECT jsonb_pretty(jsonb_build_object(
                'contact', to_jsonb(c) - 'id' || jsonb_build_object('id', c.id),
                'suppressed', seqd.is_suppressed(c.email),
                'suppression', (SELECT to_jsonb(s) FROM seqd.suppressions s
                                WHERE s.email IN (lower(c.email), seqd.address_hash(c.email)) LIMIT 1),
                'enrollments', COALESCE((
                    SELECT jsonb_agg(to_jsonb(e) || jsonb_build_object(
                        'sequence', (SELECT name FROM seqd.sequences q WHERE q.id = e.sequence_id),
                        'events', (SELECT COALESCE(jsonb_agg(to_jsonb(v) ORDER BY v.id), '[]') FROM seqd.enrollment_events v WHERE v.enrollment_id = e.id),
                        'deliveries', (SELECT COALESCE(jsonb_agg(to_jsonb(d) || jsonb_build_object(
                                          'attempts', (SELECT COALESCE(jsonb_agg(to_jsonb(a) ORDER BY a.id), '[]')
                                                       FROM seqd.delivery_attempts a WHERE a.delivery_id = d.id),
                                          'clicks', (SELECT COALESCE(jsonb_agg(to_jsonb(k) ORDER BY k.id), '[]')
                                                     FROM seqd.clicks k WHERE k.delivery_id = d.id)) ORDER BY d.id), '[]')
                                       FROM seqd.deliveries d WHERE d.enrollment_id = e.id)) ORDER BY e.id)
                    FROM seqd.enrollments e WHERE e.contact_id = c.id), '[]'),
                'signals', (SELECT COALESCE(jsonb_agg(to_jsonb(g) ORDER BY g.id), '[]') FROM seqd.signals g WHERE g.contact_id = c.id)
            )) AS document
            FROM seqd.contacts c WHERE lower(c.email) = lower($1)
            """, [email])
        guard row.count == 1 else { throw StoreError(.notFound, "no contact with that email address") }
        return try row[0].decode("document")
    }

    /// Erases the contact: live enrollments are stopped (audited), pending deliveries cancelled,
    /// the address is replaced everywhere by `erased-<id>@erased.invalid` (event reasons and
    /// errors included), names, attributes, rendered messages and server replies are removed, and the suppression list keeps only a
    /// hash of the address so it is never mailed again. Returns the contact id.
    public func erase(_ connection: Connection, email: String) throws -> Int64 {
        try SchemaCheck.requireSupported(connection)
        return try connection.transaction { connection in
            let contact = try connection.query(
                "SELECT id, email = 'erased-' || id || '@erased.invalid' AS erased FROM seqd.contacts WHERE lower(email) = lower($1) FOR UPDATE",
                [email])
            guard contact.count == 1 else { throw StoreError(.notFound, "no contact with that email address") }
            let id = try contact[0].decode("id", as: Int64.self)
            // Erased already (named by its placeholder address): nothing is left to remove, and
            // erasing again must not fail (a client retrying DELETE /v1/contacts/{id}).
            if try contact[0].decode("erased", as: Bool.self) { return id }
            // Ending the live enrollments goes through the machine and the opt-out path, which also
            // cancels pending deliveries and waits for claims in progress (Suppressions.add).
            _ = try Suppressions.add(
                connection, address: email, reason: .manual, source: "erase", actor: actor, detail: "contact erased",
                cache: cache, installationID: installationID)
            // The rows only the owner may rewrite (the suppression, attempt replies, signals, event
            // reasons and errors that name the address) go through the one function granted for it.
            try connection.query(
                "SELECT seqd.erase_contact_history($1, $2, $3)", [id, email, "erased-\(id)@erased.invalid"])
            try connection.query(
                """
                UPDATE seqd.contacts SET email = 'erased-' || id || '@erased.invalid', first_name = NULL, last_name = NULL,
                       time_zone = NULL, attributes = '{}', updated_at = now()
                WHERE id = $1
                """, [id])
            try connection.query("UPDATE seqd.deliveries SET message = NULL WHERE contact_id = $1", [id])
            return id
        }
    }
}
