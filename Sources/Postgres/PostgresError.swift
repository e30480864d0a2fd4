import CLibPQ
import Foundation

/// What went wrong talking to PostgreSQL, with everything an operator needs to act on it.
///
/// Server errors carry the SQLSTATE and the server's message, detail, hint and constraint. A lost
/// connection (server restart, `pg_terminate_backend`, network) is its own kind so callers can
/// decide to reconnect; this layer never reconnects on its own.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// The broad class of failure.
    public enum Kind: Sendable, Equatable {
        /// Connecting failed (bad URL, server down, authentication).
        case connectionFailed
        /// An established connection broke; the connection object is now unusable.
        case connectionLost
        /// The server rejected a statement; see `sqlState`.
        case server
        /// A column's value could not be read as the requested Swift type.
        case decoding
        /// The caller misused the API (e.g. a parameter that cannot be encoded).
        case usage
    }

    public var kind: Kind
    /// Five-character SQLSTATE (e.g. `23505`), when the server sent one.
    public var sqlState: String?
    public var message: String
    public var detail: String?
    public var hint: String?
    /// The violated constraint, for integrity errors.
    public var constraint: String?
    /// The column involved, for decoding errors and some server errors.
    public var column: String?

    public init(
        kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil, hint: String? = nil,
        constraint: String? = nil, column: String? = nil
    ) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.column = column
    }

    /// True for errors after which the connection must be replaced: lost or never established,
    /// or the server said the session is over (class 08, admin shutdown 57P01–57P03).
    public var isConnectionError: Bool {
        if kind == .connectionLost || kind == .connectionFailed { return true }
        guard let state = sqlState else { return false }
        return state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state)
    }

    /// The statement was cancelled (`PQcancel`, statement_timeout): SQLSTATE 57014.
    public var isQueryCanceled: Bool { sqlState == "57014" }

    /// True when the error says something about the data a statement touched (a constraint, a
    /// bad value, a trigger's refusal), so doing the same work in smaller pieces can isolate the
    /// culprit. False for errors about the session or the server — cancelled, shut down, deadlock,
    /// serialization, out of resources, lost connection — where redoing the work only delays.
    public var isAboutTheData: Bool {
        guard kind == .server, !isConnectionError, let state = sqlState else { return false }
        return !["40", "53", "54", "57", "58", "XX"].contains(String(state.prefix(2)))
    }

    /// The server aborted the transaction to resolve a conflict with another one — a deadlock
    /// (40P01) or a serialization failure (40001): running it again is expected to succeed.
    public var isTransientConflict: Bool { sqlState == "40P01" || sqlState == "40001" }

    /// A lock wait ran past `lock_timeout`: SQLSTATE 55P03. The holder is another transaction;
    /// the same statement may well succeed once it ends.
    public var isLockTimeout: Bool { sqlState == "55P03" }

    /// A unique constraint was violated: SQLSTATE 23505.
    public var isUniqueViolation: Bool { sqlState == "23505" }

    /// The role lacks a privilege the statement needs: SQLSTATE 42501 (a least-privilege role
    /// running a command meant for another).
    public var isPermissionDenied: Bool { sqlState == "42501" }

    /// A value the database would not take: a data exception (class 22) or an integrity
    /// violation (class 23), the input's fault rather than the server's.
    public var isRejectedValue: Bool {
        guard kind == .server, let state = sqlState else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23")
    }

    public var description: String {
        var text = message
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let constraint { text += " [constraint \(constraint)]" }
        if let detail { text += "\nDETAIL: \(detail)" }
        if let hint { text += "\nHINT: \(hint)" }
        return text
    }
}

extension PostgresError {
    /// Builds an error from a failed result, classifying lost connections by the connection status.
    static func from(result: OpaquePointer?, connection: OpaquePointer) -> PostgresError {
        let lost = PQstatus(connection) != CONNECTION_OK
        guard let result else {
            return PostgresError(kind: lost ? .connectionLost : .server, message: connectionMessage(connection))
        }
        func field(_ code: Character) -> String? {
            guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        let message = field("M") ?? connectionMessage(connection)
        return PostgresError(
            kind: lost ? .connectionLost : .server,
            sqlState: field("C"),
            message: message,
            detail: field("D"),
            hint: field("H"),
            constraint: field("n"),
            column: field("c")
        )
    }

    /// libpq's last message for the connection, trimmed of its trailing newline.
    static func connectionMessage(_ connection: OpaquePointer) -> String {
        guard let raw = PQerrorMessage(connection) else { return "unknown libpq error" }
        let text = String(cString: raw).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "the connection to the server was lost" : text
    }
}
