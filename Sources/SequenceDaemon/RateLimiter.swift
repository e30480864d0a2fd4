import Foundation
import Synchronization

/// Paces one process's sends: at most `delivery.rate_limit` messages a second (off by default),
/// and slower while the relay pushes back.
///
/// A throttling reply (SMTP 421 or 454 4.7.0, HTTP 429) halves the rate the process sends at —
/// the rate it measured over the last ten seconds, or the cap already in force — and holds every
/// session for the `Retry-After` the relay gave, or a second. Each ten seconds without another
/// throttle raise the cap by a quarter; once it is twice what the sessions actually send, it no
/// longer binds and is dropped. (Additive-increase would take minutes to climb back from a few
/// messages a second; a quarter per ten seconds recovers a halving in about thirty.)
///
/// Pure bookkeeping with the time passed in, so tests walk it without waiting; sessions call
/// `reserve` and sleep until the instant it returns.
final class RateLimiter: Sendable {
    private struct State {
        var nextSlot: ContinuousClock.Instant
        var pausedUntil: ContinuousClock.Instant
        /// The throttle-derived cap in messages per second; nil when none binds.
        var cap: Double?
        var lastThrottle: ContinuousClock.Instant?
        var lastRaise: ContinuousClock.Instant?
        /// Sends per whole second over the last `window` seconds, for the measured rate.
        var buckets: [Int64: Int] = [:]
    }

    /// `delivery.rate_limit`; nil for none.
    let configuredRate: Double?
    private let state: Mutex<State>
    /// Whole seconds count from here (the limiter's creation), so they are never negative.
    private let origin: ContinuousClock.Instant
    private static let window: Int64 = 10
    private static let minimumRate = 0.1

    init(messagesPerSecond: Double?, now: ContinuousClock.Instant = .now) {
        configuredRate = messagesPerSecond.flatMap { $0 > 0 ? $0 : nil }
        state = Mutex(State(nextSlot: now, pausedUntil: now))
        origin = now
    }

    /// The rate in force now (messages per second), nil when unlimited.
    var rate: Double? {
        state.withLock { Self.effectiveRate(configured: configuredRate, cap: $0.cap) }
    }

    /// Books the next send and returns when it may start (`now` or later).
    func reserve(now: ContinuousClock.Instant = .now) -> ContinuousClock.Instant {
        state.withLock { state in
            raiseCapIfCalm(&state, now: now)
            let start = max(now, state.pausedUntil)
            guard let rate = Self.effectiveRate(configured: configuredRate, cap: state.cap) else { return start }
            let slot = max(start, state.nextSlot)
            state.nextSlot = slot + .nanoseconds(Int64(1e9 / rate))
            return slot
        }
    }

    /// A message went out (any outcome but a throttle): counts toward the measured rate.
    func sent(now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            let bucket = second(now)
            state.buckets[bucket, default: 0] += 1
            if state.buckets.count > Self.window + 1 { state.buckets = state.buckets.filter { $0.key > bucket - Self.window } }
        }
    }

    /// The relay asked to slow down: halve the rate and hold every send until `retryAfter` (or a
    /// second) has passed. Returns the new cap.
    @discardableResult
    func throttled(retryAfter: Duration?, now: ContinuousClock.Instant = .now) -> Double {
        state.withLock { state in
            let measured = measuredRate(state.buckets, now: now)
            let current = [state.cap, configuredRate, measured > 0 ? measured : nil].compactMap { $0 }.min() ?? 1
            let cap = max(Self.minimumRate, current / 2)
            state.cap = cap
            state.lastThrottle = now
            state.lastRaise = now
            state.pausedUntil = max(state.pausedUntil, now + max(retryAfter ?? .seconds(1), .seconds(1)))
            state.nextSlot = max(state.nextSlot, state.pausedUntil)
            return cap
        }
    }

    /// Every ten calm seconds the cap grows by a quarter; dropped once it no longer binds.
    private func raiseCapIfCalm(_ state: inout State, now: ContinuousClock.Instant) {
        guard let cap = state.cap, let lastRaise = state.lastRaise, now - lastRaise >= .seconds(Self.window) else { return }
        let raised = cap * 1.25
        let measured = measuredRate(state.buckets, now: now)
        if let configuredRate, raised >= configuredRate {
            state.cap = nil
        } else if configuredRate == nil, raised >= 2 * measured {
            state.cap = nil
        } else {
            state.cap = raised
        }
        state.lastRaise = now
    }

    private static func effectiveRate(configured: Double?, cap: Double?) -> Double? {
        [configured, cap].compactMap { $0 }.min()
    }

    /// Messages per second over the last full window.
    private func measuredRate(_ buckets: [Int64: Int], now: ContinuousClock.Instant) -> Double {
        let bucket = second(now)
        let total = buckets.filter { $0.key > bucket - Self.window && $0.key <= bucket }.values.reduce(0, +)
        return Double(total) / Double(Self.window)
    }

    private func second(_ instant: ContinuousClock.Instant) -> Int64 {
        (instant - origin).components.seconds
    }
}
