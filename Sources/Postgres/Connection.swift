import CLibPQ
import Foundation
import Synchronization

/// A statement prepared once per connection and executed by name afterwards.
///
/// Declare these as static constants next to the SQL that owns them; the connection prepares each on
/// first use, so a replacement connection after a reconnect prepares them again transparently.
public struct PreparedStatement: Sendable, Hashable {
    public let name: String
    public let sql: String
    public init(name: String, sql: String) {
        self.name = name
        self.sql = sql
    }
}

/// Session settings applied right after connecting.
public struct SessionOptions: Sendable {
    /// Shown in `pg_stat_activity`, so operators can tell seqd's sessions apart.
    public var applicationName: String
    /// Server-side cap on one statement, in milliseconds (0 = none).
    public var statementTimeoutMilliseconds: Int
    /// Cap on waiting for a lock, in milliseconds (0 = none).
    public var lockTimeoutMilliseconds: Int
    /// Server ends a session left idle inside a transaction this long, in milliseconds (0 = none).
    public var idleInTransactionTimeoutMilliseconds: Int

    public init(
        applicationName: String = "seqd", statementTimeoutMilliseconds: Int = 0, lockTimeoutMilliseconds: Int = 0,
        idleInTransactionTimeoutMilliseconds: Int = 0
    ) {
        self.applicationName = applicationName
        self.statementTimeoutMilliseconds = statementTimeoutMilliseconds
        self.lockTimeoutMilliseconds = lockTimeoutMilliseconds
        self.idleInTransactionTimeoutMilliseconds = idleInTransactionTimeoutMilliseconds
    }
}

/// One libpq connection, owned by exactly one Swift object and used by one thread at a time.
///
/// Blocking by design: every call waits for the server. Do not call it on the Swift concurrency pool
/// or an event loop; `ConfinedConnection` gives it a thread of its own and an `async` face.
public final class Connection {
    let handle: OpaquePointer
    private var prepared = Set<String>()
    /// True while inside `transaction`, so nested calls fail loudly instead of committing early.
    private var inTransaction = false

    /// Connects with a connection string handed to libpq untouched (URI or key=value; empty means
    /// libpq's own `PG*` environment), then applies `options`.
    public init(_ connectionString: String, options: SessionOptions = SessionOptions()) throws {
        // Passed as `dbname` with expand_dbname so libpq parses it exactly as given, while we can
        // still add application_name without editing the caller's string.
        let keywords = ["dbname", "application_name", "client_encoding"]
        let values = [connectionString, options.applicationName, "UTF8"]
        let handle = withCStringArray(keywords) { keywordPointers in
            withCStringArray(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let handle else {
            throw PostgresError(kind: .connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = PostgresError.connectionMessage(handle)
            PQfinish(handle)
            throw PostgresError(kind: .connectionFailed, message: message)
        }
        self.handle = handle
        // libpq prints server notices (and the FATAL of a terminated session) to stderr by default;
        // callers see errors as thrown values, so the raw text would only be noise in the CLI's output.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        // Fixed text formats keep decoding exact: UTC timestamps in ISO form.
        // JIT off: seqd's statements are short and planned again and again, and JIT compiles
        // whenever an estimate crosses jit_above_cost, whatever the statement then finds. In a run
        // of a million due emails, stale statistics put the delivery claim's estimate at 886,000:
        // every claim spent 1.5-2.5 s in LLVM to find nothing in 2 buffers, and sending all but
        // stopped for 30-45 s, until autovacuum analysed the table.
        try execute(
            """
            SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601';
            SET client_min_messages = warning; SET jit = off;
            SET statement_timeout = \(options.statementTimeoutMilliseconds);
            SET lock_timeout = \(options.lockTimeoutMilliseconds);
            SET idle_in_transaction_session_timeout = \(options.idleInTransactionTimeoutMilliseconds);
            """)
    }

    deinit { PQfinish(handle) }

    /// Whether libpq still considers the connection usable.
    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// Whether `CancelHandle.stopStatements()` was called: the connection refuses new statements.
    public var isStopped: Bool { stop.isRequested }

    /// The server process id serving this connection (`pg_backend_pid()`).
    public var backendPID: Int32 { PQbackendPID(handle) }

    /// Runs SQL text without parameters through the simple protocol; it may contain several
    /// statements (migrations). Returns the last statement's result.
    @discardableResult
    public func execute(_ sql: String) throws -> QueryResult {
        // ROLLBACK still runs after a stop, so the transaction ends cleanly.
        if sql != "ROLLBACK" { try refuseIfStopped() }
        return try check(PQexec(handle, sql))
    }

    /// Runs one statement with bound parameters (`$1`, `$2`, …) through the extended protocol.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresEncodable] = []) throws -> QueryResult {
        try refuseIfStopped()
        return try withParameters(parameters) { count, values in
            try check(PQexecParams(handle, sql, count, nil, values, nil, nil, 0))
        }
    }

    /// Runs a prepared statement, preparing it on this connection first if needed.
    @discardableResult
    public func query(_ statement: PreparedStatement, _ parameters: [any PostgresEncodable] = []) throws
        -> QueryResult
    {
        try refuseIfStopped()
        if !prepared.contains(statement.name) {
            try check(PQprepare(handle, statement.name, statement.sql, 0, nil))
            prepared.insert(statement.name)
        }
        return try withParameters(parameters) { count, values in
            try check(PQexecPrepared(handle, statement.name, count, values, nil, nil, 0))
        }
    }

    /// Runs `body` in a transaction: COMMIT when it returns, ROLLBACK when it throws.
    public func transaction<T>(_ body: (Connection) throws -> T) throws -> T {
        precondition(!inTransaction, "nested transaction on one connection")
        try execute("BEGIN")
        inTransaction = true
        defer { inTransaction = false }
        let value: T
        do {
            value = try body(self)
        } catch {
            // A lost connection has rolled back already; only the original error matters.
            if isHealthy { _ = try? execute("ROLLBACK") }
            throw error
        }
        try execute("COMMIT")
        return value
    }

    /// `transaction`, run again (up to `attempts` times in all, after a short random pause) when the
    /// server aborts it to break a deadlock or a serialization conflict. For commands whose locks
    /// can meet the daemon's in the opposite order, where such an abort is a normal event.
    public func transaction<T>(retryingConflicts attempts: Int, _ body: (Connection) throws -> T) throws -> T {
        var attempt = 1
        while true {
            do {
                return try transaction(body)
            } catch let error as PostgresError where error.isTransientConflict && attempt < attempts {
                attempt += 1
                Thread.sleep(forTimeInterval: Double.random(in: 0.01...0.05) * Double(attempt))
            }
        }
    }

    /// A handle that cancels this connection's running statement from any thread.
    public func makeCancelHandle() -> CancelHandle? {
        guard let cancel = PQgetCancel(handle) else { return nil }
        return CancelHandle(cancel, stop: stop)
    }

    /// Quotes an identifier (channel or role name) for the rare statements that cannot bind it.
    public func quoteIdentifier(_ identifier: String) throws -> String {
        guard let quoted = PQescapeIdentifier(handle, identifier, identifier.utf8.count) else {
            throw PostgresError(kind: .usage, message: PostgresError.connectionMessage(handle))
        }
        defer { PQfreemem(quoted) }
        return String(cString: quoted)
    }

    /// Set by `CancelHandle.stopStatements()` from another thread.
    private let stop = StopRequest()

    /// After a stop, no statement starts: a cancel that arrives between two statements would
    /// otherwise be lost, and the transaction would run on to its end.
    private func refuseIfStopped() throws {
        guard stop.isRequested else { return }
        throw PostgresError(kind: .server, sqlState: "57014", message: "canceling statement: the connection is shutting down")
    }

    /// Turns a libpq result into a `QueryResult` or the error it carries.
    @discardableResult
    private func check(_ result: OpaquePointer?) throws -> QueryResult {
        guard let result else { throw PostgresError.from(result: nil, connection: handle) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return QueryResult(result)
        default:
            let error = PostgresError.from(result: result, connection: handle)
            PQclear(result)
            if !isHealthy { prepared.removeAll() }
            throw error
        }
    }

    private func withParameters<T>(
        _ parameters: [any PostgresEncodable],
        _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?) throws -> T
    ) throws -> T {
        let texts = parameters.map { $0.postgresText }
        return try withOptionalCStringArray(texts) { pointers in
            try body(Int32(texts.count), pointers)
        }
    }
}

/// Cancels a running statement from another thread (`PQcancel` is thread-safe by design).
public final class CancelHandle: @unchecked Sendable {
    // Safe to share: PQcancel may be called from any thread on a PGcancel that is not being freed,
    // and it is freed only in deinit, when no other reference exists.
    private let cancel: OpaquePointer

    private let stop: StopRequest

    init(_ cancel: OpaquePointer, stop: StopRequest) {
        self.cancel = cancel
        self.stop = stop
    }
    deinit { PQfreeCancel(cancel) }

    /// Shutdown: cancels the statement in progress and refuses every later statement on the
    /// connection except ROLLBACK, so work caught between two statements stops too.
    public func stopStatements() {
        stop.request()
        cancelRunningStatement()
    }

    /// Asks the server to cancel the statement in progress, if any. Returns false if the request
    /// could not be sent.
    @discardableResult
    public func cancelRunningStatement() -> Bool {
        var buffer = [CChar](repeating: 0, count: 256)
        return PQcancel(cancel, &buffer, Int32(buffer.count)) == 1
    }
}

/// A flag one thread raises and a connection's thread reads before each statement.
final class StopRequest: Sendable {
    private let requested = Mutex(false)
    func request() { requested.withLock { $0 = true } }
    var isRequested: Bool { requested.withLock { $0 } }
}

/// Calls `body` with a NULL-terminated C array of C strings that lives for the call.
private func withCStringArray<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> T) -> T {
    withOptionalCStringArray(strings.map(Optional.some)) { body($0!) }
}

/// Same, with nil elements passed as NULL pointers (SQL NULL parameters).
private func withOptionalCStringArray<T>(
    _ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) throws -> T
) rethrows -> T {
    let duplicates: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
    defer { duplicates.forEach { free($0) } }
    var pointers = duplicates.map { UnsafePointer($0) }
    pointers.append(nil)
    return try pointers.withUnsafeBufferPointer { try body($0.baseAddress) }
}
