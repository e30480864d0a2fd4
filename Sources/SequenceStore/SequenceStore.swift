// SequenceStore: every SQL statement seqd runs, one file per concern — migrations, sequences and
// contacts, enrollment, the claim/advance/deliver transactions, signals, and the ops queries behind
// `seqd status` and `seqd inspect`. It turns rows into SequenceEngine values and back; it decides
// nothing itself (transitions are decided by the engine's state machines).
import Postgres

/// Failures the store reports in terms an operator can act on.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The schema is missing or older than this binary needs.
        case notMigrated
        /// A named thing (sequence, contact, enrollment) does not exist.
        case notFound
        /// The request contradicts the current state (e.g. an invalid transition).
        case refused
        /// The input was rejected (bad rows, bad definition).
        case badInput
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// Checks the schema before any other query, so an unmigrated database gets a clear instruction
/// instead of "relation does not exist".
public enum SchemaCheck {
    /// The applied schema version, or nil when seqd's schema is absent.
    public static func appliedVersion(_ connection: Connection) throws -> Int? {
        let present = try connection.query("SELECT to_regclass('seqd.schema_migrations') IS NOT NULL AS present")[0]
            .decode("present", as: Bool.self)
        guard present else { return nil }
        return try connection.query("SELECT max(version) AS version FROM seqd.schema_migrations")[0]
            .decode("version", as: Int?.self)
    }

    /// Throws `.notMigrated` unless the database holds a schema this binary supports.
    public static func requireSupported(_ connection: Connection) throws {
        guard let version = try appliedVersion(connection) else {
            throw StoreError(.notMigrated, "the database has no seqd schema yet: run `seqd migrate` first")
        }
        guard version >= Migrations.minimumVersion else {
            throw StoreError(
                .notMigrated,
                "the database schema is at version \(version), this binary needs at least \(Migrations.minimumVersion): run `seqd migrate`")
        }
    }
}

extension PostgresError {
    /// The transition trigger (invariant 4) refused a status change: SQLSTATE SQ001, raised by
    /// `seqd.enrollments_guard_transition`.
    public var isRefusedTransition: Bool { sqlState == "SQ001" }
}
