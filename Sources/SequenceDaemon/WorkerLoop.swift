import Foundation
import Logging
import Postgres
import Synchronization

/// One dedicated thread that repeats `body` while it finds work and waits on `wake` when it
/// finds none. Database errors are logged and retried with capped exponential backoff; a lost
/// connection reconnects on the next round (the `ConfinedConnection` drops it).
final class WorkerLoop: @unchecked Sendable {
    // Safe to share: `thread` is started once; `finished` is a semaphore.
    let name: String
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?
    /// Uptime (ns) at the end of the last round, busy or idle: a loop that stops beating is stuck
    /// (the watchdog and `/healthz` read it).
    private let lastBeat = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)

    /// - Parameters:
    ///   - body: one round of work; returns true when it did something (poll again at once).
    ///   - onExit: runs on the loop's thread after the last round (work a round left to the next).
    init(
        name: String, wake: WakeSignal, idleTimeout: TimeInterval, logger: Logger,
        body: @escaping @Sendable () throws -> Bool, onExit: (@Sendable () throws -> Void)? = nil
    ) {
        self.name = name
        let thread = Thread { [finished, weak self] in
            var failures = 0
            let waiter = NSObject()
            while !wake.isStopped {
                self?.lastBeat.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
                do {
                    let didWork = try body()
                    if failures > 0 { logger.notice("\(name): working again") }
                    failures = 0
                    if !didWork { wake.wait(waiter, timeout: idleTimeout) }
                } catch {
                    failures += 1
                    let delay = min(30, 0.25 * pow(2, Double(min(failures, 8))))
                    if failures == 1 || failures % 10 == 0 {
                        logger.error(
                            "\(name): \(WorkerLoop.describe(error)); retrying in \(String(format: "%.1f", delay))s",
                            metadata: WorkerLoop.metadata(error))
                    }
                    wake.sleep(delay)
                }
            }
            do {
                try onExit?()
            } catch {
                logger.error("\(name): on exit: \(WorkerLoop.describe(error))", metadata: WorkerLoop.metadata(error))
            }
            finished.signal()
        }
        thread.name = name
        self.thread = thread
    }

    func start() { thread?.start() }

    /// Seconds since the loop last finished a round.
    var secondsSinceLastBeat: Double {
        Double(DispatchTime.now().uptimeNanoseconds &- lastBeat.load(ordering: .relaxed)) / 1e9
    }

    /// Waits until the loop has exited, at most until `deadline`; false on timeout.
    func join(until deadline: DispatchTime) -> Bool {
        finished.wait(timeout: deadline) == .success
    }

    /// A log-safe description: a server error's DETAIL can quote row values (addresses), so only
    /// its primary message and SQLSTATE are logged.
    static func describe(_ error: any Error) -> String {
        if let database = error as? PostgresError {
            if database.isConnectionError { return "database connection lost: \(database.message)" }
            return "database error: \(database.message)"
        }
        return String(describing: error)
    }

    static func metadata(_ error: any Error) -> Logger.Metadata {
        guard let database = error as? PostgresError, let state = database.sqlState else { return [:] }
        return ["sqlstate": "\(state)"]
    }
}

/// State that belongs to exactly one worker loop (an `Advancer` with its definition cache). The
/// compiler cannot see thread confinement; this box states it: only the owning loop's thread
/// touches `value`.
final class LoopOwned<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
