import Foundation
import SequenceStore
import Synchronization

/// A one-line progress display on stderr: redrawn in place on a terminal, a plain line every few
/// seconds otherwise (CI logs, pipes).
final class RunProgressDisplay: Sendable {
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private let lastPrinted = Mutex<ContinuousClock.Instant?>(nil)

    func show(_ progress: RunProgress) {
        let done = progress.total - progress.remaining
        let width = 30
        let filled = progress.total == 0 ? width : width * done / progress.total
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        let text = "[\(bar)] \(done)/\(progress.total) enrollments finished, \(progress.sentDeliveries) messages sent"
            + (progress.failed > 0 ? ", \(progress.failed) failed" : "")
        if isTerminal {
            FileHandle.standardError.write(Data("\r\(text)".utf8))
            return
        }
        let now = ContinuousClock.now
        let due = lastPrinted.withLock { last in
            guard last.map({ now - $0 >= .seconds(3) }) ?? true else { return false }
            last = now
            return true
        }
        if due || progress.remaining == 0 { FileHandle.standardError.write(Data("\(text)\n".utf8)) }
    }

    func finish() {
        if isTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// Set once by a signal handler, read by the command's wait loop.
final class StopRequest: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

/// "migrating: 15000/100000 enrollments (15%)" redrawn in place on stderr, for commands that work
/// through a large set in chunks. Only on a terminal (nil otherwise): a log or a pipe gets the
/// command's summary and nothing else.
final class ChunkProgress: Sendable {
    private let noun: String
    private let shown = Atomic<Bool>(false)

    init?(noun: String) {
        guard isatty(STDERR_FILENO) == 1 else { return nil }
        self.noun = noun
    }

    func show(done: Int, of total: Int) {
        let percent = total == 0 ? 100 : 100 * done / total
        shown.store(true, ordering: .relaxed)
        FileHandle.standardError.write(Data("\r\(done)/\(total) \(noun) (\(percent)%)".utf8))
    }

    /// Ends the line, so what follows starts on its own.
    func finish() {
        if shown.exchange(false, ordering: .relaxed) { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
