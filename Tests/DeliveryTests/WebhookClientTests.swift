import Foundation
import TestSupport
import Testing
@testable import Delivery

/// The webhook client's guards and the signature format, without a database.
@Suite("webhook client and signature", .timeLimit(.minutes(1)))
struct WebhookClientTests {
    @Test("private, loopback, link-local and reserved addresses are private; public ones are not", arguments: [
        ("127.0.0.1", true), ("10.1.2.3", true), ("172.16.0.1", true), ("172.32.0.1", false), ("192.168.1.1", true),
        ("169.254.169.254", true), ("100.64.0.1", true), ("0.0.0.0", true), ("224.0.0.1", true),
        ("::1", true), ("::", true), ("fe80::1", true), ("fd00::1", true), ("::ffff:127.0.0.1", true),
        ("::ffff:8.8.8.8", false), ("8.8.8.8", false), ("2606:4700:4700::1111", false), ("not an address", true),
    ])
    func privateAddresses(_ address: String, _ isPrivate: Bool) {
        #expect(NetworkAddress.isPrivate(address) == isPrivate)
    }

    @Test("a loopback URL is refused before anything is sent unless private networks are allowed")
    func refusesLoopback() async throws {
        let server = try await FixtureServer.start("http_sink.py", ["200"])
        defer { server.stop() }
        let request = WebhookRequest(method: "POST", url: "http://localhost:\(server.port)/hook", headers: [], body: Array("{}".utf8), timeout: 2)
        guard case .refused(let reason) = WebhookClient(allowPrivateNetworks: false).perform(request) else {
            Issue.record("not refused")
            return
        }
        #expect(reason.contains("webhook.allow_private_networks"))
        #expect(!FileManager.default.fileExists(atPath: server.directory + "/requests.jsonl"), "nothing reached the server")
        guard case .responded(200, _, _) = WebhookClient(allowPrivateNetworks: true).perform(request) else {
            Issue.record("allowed request not answered 200")
            return
        }
    }

    @Test("header injection and credentials in the URL are refused")
    func refusesBadRequests() {
        let client = WebhookClient(allowPrivateNetworks: true)
        let injected = WebhookRequest(
            method: "POST", url: "http://127.0.0.1:9/", headers: [.init(name: "X", value: "a\r\nEvil: 1")], body: [], timeout: 1)
        guard case .refused = client.perform(injected) else { Issue.record("injection not refused"); return }
        let credentials = WebhookRequest(method: "GET", url: "http://u:p@127.0.0.1:9/", headers: [], body: [], timeout: 1)
        guard case .refused = client.perform(credentials) else { Issue.record("credentials not refused"); return }
    }

    @Test("outcome classes: 2xx sent, 408/429/5xx retried with Retry-After, other 4xx and redirects permanent")
    func outcomes() {
        let now = Date()
        #expect(WebhookResult.responded(status: 204, retryAfter: nil, body: []).outcome(now: now) == .sent(providerID: nil))
        #expect(WebhookResult.responded(status: 429, retryAfter: "3", body: []).outcome(now: now)
            == .temporaryFailure(reason: "HTTP 429", retryAfter: .seconds(3)))
        if case .temporaryFailure = WebhookResult.responded(status: 503, retryAfter: nil, body: []).outcome(now: now) {} else { Issue.record("503") }
        if case .permanentFailure = WebhookResult.responded(status: 400, retryAfter: nil, body: []).outcome(now: now) {} else { Issue.record("400") }
        if case .permanentFailure = WebhookResult.responded(status: 302, retryAfter: nil, body: []).outcome(now: now) {} else { Issue.record("302") }
        if case .temporaryFailure = WebhookResult.notDelivered(reason: "refused").outcome(now: now) {} else { Issue.record("not delivered") }
        if case .ambiguous = WebhookResult.noAnswer(reason: "timeout").outcome(now: now) {} else { Issue.record("no answer") }
    }

    @Test("the signature is t=<unix>,v1=<hex HMAC-SHA256 of \"t.\" + body>, checked in constant time with a tolerance")
    func signature() {
        let body = Array(#"{"a":1}"#.utf8)
        let header = WebhookSignature.header(body: body, timestamp: 1_700_000_000, secret: "whsec")
        #expect(header.hasPrefix("t=1700000000,v1="))
        #expect(header.count == "t=1700000000,v1=".count + 64)
        #expect(WebhookSignature.isValid(header: header, body: body, secret: "whsec", now: 1_700_000_100))
        #expect(!WebhookSignature.isValid(header: header, body: body, secret: "other", now: 1_700_000_100))
        #expect(!WebhookSignature.isValid(header: header, body: body + [0x20], secret: "whsec", now: 1_700_000_100))
        #expect(!WebhookSignature.isValid(header: header, body: body, secret: "whsec", now: 1_700_001_000), "too old")
    }
}
