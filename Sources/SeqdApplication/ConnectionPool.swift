import Postgres
import Synchronization

/// A fixed set of confined connections shared by concurrent callers (the API's handlers).
///
/// Each request borrows one connection for all its statements and gives it back; when all are
/// busy, requests wait their turn instead of opening more, so the listener's share of
/// `max_connections` stays what the documentation states. Blocking libpq calls stay on each
/// connection's own thread (`ConfinedConnection.run`); the waiting here is `async` suspension.
final class ConnectionPool: Sendable {
    private struct State {
        var free: [ConfinedConnection]
        var waiters: [CheckedContinuation<ConfinedConnection, Never>] = []
    }

    private let all: [ConfinedConnection]
    private let state: Mutex<State>

    init(databaseURL: String, size: Int, options: SessionOptions) {
        all = (0..<size).map { index in
            ConfinedConnection(databaseURL, options: options, label: "seqd.http-\(index)")
        }
        state = Mutex(State(free: all))
    }

    /// Runs `body` on a borrowed connection's thread.
    func run<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        let connection = await acquire()
        defer { release(connection) }
        return try await connection.run(body)
    }

    /// Cancels whatever statement each connection is running (shutdown).
    func cancel() {
        for connection in all { connection.cancel() }
    }

    /// Cancels and closes every connection.
    func close() {
        for connection in all {
            connection.cancel()
            connection.close()
        }
    }

    private func acquire() async -> ConfinedConnection {
        await withCheckedContinuation { continuation in
            let connection = state.withLock { state -> ConfinedConnection? in
                if let connection = state.free.popLast() { return connection }
                state.waiters.append(continuation)
                return nil
            }
            // Resumed outside the lock: resuming can run the waiter's code right away.
            if let connection { continuation.resume(returning: connection) }
        }
    }

    private func release(_ connection: ConfinedConnection) {
        let waiter = state.withLock { state -> CheckedContinuation<ConfinedConnection, Never>? in
            if state.waiters.isEmpty {
                state.free.append(connection)
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume(returning: connection)
    }
}
