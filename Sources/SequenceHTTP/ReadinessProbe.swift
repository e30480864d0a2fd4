import Logging
import SeqdApplication
import SequenceStore
import ServiceLifecycle
import Synchronization

/// Keeps the answer of `/readyz` fresh in the background, on a connection of its own: the probe
/// endpoint only reads memory, so unauthenticated requests cannot make the listener query the
/// database (one query per request was a way to load it from outside).
final class ReadinessProbe: Service, Sendable {
    /// What the last check found.
    enum Verdict: Sendable, Equatable {
        case starting
        case ready(schemaVersion: Int)
        case notReady(String)
    }

    let operations: Operations
    let interval: Duration
    /// How long one check may wait for the database.
    let timeout: Duration
    let logger: Logger
    private let state = Mutex<(verdict: Verdict, at: ContinuousClock.Instant?)>((.starting, nil))

    init(operations: Operations, interval: Duration, timeout: Duration, logger: Logger) {
        self.operations = operations
        self.interval = interval
        self.timeout = timeout
        self.logger = logger
    }

    /// The last verdict; a verdict older than three intervals (the checker itself is stuck) is
    /// not trusted.
    var verdict: Verdict {
        let (verdict, at) = state.withLock { $0 }
        guard let at else { return verdict }
        if ContinuousClock.now - at > interval * 3 + timeout {
            return .notReady("the readiness check has not completed for \(Int((ContinuousClock.now - at).components.seconds)) s")
        }
        return verdict
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.refresh()
                try await Task.sleep(for: self.interval)
            }
        }
    }

    /// Checks once and stores the verdict.
    func refresh() async {
        let verdict = await check()
        state.withLock { $0 = (verdict, ContinuousClock.now) }
    }

    private func check() async -> Verdict {
        let version: Int?
        do {
            let operations = self.operations
            version = try await withDeadline(timeout, onTimeout: { operations.database.cancel() }) {
                try await operations.schemaVersion()
            }
        } catch is DeadlineExceeded {
            return .notReady("the database did not answer within \(timeout.components.seconds) s")
        } catch let error as ApplicationError {
            return .notReady(error.kind == .unavailable ? "database unreachable" : "database error (SQLSTATE \(error.sqlState ?? "none"))")
        } catch {
            return .notReady("database error")
        }
        guard let version else { return .notReady("the database has no seqd schema yet: run `seqd migrate`") }
        guard version >= Migrations.minimumVersion else {
            return .notReady(
                "the schema is at version \(version), this binary needs at least \(Migrations.minimumVersion): run `seqd migrate`")
        }
        // Newer schemas are fine: migrations only add, so replicas keep serving during a rolling upgrade.
        return .ready(schemaVersion: version)
    }
}
