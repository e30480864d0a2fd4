import Foundation
import CoreMetrics
import Logging
import Metrics
import Synchronization

/// Stops sending while the transport itself is failing (connection refused, TLS, AUTH, MAIL-stage
/// errors): no attempts are spent and nothing is lost. After a backoff one probe is let through;
/// a success closes the circuit, another fault doubles the backoff (capped).
final class CircuitBreaker: Sendable {
    enum Mode: Equatable { case closed, open, probing }

    private struct State {
        var mode = Mode.closed
        var reopenAt = ContinuousClock.now
        var backoff: Duration
        var probeInFlight = false
    }

    private let state: Mutex<State>
    private let initialBackoff: Duration
    private let maximumBackoff: Duration = .seconds(60)
    private let logger: Logger
    /// 1 while open or probing, 0 while closed.
    private let gauge: Gauge

    init(initialBackoff: Duration, logger: Logger, gauge: Gauge) {
        self.initialBackoff = initialBackoff
        self.state = Mutex(State(backoff: initialBackoff))
        self.logger = logger
        self.gauge = gauge
        gauge.record(0)
    }

    var mode: Mode { state.withLock { $0.mode } }

    /// How many deliveries a sender may claim now: all it wants while closed, one probe when the
    /// backoff has passed, none while open (with the time left to wait).
    func permit(wanted: Int) -> (count: Int, waitSeconds: Double) {
        state.withLock { state in
            switch state.mode {
            case .closed:
                return (wanted, 0)
            case .open, .probing:
                let now = ContinuousClock.now
                if state.probeInFlight || now < state.reopenAt {
                    let left = max(0.05, Double((state.reopenAt - now).components.seconds))
                    return (0, state.probeInFlight ? 0.2 : left)
                }
                state.mode = .probing
                state.probeInFlight = true
                return (1, 0)
            }
        }
    }

    /// Feeds the outcome of a settled batch into the breaker.
    func record(sent: Int, faults: [String]) {
        let event: String? = state.withLock { state in
            defer { state.probeInFlight = false }
            if let reason = faults.first {
                let wasClosed = state.mode == .closed
                if !wasClosed { state.backoff = min(state.backoff * 2, maximumBackoff) }
                state.mode = .open
                state.reopenAt = ContinuousClock.now + state.backoff
                return wasClosed ? "circuit opened: \(reason)" : nil
            }
            if sent > 0 && state.mode != .closed {
                state.mode = .closed
                state.backoff = initialBackoff
                return "circuit closed: the transport accepted a message"
            }
            return nil
        }
        gauge.record(mode == .closed ? 0 : 1)
        if let event { logger.warning("\(event)") }
    }

    /// A probe ended without an outcome (e.g. nothing was claimed): let the next one through.
    func cancelProbe() {
        state.withLock { $0.probeInFlight = false }
    }
}
