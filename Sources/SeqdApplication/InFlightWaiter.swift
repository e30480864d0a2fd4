import SequenceStore
import Synchronization

/// Waits, after an action that stopped mail, until no send of its contacts is in flight
/// (invariant 3), so "stopped" means no further mail — without holding a connection while it
/// waits (three waiting API requests must not block the API and one-click unsubscribes).
///
/// Each check takes a connection for one short query and gives it back; between checks the caller
/// sleeps on the clock, not on a connection. Waiting has bounds of its own: `timeout` per call,
/// and at most `maxWaiters` callers waiting at once (a flood of signals answers at once with
/// `in_flight_settled: false` rather than piling up sleeping tasks).
public final class InFlightWaiter: Sendable {
    let database: Database
    let timeout: Duration
    let maxWaiters: Int
    let pollInterval: Duration
    private let waiting = Mutex(0)

    public init(database: Database, timeout: Duration, maxWaiters: Int = 64, pollInterval: Duration = .milliseconds(100)) {
        self.database = database
        self.timeout = timeout
        self.maxWaiters = maxWaiters
        self.pollInterval = pollInterval
    }

    /// How many requests are waiting now (for tests and metrics).
    public var waiters: Int { waiting.withLock { $0 } }

    /// True once nothing of `contacts` or `enrollmentIDs` is being sent; false on timeout, when
    /// too many requests wait already, or when the database cannot be asked.
    public func wait(contacts: [String], enrollmentIDs: [Int64]) async -> Bool {
        guard !contacts.isEmpty || !enrollmentIDs.isEmpty else { return true }
        let admitted = waiting.withLock { count -> Bool in
            guard count < maxWaiters else { return false }
            count += 1
            return true
        }
        guard admitted else { return false }
        defer { waiting.withLock { $0 -= 1 } }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let busy: Bool
            do {
                busy = try await database.run { try OperatorActions.sendsInFlight(contacts: contacts, enrollmentIDs: enrollmentIDs, using: $0) }
            } catch {
                return false
            }
            if !busy { return true }
            guard ContinuousClock.now < deadline else { return false }
            do { try await Task.sleep(for: pollInterval) } catch { return false }
        }
    }
}
