import Foundation
import Synchronization
import Testing
@testable import SequenceDaemon

/// The settle writer without a database: what sessions rely on when they hand over outcomes.
@Suite("settle writer (group commit)")
struct GroupCommitTests {
    struct Unreachable: Error {}
    struct BadRow: Error {}

    /// Starts `writer.run()` on a thread; the returned semaphore signals when it returns.
    func start<T>(_ writer: GroupCommit<T>) -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        Thread {
            writer.run()
            done.signal()
        }.start()
        return done
    }

    /// Runs `count` committers at once on threads of their own; returns their errors (nil = committed).
    func commitConcurrently(_ writer: GroupCommit<Int>, count: Int, deadline: Duration = .seconds(30)) -> [(any Error)?] {
        let results = Box([(any Error)?](repeating: nil, count: count))
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            Thread {
                do { try writer.commit([index], deadline: .now + deadline) } catch { results.withLock { $0[index] = error } }
                group.leave()
            }.start()
        }
        group.wait()
        return results.withLock { $0 }
    }

    @Test("sixty sessions handing over at once share a few commits, and each returns only after its own is written")
    func sharesCommits() {
        let written = Box<[[Int]]>([])
        let writer = GroupCommit<Int>(
            write: { items in
                Thread.sleep(forTimeInterval: 0.02)  // a commit's time, during which others arrive
                written.withLock { $0.append(items) }
            },
            isRetryable: { _ in false })
        let done = start(writer)
        let errors = commitConcurrently(writer, count: 60)
        writer.stop()
        done.wait()
        #expect(errors.allSatisfy { $0 == nil })
        let batches = written.withLock { $0 }
        #expect(batches.flatMap { $0 }.sorted() == Array(0..<60), "every item written exactly once")
        #expect(batches.count < 30, "commits are shared: \(batches.count) for 60 hand-overs")
    }

    @Test("while writes fail for a retryable reason nothing is writable; the items wait and go in once it works")
    func retriesThroughAnOutage() throws {
        let failuresLeft = Box(3)
        let written = Box<[Int]>([])
        let retries = Box(0)
        let writer = GroupCommit<Int>(
            firstRetryDelay: 0.01,
            write: { items in
                try failuresLeft.withLock { left in
                    if left > 0 {
                        left -= 1
                        throw Unreachable()
                    }
                }
                written.withLock { $0 += items }
            },
            isRetryable: { $0 is Unreachable },
            onRetry: { _, _, _ in retries.withLock { $0 += 1 } })
        let done = start(writer)
        #expect(writer.isWritable)
        let sawUnwritable = Box(false)
        let watcher = Thread {
            while written.withLock({ $0.isEmpty }) {
                if !writer.isWritable { sawUnwritable.withLock { $0 = true } }
                usleep(500)
            }
        }
        watcher.start()
        try writer.commit([7], deadline: .now + .seconds(10))
        #expect(written.withLock { $0 } == [7])
        #expect(retries.withLock { $0 } == 3)
        #expect(sawUnwritable.withLock { $0 }, "sessions were told not to send while outcomes could not be recorded")
        #expect(writer.isWritable)
        writer.stop()
        done.wait()
    }

    @Test("a part whose deadline passes during an outage fails back to its session instead of waiting for ever")
    func deadlineEndsTheWait() {
        let writer = GroupCommit<Int>(firstRetryDelay: 0.01, write: { _ in throw Unreachable() }, isRetryable: { $0 is Unreachable })
        let done = start(writer)
        let started = ContinuousClock.now
        #expect(throws: Unreachable.self) { try writer.commit([1], deadline: .now + .milliseconds(200)) }
        #expect(ContinuousClock.now - started < .seconds(5))
        writer.abandon()
        done.wait()
    }

    @Test("an error about one part's data fails only that part: the others are written on their own")
    func badPartIsolated() {
        let written = Box<[Int]>([])
        let writer = GroupCommit<Int>(
            write: { items in
                Thread.sleep(forTimeInterval: 0.02)
                if items.contains(13) { throw BadRow() }
                written.withLock { $0 += items }
            },
            isRetryable: { _ in false })
        let done = start(writer)
        let errors = commitConcurrently(writer, count: 20)
        writer.stop()
        done.wait()
        #expect(errors.enumerated().allSatisfy { index, error in (index == 13) == (error is BadRow) })
        #expect(written.withLock { $0 }.sorted() == Array(0..<20).filter { $0 != 13 })
    }

    @Test("after stop, what was handed over is still written; new hand-overs are refused")
    func stopDrains() throws {
        let written = Box<[Int]>([])
        let writer = GroupCommit<Int>(write: { items in written.withLock { $0 += items } }, isRetryable: { _ in false })
        let done = start(writer)
        try writer.commit([1, 2], deadline: .now + .seconds(5))
        writer.stop()
        done.wait()
        #expect(written.withLock { $0 } == [1, 2])
        #expect(throws: GroupCommit<Int>.Stopped.self) { try writer.commit([3], deadline: .now + .seconds(5)) }
    }
}
