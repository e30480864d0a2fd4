import Postgres
import SequenceStore

/// The one error the application layer throws for what the store and the database refuse. Each
/// front end renders it its own way (the CLI: a message and a documented exit code; the API: an
/// HTTP status and a JSON body), from `kind` alone, so the two cannot disagree on what a failure is.
public struct ApplicationError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The input was rejected: bad rows, a bad definition, a value the database would not take.
        case badInput
        /// A named thing (sequence, contact, enrollment, delivery) does not exist.
        case notFound
        /// The request contradicts the current state.
        case refused
        /// The transition guard refused a status change (invariant 4).
        case invalidTransition
        /// The thing changed since the caller read it (an `If-Match` that no longer matches).
        case preconditionFailed
        /// The database role lacks a privilege this action needs.
        case permissionDenied
        /// The database cannot be reached, or is too busy (a statement or lock timeout): retry.
        case unavailable
        /// The schema is missing, older than this binary needs, or refuses to migrate.
        case notMigrated
        /// Anything else: ours to fix, not the caller's.
        case `internal`
    }

    public let kind: Kind
    public let message: String
    /// The database's SQLSTATE when the database refused: safe to log where the message, which
    /// may quote input, is not.
    public let sqlState: String?

    public init(_ kind: Kind, _ message: String, sqlState: String? = nil) {
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
    }

    public var description: String { message }

    /// Maps what the store, the migrator and libpq throw; any other error passes unchanged (a
    /// front end's own errors, cancellation).
    public static func mapping(_ error: any Error) -> any Error {
        switch error {
        case let store as StoreError:
            switch store.kind {
            case .notMigrated: return ApplicationError(.notMigrated, store.description)
            case .notFound: return ApplicationError(.notFound, store.description)
            case .refused: return ApplicationError(.refused, store.description)
            case .badInput: return ApplicationError(.badInput, store.description)
            }
        case let refused as Migrator.RefusedError:
            return ApplicationError(.refused, refused.description)
        case let stale as SequenceCatalog.VersionPreconditionFailed:
            return ApplicationError(.preconditionFailed, stale.description)
        case let database as PostgresError:
            let (kind, message): (Kind, String)
            if database.isConnectionError {
                (kind, message) = (.unavailable, "database unreachable: \(database.message)")
            } else if database.isQueryCanceled || database.isLockTimeout {
                (kind, message) = (.unavailable, "database busy: \(database.message)")
            } else if database.isRefusedTransition {
                (kind, message) = (.invalidTransition, database.message)
            } else if database.isPermissionDenied {
                (kind, message) = (.permissionDenied, "permission denied for this database role: \(database.message)")
            } else if database.isRejectedValue {
                (kind, message) = (.badInput, database.message)
            } else {
                (kind, message) = (.internal, "database error: \(database)")
            }
            return ApplicationError(kind, message, sqlState: database.sqlState)
        default:
            return error
        }
    }
}
