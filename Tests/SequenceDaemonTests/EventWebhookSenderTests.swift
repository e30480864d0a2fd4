import Delivery
import Foundation
import SequenceEngine
import SequenceStore
import Testing
@testable import SequenceDaemon

@Suite("event webhook sender")
struct EventWebhookSenderTests {
    let now = Date(timeIntervalSince1970: 1_765_100_000)

    @Test("only a 2xx counts as delivered; everything else is retried, Retry-After kept for 408, 429 and 5xx")
    func outcomes() {
        #expect(EventWebhookOutcome(.responded(status: 204, retryAfter: nil, body: []), now: now) == .delivered)
        #expect(EventWebhookOutcome(.responded(status: 503, retryAfter: "7", body: []), now: now) == .retry(reason: "HTTP 503", retryAfter: 7))
        #expect(EventWebhookOutcome(.responded(status: 429, retryAfter: nil, body: []), now: now) == .retry(reason: "HTTP 429", retryAfter: nil))
        guard case .retry = EventWebhookOutcome(.responded(status: 400, retryAfter: "5", body: Array("no".utf8)), now: now) else {
            Issue.record("a 400 from the operator's own receiver is retried")
            return
        }
        guard case .retry = EventWebhookOutcome(.responded(status: 301, retryAfter: nil, body: []), now: now),
              case .retry = EventWebhookOutcome(.notDelivered(reason: "connection refused"), now: now),
              case .retry = EventWebhookOutcome(.noAnswer(reason: "timeout"), now: now),
              case .retry = EventWebhookOutcome(.refused(reason: "bad URL"), now: now)
        else {
            Issue.record("redirects, refusals and lost connections are retried")
            return
        }
    }

    @Test("backoff doubles from delivery.backoff, is capped at five minutes; a Retry-After is followed as given, up to an hour")
    func backoff() {
        let backoff = EventWebhookBackoff(policy: DeliveryPolicy(backoff: 10))
        #expect(backoff.delay(afterFailure: 1, retryAfter: nil, jitter: 0.5) == 10)
        #expect(backoff.delay(afterFailure: 2, retryAfter: nil, jitter: 0.5) == 20)
        #expect(backoff.delay(afterFailure: 4, retryAfter: nil, jitter: 0.5) == 80)
        #expect(backoff.delay(afterFailure: 1, retryAfter: nil, jitter: 0) == 8)
        #expect(backoff.delay(afterFailure: 1, retryAfter: nil, jitter: 1) == 12)
        #expect(backoff.delay(afterFailure: 5, retryAfter: nil, jitter: 0.5) == 160)
        #expect(backoff.delay(afterFailure: 6, retryAfter: nil, jitter: 0.5) == 300)
        #expect(backoff.delay(afterFailure: 40, retryAfter: nil, jitter: 1) == 300)
        #expect(backoff.delay(afterFailure: 40, retryAfter: 1_800, jitter: 1) == 1_800)
        #expect(backoff.delay(afterFailure: 1, retryAfter: 120, jitter: 0.5) == 120)
        #expect(backoff.delay(afterFailure: 3, retryAfter: 5, jitter: 0.5) == 5, "the receiver answered and said when")
        #expect(backoff.delay(afterFailure: 1, retryAfter: 86_400, jitter: 0.5) == 3_600)
    }

    @Test("event_webhook.types: known names, spaces and duplicates allowed, an unknown one named")
    func types() throws {
        #expect(try EventWebhookType.parse(list: "replied, opted_out,replied,delivered") == [.replied, .optedOut, .delivered])
        #expect(try EventWebhookType.parse(list: "") == [])
        let error = #expect(throws: StoreError.self) { try EventWebhookType.parse(list: "completed,exploded") }
        #expect(error?.description.contains("'exploded'") == true)
    }
}
