import Delivery
import Foundation
import Postgres
import SeqdConfig
import SequenceStore

/// The documented exit codes (design.md §8), named after sysexits.h where they come from.
enum ExitStatus: Int32 {
    case done = 0
    case refused = 1
    case usage = 64
    case dataError = 65
    case noInput = 66
    case unavailable = 69
    case software = 70
}

/// A failure a command reports on purpose, with its exit status.
struct CommandFailure: Error {
    let status: ExitStatus
    let message: String
}

/// Turns any error into the message and exit status an operator should see.
struct Failure {
    let status: ExitStatus
    let message: String

    init(_ error: any Error) {
        switch error {
        case let failure as CommandFailure:
            (status, message) = (failure.status, failure.message)
        case let config as ConfigError:
            (status, message) = (config.isMissingFile ? .noInput : .dataError, config.description)
        case let store as StoreError:
            switch store.kind {
            case .notMigrated, .notFound, .refused: (status, message) = (.refused, store.description)
            case .badInput: (status, message) = (.dataError, store.description)
            }
        case let transport as TransportConfigurationError:
            (status, message) = (.dataError, "configuration: \(transport)")
        case let outbox as FileTransportError:
            (status, message) = (.dataError, "configuration key delivery.file.directory: \(outbox)")
        case let refused as Migrator.RefusedError:
            (status, message) = (.refused, refused.description)
        case let database as PostgresError:
            switch database.kind {
            case .connectionFailed, .connectionLost:
                (status, message) = (.unavailable, "database unreachable: \(database.message)")
            case .server where database.sqlState == "SQ001":
                (status, message) = (.refused, database.message)
            case .server where database.sqlState == "42501":
                (status, message) = (.refused, "permission denied for this database role: \(database.message)")
            case .server, .decoding, .usage:
                (status, message) = (.software, "database error: \(database)")
            }
        default:
            (status, message) = (.software, "internal error: \(error)")
        }
    }
}
