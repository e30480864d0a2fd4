import Foundation
import Logging
import Metrics
import Testing
@testable import SequenceDaemon

@Suite("circuit breaker")
struct CircuitBreakerTests {
    func breaker(_ backoff: Duration = .milliseconds(50)) -> CircuitBreaker {
        CircuitBreaker(initialBackoff: backoff, logger: Logger(label: "test"), gauge: Gauge(label: "test_circuit_open"))
    }

    @Test("a transport fault opens it: no permits while open, then exactly one probe; a sent probe closes it")
    func opensProbesCloses() async throws {
        let subject = breaker()
        #expect(subject.permit(wanted: 5).count == 5)
        subject.record(sent: 0, faults: ["connection refused"])
        #expect(subject.mode == .open)
        #expect(subject.permit(wanted: 5).count == 0)
        try await Task.sleep(for: .milliseconds(120))
        #expect(subject.permit(wanted: 5).count == 1, "one probe")
        #expect(subject.permit(wanted: 5).count == 0, "only one probe in flight")
        subject.record(sent: 1, faults: [])
        #expect(subject.mode == .closed)
        #expect(subject.permit(wanted: 5).count == 5)
    }

    @Test("a probe that found nothing to send lets the next one through")
    func cancelledProbe() async throws {
        let subject = breaker()
        subject.record(sent: 0, faults: ["refused"])
        try await Task.sleep(for: .milliseconds(120))
        #expect(subject.permit(wanted: 1).count == 1)
        subject.cancelProbe()
        #expect(subject.permit(wanted: 1).count == 1)
    }
}
