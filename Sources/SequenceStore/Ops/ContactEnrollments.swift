import Foundation
import Postgres

/// The HTTP API's reads and lookups by id: paths carry contact ids, never addresses, so the API
/// needs the same answers `seqd inspect` gives, reached through the contact's id.
public enum ContactEnrollments {
    /// A contact's enrollments with state and full history (the `seqd inspect` view), by contact
    /// id. Unknown id: `StoreError(.notFound)`.
    public static func load(_ connection: Connection, contactID: Int64) throws -> Inspection {
        try SchemaCheck.requireSupported(connection)
        // One snapshot for the lookup and the inspection, so a contact whose address changes in
        // between cannot make the second step miss or show half of a concurrent change.
        return try connection.transaction { connection in
            try connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            guard let email = try address(connection, contactID: contactID) else {
                throw StoreError(.notFound, "no contact with id \(contactID)")
            }
            return try Inspection.load(connection, email: email)
        }
    }

    /// The contact id for an address (any case), or nil.
    public static func contactID(_ connection: Connection, email: String) throws -> Int64? {
        let rows = try connection.query("SELECT id FROM seqd.contacts WHERE lower(email) = lower($1)", [email])
        return rows.count == 1 ? try rows[0].decode("id", as: Int64.self) : nil
    }

    /// The contact's most recent enrollment in `sequence`, preferring a live one: after an enroll,
    /// the enrollment it made or the one that made it skip.
    public static func latest(_ connection: Connection, contactID: Int64, sequence: String) throws -> (id: Int64, status: String)? {
        let rows = try connection.query(
            """
            SELECT e.id, e.status::text AS status
            FROM seqd.enrollments e JOIN seqd.sequences s ON s.id = e.sequence_id
            WHERE e.contact_id = $1 AND s.name = $2
            ORDER BY (e.status IN ('active', 'paused', 'failed')) DESC, e.id DESC
            LIMIT 1
            """, [contactID, sequence])
        guard let row = rows.rows.first else { return nil }
        return (try row.decode("id"), try row.decode("status"))
    }

    /// The address of the contact with `contactID`, or nil. An erased contact (its address
    /// replaced by `erased-<id>@erased.invalid`) counts as gone unless `includingErased`: what is
    /// left of it is an anonymous audit trail, not a contact anyone can look up.
    public static func address(_ connection: Connection, contactID: Int64, includingErased: Bool = false) throws -> String? {
        let rows = try connection.query(
            "SELECT email FROM seqd.contacts WHERE id = $1 AND ($2 OR email <> 'erased-' || id || '@erased.invalid')",
            [contactID, includingErased])
        return rows.count == 1 ? try rows[0].decode("email", as: String.self) : nil
    }
}
