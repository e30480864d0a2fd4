import Foundation
import ServiceLifecycle
import Synchronization

/// Worker loops (dedicated threads, since libpq and libcurl block) as one service of the daemon's
/// `ServiceGroup`: started together; told to stop together when the group shuts down gracefully
/// (SIGTERM), each finishing the round it is in; on cancellation (the grace period is over) their
/// statements are cancelled and the service stops waiting for them soon after.
///
/// Loops of one kind form one service, because the group shuts services down one after another:
/// 256 sessions as 256 services would stop one by one.
struct LoopsService: Service {
    let name: String
    let loops: [WorkerLoop]
    /// Stopping these ends the loops' waits and their `while` (each loop waits on one of them).
    let stopSignals: [WakeSignal]
    /// Runs before the loops start (timers, listeners).
    var beforeStart: @Sendable () -> Void = {}
    /// Runs when graceful shutdown reaches this service, before the loops are told to stop.
    var onShutdown: @Sendable () -> Void = {}
    /// Interrupts what the loops block on (`PQcancel`), once the grace period is over.
    var onCancel: @Sendable () -> Void = {}
    /// Runs after every loop has exited (or been abandoned), before `run` returns.
    var afterStop: @Sendable () -> Void = {}

    func run() async throws {
        beforeStart()
        loops.forEach { $0.start() }
        let cancelled = CancelFlag()
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await join(cancelled)
            } onGracefulShutdown: {
                onShutdown()
                stopSignals.forEach { $0.stop() }
            }
        } onCancel: {
            stopSignals.forEach { $0.stop() }
            onCancel()
            cancelled.set()
        }
        afterStop()
    }

    /// Waits for every loop to exit, off the concurrency pool; after cancellation, for two more
    /// seconds at most (a loop stuck in a transport call is abandoned; its lease will expire).
    private func join(_ cancelled: CancelFlag) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread {
                var pending = loops
                while !pending.isEmpty {
                    if let at = cancelled.at, ContinuousClock.now - at > .seconds(2) { break }
                    // Waits a tenth of a second for the first loop only and looks at the others
                    // without waiting, so a pass over 256 running sessions takes 0.1 s, not 25.6 s
                    // (the cancellation bound is checked once a pass). A loop is joined once.
                    pending = pending.enumerated().filter { index, loop in
                        !loop.join(until: .now() + (index == 0 ? 0.1 : 0))
                    }.map(\.element)
                }
                continuation.resume()
            }
            thread.name = "seqd.join.\(name)"
            thread.start()
        }
    }

    /// When cancellation arrived, if it did.
    final class CancelFlag: Sendable {
        private let instant = Mutex<ContinuousClock.Instant?>(nil)
        func set() { instant.withLock { $0 = $0 ?? .now } }
        var at: ContinuousClock.Instant? { instant.withLock { $0 } }
    }
}

/// A blocking body on a dedicated thread as a service: `GroupCommit.run` for the settle writer,
/// which returns once `stop` (called on graceful shutdown) has drained it, or at once after
/// `cancel` (the grace period is over).
struct ThreadService: Service {
    let name: String
    let body: @Sendable () -> Void
    let stop: @Sendable () -> Void
    let cancel: @Sendable () -> Void

    func run() async throws {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let thread = Thread {
                        body()
                        continuation.resume()
                    }
                    thread.name = name
                    thread.start()
                }
            } onGracefulShutdown: {
                stop()
            }
        } onCancel: {
            cancel()
        }
    }
}
