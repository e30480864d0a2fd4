import Delivery
import Foundation
import Logging
import Mail
import Metrics
import SequenceEngine
import SequenceStore
import Synchronization
import Testing
@testable import SequenceDaemon

/// A sending session against a scripted transport and an in-memory settle writer: the duplicate
/// bound is a property of the session's order of work, so it is checked here without a database.
@Suite("sending session")
struct SendingSessionTests {
    /// Records each send with how many outcomes were committed at that moment.
    final class ScriptedTransport: MailTransport {
        let name: String
        let script: Mutex<[TransportOutcome]>
        let committedAtSend = Mutex<[Int]>([])
        let committed: @Sendable () -> Int

        init(name: String, script: [TransportOutcome], committed: @escaping @Sendable () -> Int) {
            self.name = name
            self.script = Mutex(script)
            self.committed = committed
        }

        func send(_ message: ComposedMessage) -> TransportOutcome {
            committedAtSend.withLock { $0.append(committed()) }
            return script.withLock { $0.isEmpty ? .sent(providerID: nil) : $0.removeFirst() }
        }
    }

    /// What the settle writer committed, in order.
    final class Written: Sendable {
        private let results = Mutex<[SendResult]>([])
        func append(_ more: [SendResult]) { results.withLock { $0 += more } }
        var all: [SendResult] { results.withLock { $0 } }
        var count: Int { results.withLock { $0.count } }
    }

    final class Rig: Sendable {
        let queue: Handoff
        let writer: GroupCommit<SendResult>
        let written: Written
        let limiter: RateLimiter
        let done: DispatchSemaphore

        init(queue: Handoff, writer: GroupCommit<SendResult>, written: Written, limiter: RateLimiter, done: DispatchSemaphore) {
            self.queue = queue
            self.writer = writer
            self.written = written
            self.limiter = limiter
            self.done = done
        }
    }

    static let message = try! JSONDecoder().decode(
        StoredMessage.self, from: Data(#"{"subject": "Hi", "text": "Hello", "from_address": "team@example.com"}"#.utf8))

    static func delivery(_ id: Int64, kind: DeliveryKind = .email) -> ClaimedDelivery {
        ClaimedDelivery(
            id: id, enrollmentID: id, stepKey: "hello", kind: kind, deliveryKey: "i-e\(id)-hello", token: 1,
            message: message,
            toAddress: "c\(id)@example.com", toName: nil, sentKeysByStep: [:], claimedAt: Date())
    }

    func rig(count: Int, rate: Double? = nil, write: (@Sendable ([SendResult]) throws -> Void)? = nil) -> Rig {
        let queue = Handoff(capacity: 1_000, senders: 1, leaseSeconds: 30)
        let written = Written()
        let writer = GroupCommit<SendResult>(
            firstRetryDelay: 0.01,
            write: { results in
                try write?(results)
                written.append(results)
            },
            isRetryable: { _ in true })
        let done = DispatchSemaphore(value: 0)
        Thread {
            writer.run()
            done.signal()
        }.start()
        let room = queue.reserve(upTo: count)
        _ = queue.deliver((1...Int64(count)).map { Self.delivery($0) }, reserved: room, leaseStart: .now, othersPending: false)
        return Rig(queue: queue, writer: writer, written: written, limiter: RateLimiter(messagesPerSecond: rate), done: done)
    }

    func session(_ rig: Rig, transport: any MailTransport) -> SendingSession {
        SendingSession(
            name: "send-0", transport: transport,
            dependencies: .init(
                queue: rig.queue, settles: rig.writer,
                breaker: CircuitBreaker(initialBackoff: .seconds(1), logger: Logger(label: "test"), gauge: Gauge(label: "test_open")),
                limiter: rig.limiter,
                builder: MessageBuilder(
                    messageIDKey: MessageID.Key(secret: "test"), unsubscribeBaseURL: "https://example.com", unsubscribeMailto: nil,
                    unsubscribeToken: { "t\($0)" }),
                metrics: DaemonMetrics(), counters: DaemonCounters(), claimWake: WakeSignal(), sessionWake: WakeSignal(),
                advanceWake: WakeSignal(), leaseTimeout: 30, batchSeconds: 1, batchLimit: 100, logger: Logger(label: "test")))
    }

    func drain(_ session: SendingSession, _ rig: Rig) {
        let running = WakeSignal()
        while !rig.queue.isEmpty { _ = session.round(stopping: running) }
        rig.writer.stop()
        rig.done.wait()
    }

    @Test("a local session's batch is committed after each webhook request, so none waits on the wire behind others")
    func webhooksEndCommittedParts() {
        let now = ContinuousClock.now
        let items = [1, 2, 3, 4, 5].map { id in
            Handoff.Item(delivery: Self.delivery(Int64(id), kind: id == 2 || id == 3 ? .webhook : .email), leaseStart: now, checkedAt: now)
        }
        #expect(SendingSession.committedParts(items).map { $0.map(\.delivery.id) } == [[1, 2], [3], [4, 5]])
        #expect(SendingSession.committedParts(Array(items.suffix(2))).map { $0.map(\.delivery.id) } == [[4, 5]])
    }

    @Test("on a network transport each message is sent only after the previous one's outcome is committed")
    func oneOnTheWire() {
        let rig = rig(count: 20)
        let transport = ScriptedTransport(name: "smtp", script: [], committed: { rig.written.count })
        drain(session(rig, transport: transport), rig)
        #expect(transport.committedAtSend.withLock { $0 } == Array(0..<20), "send n found n outcomes committed")
        #expect(rig.written.all.map(\.attemptOutcome) == Array(repeating: .sent, count: 20))
    }

    @Test("on a local transport a session sends a batch and commits it at once")
    func localBatches() {
        let rig = rig(count: 20)
        let transport = ScriptedTransport(name: "null", script: [], committed: { rig.written.count })
        drain(session(rig, transport: transport), rig)
        #expect(transport.committedAtSend.withLock { $0 }.first == 0)
        #expect(transport.committedAtSend.withLock { $0 }.filter { $0 == 0 }.count == 10, "the first batch is 10, unmeasured")
        #expect(rig.written.all.count == 20)
    }

    @Test("while outcomes cannot be recorded the session sends nothing new")
    func nothingNewWhileUnwritable() throws {
        final class Switch: Sendable {
            let on = Mutex(true)
        }
        let failing = Switch()
        let rig = rig(count: 3, write: { _ in if failing.on.withLock({ $0 }) { throw CancellationError() } })
        let transport = ScriptedTransport(name: "smtp", script: [], committed: { rig.written.count })
        let subject = session(rig, transport: transport)
        let running = WakeSignal()
        // The first send's outcome cannot be written: the session blocks in its commit.
        let first = Thread { _ = subject.round(stopping: running) }
        first.start()
        let deadline = Date(timeIntervalSinceNow: 5)
        while rig.writer.isWritable && Date() < deadline { usleep(1_000) }
        #expect(!rig.writer.isWritable)
        // A second session (same queue) finds the writer failing and sends nothing.
        let second = ScriptedTransport(name: "smtp", script: [], committed: { 0 })
        #expect(session(rig, transport: second).round(stopping: running))
        #expect(second.committedAtSend.withLock { $0 }.isEmpty)
        #expect(transport.committedAtSend.withLock { $0 }.count == 1)
        failing.on.withLock { $0 = false }
        drain(subject, rig)
        #expect(rig.written.all.count == 3)
    }

    @Test("a throttling reply spends no attempt, slows the process down and leaves the message for later")
    func throttled() {
        let rig = rig(count: 2)
        let transport = ScriptedTransport(
            name: "smtp", script: [.throttled(reason: "SMTP RCPT TO rejected: 454 4.7.0 Throttling failure", retryAfter: .seconds(2))],
            committed: { rig.written.count })
        let subject = session(rig, transport: transport)
        _ = subject.round(stopping: WakeSignal())
        let first = rig.written.all
        #expect(first.map(\.attemptOutcome) == [.throttled])
        guard case .throttled(_, let retryAfter?, _, _) = first.first?.event else {
            Issue.record("not a throttled event: \(String(describing: first.first?.event))")
            return
        }
        #expect(retryAfter == 2)
        #expect(rig.limiter.reserve() >= .now + .milliseconds(1_500), "every session is held for Retry-After")
        rig.writer.stop()
        rig.done.wait()
    }
}
