import Dispatch
import Foundation
import Synchronization

/// A connection confined to its own serial queue, with an `async` face.
///
/// Blocking libpq calls run on the queue's thread, never on the Swift concurrency pool, so a slow
/// query cannot stall `/healthz` or signal handling. The connection is opened lazily; after a
/// connection error it is dropped, and the next `run` connects afresh. Whether and when to call
/// `run` again (backoff) is the caller's policy.
public final class ConfinedConnection: Sendable {
    private let queue: DispatchQueue
    private let connectionString: String
    private let options: SessionOptions
    /// Touched only on `queue`.
    private let connection = QueueConfined<Connection?>(nil)
    /// Readable from any thread so `cancel()` can reach a statement that is blocking the queue.
    private let cancelHandle = Mutex<CancelHandle?>(nil)

    public init(_ connectionString: String, options: SessionOptions = SessionOptions(), label: String = "seqd.db") {
        self.connectionString = connectionString
        self.options = options
        self.queue = DispatchQueue(label: label)
    }

    /// Runs `body` with the connection on the connection's own thread.
    public func run<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try self.runOnQueue(body) })
            }
        }
    }

    /// The same as `run`, blocking the calling thread; for threads that are already dedicated
    /// (workers driven by a Dispatch timer), never for the concurrency pool.
    public func runBlocking<T>(_ body: (Connection) throws -> T) throws -> T {
        try queue.sync { try runOnQueue(body) }
    }

    /// Runs `body` in a transaction (see `Connection.transaction`).
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await run { try $0.transaction(body) }
    }

    /// Shutdown: cancels the statement currently running on this connection, if any, and stops
    /// the work on it from starting another (it rolls back). The next `run` connects afresh.
    public func cancel() {
        cancelHandle.withLock { $0 }?.stopStatements()
    }

    /// Closes the connection; the next `run` reconnects.
    public func close() {
        queue.sync { drop() }
    }

    private func runOnQueue<T>(_ body: (Connection) throws -> T) throws -> T {
        let current: Connection
        if let existing = connection.value, existing.isHealthy, !existing.isStopped {
            current = existing
        } else {
            drop()
            current = try Connection(connectionString, options: options)
            let handle = current.makeCancelHandle()
            connection.value = current
            cancelHandle.withLock { $0 = handle }
        }
        do {
            return try body(current)
        } catch let error as PostgresError where error.isConnectionError {
            drop()
            throw PostgresError(
                kind: .connectionLost, sqlState: error.sqlState, message: error.message, detail: error.detail,
                hint: error.hint)
        }
    }

    private func drop() {
        cancelHandle.withLock { $0 = nil }
        connection.value = nil
    }
}

/// A value that only one serial queue ever touches. The compiler cannot see queue confinement, so
/// this box states it: every access happens on the owner's queue, which makes it safe to share.
final class QueueConfined<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
