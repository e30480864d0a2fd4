import Dispatch
import Foundation

/// The daemon's heartbeat: a `DispatchSourceTimer` on a private serial queue that fires every
/// `interval` ± 20% (jitter keeps replicas from polling in lockstep) and calls `tick`.
final class PollTimer: @unchecked Sendable {
    // Safe to share: `timer` is created in init and only touched on `queue` afterwards.
    private let queue = DispatchQueue(label: "seqd.poll-timer")
    private let timer: any DispatchSourceTimer
    private let interval: TimeInterval

    init(interval: TimeInterval, tick: @escaping @Sendable () -> Void) {
        self.interval = max(0.01, interval)
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler { [weak self] in
            tick()
            self?.scheduleNext()
        }
    }

    func start() {
        queue.async {
            self.scheduleNext()
            self.timer.resume()
        }
    }

    func stop() {
        queue.sync { timer.cancel() }
    }

    private func scheduleNext() {
        let jittered = interval * Double.random(in: 0.8...1.2)
        timer.schedule(deadline: .now() + jittered, leeway: .milliseconds(Int(jittered * 50)))
    }
}
