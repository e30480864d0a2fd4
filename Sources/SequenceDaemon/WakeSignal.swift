import Foundation

/// Wakes waiting worker threads: the poll timer, NOTIFY and other workers call `wake()`, and every
/// thread blocked in `wait` returns. A wake that arrives while nobody waits is not lost: the next
/// `wait` returns at once, so work announced between two polls is never missed.
final class WakeSignal: @unchecked Sendable {
    // Safe to share: every field is read and written under `condition`.
    private let condition = NSCondition()
    private var generation: UInt64 = 0
    private var seen = [ObjectIdentifier: UInt64]()
    private var stopped = false

    /// Wakes every waiter.
    func wake() {
        condition.lock()
        generation &+= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Wakes every waiter for good: `wait` returns false from now on.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    var isStopped: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopped
    }

    /// Blocks until a wake newer than the caller's last one, or `timeout`; false once stopped.
    /// `waiter` identifies the calling loop so each loop sees each wake once.
    @discardableResult
    func wait(_ waiter: AnyObject, timeout: TimeInterval) -> Bool {
        let id = ObjectIdentifier(waiter)
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        let last = seen[id] ?? 0
        while !stopped && generation == last {
            if !condition.wait(until: deadline) { break }
        }
        seen[id] = generation
        return !stopped
    }

    /// Sleeps `seconds` unless stopped first (backoff after errors); false once stopped.
    @discardableResult
    func sleep(_ seconds: TimeInterval) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        defer { condition.unlock() }
        while !stopped {
            if !condition.wait(until: deadline) { break }
        }
        return !stopped
    }
}
