import Foundation
import Testing
@testable import SequenceDaemon

/// The rate limiter walked with explicit instants: no test waits for the clock.
@Suite("rate limiter")
struct RateLimiterTests {
    let start = ContinuousClock.now

    @Test("without a limit every send may start at once")
    func unlimited() {
        let limiter = RateLimiter(messagesPerSecond: nil, now: start)
        for _ in 0..<100 { #expect(limiter.reserve(now: start) == start) }
        #expect(limiter.rate == nil)
    }

    @Test("delivery.rate_limit 4: slots a quarter second apart, whoever asks")
    func spacesSends() {
        let limiter = RateLimiter(messagesPerSecond: 4, now: start)
        let slots = (0..<8).map { _ in limiter.reserve(now: start) }
        for (index, slot) in slots.enumerated() {
            #expect(slot == start + .milliseconds(250 * index))
        }
    }

    @Test("a throttle halves the measured rate and holds everything for Retry-After")
    func throttleHalvesAndPauses() {
        let limiter = RateLimiter(messagesPerSecond: nil, now: start)
        // 20 messages a second for ten seconds.
        for second in 0..<10 {
            for _ in 0..<20 { limiter.sent(now: start + .seconds(second)) }
        }
        let at = start + .seconds(10)
        let cap = limiter.throttled(retryAfter: .seconds(5), now: at)
        #expect(abs(cap - 9.0) < 0.01, "half of 18/s (180 sends in the last 10 whole seconds): \(cap)")
        let first = limiter.reserve(now: at)
        #expect(first == at + .seconds(5), "nothing before Retry-After")
        let second = limiter.reserve(now: at)
        #expect(second > first, "then paced at the cap")
        // A second throttle halves the cap again, not the measured rate.
        let lower = limiter.throttled(retryAfter: nil, now: at)
        #expect(abs(lower - cap / 2) < 0.01)
    }

    @Test("the cap grows by a quarter every ten calm seconds and is dropped once it no longer binds")
    func recovers() {
        let limiter = RateLimiter(messagesPerSecond: 10, now: start)
        let cap = limiter.throttled(retryAfter: nil, now: start)
        #expect(cap == 5)
        _ = limiter.reserve(now: start + .seconds(11))
        #expect(limiter.rate == 6.25)
        _ = limiter.reserve(now: start + .seconds(22))
        #expect(limiter.rate == 7.8125)
        _ = limiter.reserve(now: start + .seconds(33))
        #expect(limiter.rate! > 9.7 && limiter.rate! < 9.8)
        _ = limiter.reserve(now: start + .seconds(44))
        #expect(limiter.rate == 10, "back to the configured rate")
    }
}
