import Foundation
import Synchronization

/// Writes what many threads hand it in shared transactions, and tells each thread when its part is
/// durable: the settle writers of the sending sessions (`GroupCommit<SendResult>`).
///
/// A sending session hands over the outcome of the message it just sent and blocks in `commit`
/// until the transaction holding it has committed; only then does it take its next message. So a
/// session never has more than one message on the wire without a recorded outcome, which is what
/// bounds the duplicates a crash can cause (Postfix marks each recipient done in its queue file
/// before the next transaction for the same reason). A writer thread takes everything waiting at
/// once, so sixty sessions finishing within a commit's time share one commit, and the cost per
/// message stays that of a row rather than a transaction.
///
/// While writes fail for reasons worth retrying (the database is unreachable, a deadlock), the
/// writer retries with backoff and `isWritable` is false: sessions send nothing new until outcomes
/// can be recorded again. A part whose deadline (its lease) passes first is failed back to its
/// session; the lease rescue then treats those sends as unknown.
final class GroupCommit<Item: Sendable>: Sendable {
    /// One session's hand-over, answered once.
    private final class Part: Sendable {
        let items: [Item]
        let deadline: ContinuousClock.Instant
        private let answer = Mutex<Result<Void, any Error>?>(nil)
        private let answered = DispatchSemaphore(value: 0)

        init(items: [Item], deadline: ContinuousClock.Instant) {
            self.items = items
            self.deadline = deadline
        }

        func finish(_ result: Result<Void, any Error>) {
            answer.withLock { $0 = result }
            answered.signal()
        }

        func wait() throws {
            answered.wait()
            try answer.withLock { $0 }?.get()
        }
    }

    private struct State {
        var waiting: [Part] = []
        var stopped = false
        /// Set by `abandon`: fail what is waiting instead of retrying.
        var abandoned = false
        /// False from a failed write until the next one succeeds.
        var writable = true
    }

    private let state = Mutex(State())
    private let condition = NSCondition()
    /// Writes every item in one transaction; throws to fail them all.
    private let write: @Sendable ([Item]) throws -> Void
    /// Whether a write that failed with this error should be tried again (a lost connection,
    /// a deadlock) rather than fail its parts.
    private let isRetryable: @Sendable (any Error) -> Bool
    /// Called after each failed write, with the error and the delay before the next try.
    private let onRetry: @Sendable (any Error, Int, Double) -> Void
    /// First delay after a failed write (doubles, at most 5 s).
    private let firstRetryDelay: Double

    init(
        firstRetryDelay: Double = 0.25,
        write: @escaping @Sendable ([Item]) throws -> Void,
        isRetryable: @escaping @Sendable (any Error) -> Bool,
        onRetry: @escaping @Sendable (any Error, Int, Double) -> Void = { _, _, _ in }
    ) {
        self.firstRetryDelay = firstRetryDelay
        self.write = write
        self.isRetryable = isRetryable
        self.onRetry = onRetry
    }

    /// Hands `items` to the writer and blocks until they are committed (returns) or cannot be
    /// (throws: the write's error, or `Stopped` when the writer is gone). `deadline` is how long
    /// they may wait through retries.
    func commit(_ items: [Item], deadline: ContinuousClock.Instant) throws {
        guard !items.isEmpty else { return }
        let part = Part(items: items, deadline: deadline)
        let accepted = state.withLock { state in
            guard !state.stopped else { return false }
            state.waiting.append(part)
            return true
        }
        guard accepted else { throw Stopped() }
        signal()
        try part.wait()
    }

    /// False while writes fail: nothing new should be sent, since its outcome could not be recorded.
    var isWritable: Bool { state.withLock { $0.writable } }

    /// Blocks until writes succeed again or `timeout` passes; returns `isWritable`.
    func waitUntilWritable(timeout: TimeInterval) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while !isWritable && !state.withLock({ $0.stopped }) {
            if !condition.wait(until: deadline) { break }
        }
        return isWritable
    }

    /// A writer's loop, on a thread of its own: returns once `stop` was called and everything
    /// handed over before it is written or failed. Several writers may run at once, each with its
    /// own `write` (its own connection; the one given at init when nil): while one commits, the
    /// next takes what arrived meanwhile, so a part waits for at most one commit besides its own.
    func run(writingWith writer: (@Sendable ([Item]) throws -> Void)? = nil) {
        let write = writer ?? self.write
        var failures = 0
        while true {
            condition.lock()
            while state.withLock({ $0.waiting.isEmpty && !$0.stopped }) { condition.wait() }
            condition.unlock()
            let (parts, stopped) = state.withLock { state in
                defer { state.waiting = [] }
                return (state.waiting, state.stopped)
            }
            if parts.isEmpty {
                if stopped { return }  // nothing left
                continue  // another writer took them
            }
            do {
                try write(parts.flatMap(\.items))
                failures = 0
                setWritable(true)
                parts.forEach { $0.finish(.success(())) }
            } catch where isRetryable(error) {
                failures += 1
                setWritable(false)
                let delay = min(5, firstRetryDelay * pow(2, Double(failures - 1)))
                onRetry(error, parts.count, delay)
                let now = ContinuousClock.now
                let abandoned = state.withLock { $0.abandoned }
                let (expired, alive) = (parts.filter { abandoned || $0.deadline <= now }, parts.filter { !abandoned && $0.deadline > now })
                expired.forEach { $0.finish(.failure(error)) }
                // Parts handed over meanwhile join the next try.
                state.withLock { $0.waiting.insert(contentsOf: alive, at: 0) }
                pause(delay)
            } catch {
                // About the data: one part's outcome must not fail the others, so each is
                // written alone and only the one at fault gets the error.
                failures = 0
                for part in parts {
                    part.finish(Result { try write(part.items) })
                }
            }
        }
    }

    /// Accepts nothing more; `run` returns when what it holds is written or failed.
    func stop() {
        state.withLock { $0.stopped = true }
        signal()
    }

    /// Stops retrying: what waits is failed back to its sessions at the next try (shutdown's grace
    /// period is over while the database is away).
    func abandon() {
        state.withLock {
            $0.stopped = true
            $0.abandoned = true
        }
        signal()
    }

    private func setWritable(_ writable: Bool) {
        let changed = state.withLock { state in
            defer { state.writable = writable }
            return state.writable != writable
        }
        if changed { signal() }
    }

    private func signal() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// Waits `seconds` before the next try (hand-overs meanwhile do not cut it short).
    private func pause(_ seconds: Double) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        defer { condition.unlock() }
        while Date() < deadline && !state.withLock({ $0.abandoned }) {
            if !condition.wait(until: deadline) { break }
        }
    }

    /// The writer stopped before this part was handed over.
    struct Stopped: Error, CustomStringConvertible {
        var description: String { "the settle writer has stopped" }
    }
}
