import Delivery
import Foundation
import SeqdApplication
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
        switch ApplicationError.mapping(error) {
        case let failure as CommandFailure:
            (status, message) = (failure.status, failure.message)
        case let config as ConfigError:
            (status, message) = (config.isMissingFile ? .noInput : .dataError, config.description)
        case let application as ApplicationError:
            message = application.message
            switch application.kind {
            case .badInput: status = .dataError
            case .notFound, .refused, .invalidTransition, .preconditionFailed, .permissionDenied, .notMigrated: status = .refused
            case .unavailable: status = .unavailable
            case .internal: status = .software
            }
        case let transport as TransportConfigurationError:
            (status, message) = (.dataError, "configuration: \(transport)")
        case let outbox as FileTransportError:
            (status, message) = (.dataError, "configuration key delivery.file.directory: \(outbox)")
        default:
            (status, message) = (.software, "internal error: \(error)")
        }
    }
}
