import Foundation
import Postgres
import SequenceEngine

/// The global suppression list (invariant 3: opt-out wins). Writing an address ends every live
/// enrollment of it and cancels their pending deliveries in the same transaction.
enum Suppressions {
    /// `seqd.is_suppressed(address)` written out, for the claims that run it on every row: the
    /// server cannot inline a SQL function whose body holds a subquery, and calling it cost 29 us
    /// a row, a third of a claim's time. Same condition as the function (migration 0005): two
    /// probes of the primary key, since one `OR` became a bitmap scan per row (12 µs a row more).
    ///
    /// `seqd.address_hash` is written out too (`addressHash`): since migration 0006 pins every
    /// function's `search_path`, the server no longer inlines it, and a call per row cost 2.4
    /// times the expression (200,000 rows: 4.6-5.3 s against 1.9 s on a loaded test machine).
    static func isSuppressed(_ address: String) -> String {
        """
        (EXISTS (SELECT 1 FROM seqd.suppressions s WHERE s.email = lower(\(address))) \
        OR EXISTS (SELECT 1 FROM seqd.suppressions s WHERE s.email = \(addressHash(address))))
        """
    }

    /// `seqd.address_hash(address)` as an expression (migration 0003's definition; a test checks
    /// both agree).
    static func addressHash(_ address: String) -> String {
        "('sha256:' || encode(sha256(convert_to(lower(\(address)), 'UTF8')), 'hex'))"
    }

    enum Reason: String {
        case optOut = "opt_out"
        case bounce
        case complaint
        case manual
    }

    /// Suppresses `address` and ends its live enrollments with the matching event. Returns the
    /// enrollments that ended; an address already suppressed is left as first recorded, also when
    /// that record is the hash an erasure left (a new contact with an erased address: erasing it
    /// again would otherwise meet that hash when it hashes the new row).
    @discardableResult
    static func add(
        _ connection: Connection, address: String, reason: Reason, source: String, actor: String, detail: String? = nil,
        cache: DefinitionCache, installationID: String
    ) throws -> [EventResult] {
        // Lock the address's live enrollments, then its claimable deliveries, before anything
        // else: an advance or a claim that holds one commits before this continues, and none can
        // lease one afterwards (both skip locked rows). An advance leases the delivery it creates
        // in its own transaction, so without the enrollments' locks an advance that began after
        // the stamp below, but before this commits, could lease a new delivery for the address.
        // The suppression is stamped with the clock after that, so "no attempt started (leased)
        // after the suppression" is exact and `seqd check` can verify it.
        try connection.query(
            """
            SELECT e.id FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id
            WHERE lower(c.email) = lower($1) AND e.status IN ('active', 'paused', 'failed')
            ORDER BY e.id
            FOR UPDATE OF e
            """, [address])
        try connection.query(
            """
            SELECT d.id FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id
            WHERE lower(c.email) = lower($1) AND d.status IN ('pending', 'unknown')
            FOR UPDATE OF d
            """, [address])
        try connection.query(
            """
            INSERT INTO seqd.suppressions (email, reason, source, created_at)
            SELECT lower($1), $2, $3, clock_timestamp() WHERE NOT seqd.is_suppressed($1)
            ON CONFLICT (email) DO NOTHING
            """, [address, reason.rawValue, source])
        let live = try connection.query(
            """
            SELECT e.id FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id
            WHERE lower(c.email) = lower($1) AND e.status IN ('active', 'paused', 'failed')
            """, [address]
        ).rows.map { try $0.decode("id", as: Int64.self) }
        let event: EnrollmentEvent = reason == .bounce ? .bounce : .optOut
        return try EnrollmentEvents.apply(
            event, to: live, using: connection, cache: cache, actor: actor, reason: detail ?? reason.rawValue,
            installationID: installationID)
    }
}

/// Lifting a suppression: the owner's decision alone. The database refuses the DELETE to every
/// other role (migration 0006), and its trigger records each removal as a `signals` row of kind
/// `unsuppress` with the database user, the actor and the reason given.
public enum SuppressionRemoval {
    /// Removes the suppression of `address` (stored as the address or, after erasure, its hash).
    /// Returns how many rows were removed (0 when it was not suppressed). Enrollments it ended stay
    /// ended: terminal is terminal.
    public static func remove(_ connection: Connection, address: String, reason: String, actor: String) throws -> Int {
        try SchemaCheck.requireSupported(connection)
        return try connection.transaction { connection in
            try connection.query(
                "SELECT set_config('seqd.actor', $1, true), set_config('seqd.reason', $2, true)", [actor, reason])
            return try connection.query(
                "DELETE FROM seqd.suppressions WHERE email IN (lower($1), seqd.address_hash($1))", [address]
            ).affectedRows
        }
    }
}
