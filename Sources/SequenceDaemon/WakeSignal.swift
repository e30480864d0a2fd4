import Foundation

/// Wakes waiting worker threads. `wake()` returns every thread blocked in `wait`; `wakeOne()`
/// returns one, for work that one loop can take (a batch just queued, a NOTIFY): the others
/// would only race it and commit empty claims, and a loop that finds a full batch wakes the next
/// one itself, so a backlog still brings them all in. A wake that arrives while nobody waits is
/// not lost: the next `wait` returns at once, so work announced between two polls is never missed.
final class WakeSignal: @unchecked Sendable {
    // Safe to share: every field is read and written under `condition`.
    private let condition = NSCondition()
    private var generation: UInt64 = 0
    private var seen = [ObjectIdentifier: UInt64]()
    /// `wakeOne()` calls not yet taken by a waiter; at most one per loop, since a loop that takes
    /// one looks for all the work there is.
    private var tickets = 0
    private var stopped = false

    /// Wakes every waiter.
    func wake() {
        condition.lock()
        generation &+= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Wakes one waiter, or lets the next `wait` return at once when none waits.
    func wakeOne() {
        condition.lock()
        tickets = min(tickets + 1, max(1, seen.count))
        // Every waiter looks; the first to take the lock takes the ticket, the rest wait on.
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
        while !stopped && generation == last && tickets == 0 {
            if !condition.wait(until: deadline) { break }
        }
        if generation == last && tickets > 0 { tickets -= 1 }
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
