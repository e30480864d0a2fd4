import Foundation
import Mail
import TestSupport
import Testing
@testable import Delivery

/// The HTTP transport against a real HTTP server (`Tests/Fixtures/http_sink.py`) on loopback.
@Suite("HTTP transport against a real server", .timeLimit(.minutes(1)))
struct HTTPTransportTests {
    static let token = "tok-3f9a"

    static func transport(_ server: FixtureServer) throws -> HTTPTransport {
        try HTTPTransport(url: "http://127.0.0.1:\(server.port)/v1/messages", token: token, timeout: 1)
    }

    static func message(_ key: String = "d-7-intro") -> ComposedMessage {
        MessageComposer(messageIDKey: .testing).compose(.sample(subject: "Grüße", deliveryKey: key))
    }

    /// What the sink recorded, in order.
    static func requests(_ server: FixtureServer) throws -> [[String: Any]] {
        let text = String(decoding: try server.contents(server.directory + "/requests.jsonl"), as: UTF8.self)
        return try text.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test("2xx is sent with the provider's id; the JSON body, bearer token and Idempotency-Key arrive")
    func sends() async throws {
        let server = try await FixtureServer.start("http_sink.py", ["200"])
        defer { server.stop() }
        let message = Self.message()

        let outcome = await sendOffPool(try Self.transport(server), message)

        #expect(outcome == .sent(providerID: "prov-1"))
        let request = try #require(try Self.requests(server).first)
        #expect(request["path"] as? String == "/v1/messages")
        let headers = try #require(request["headers"] as? [String: String])
        #expect(headers["authorization"] == "Bearer \(Self.token)")
        #expect(headers["idempotency-key"] == message.deliveryKey)
        #expect(headers["content-type"] == "application/json")
        let body = try #require(try JSONSerialization.jsonObject(with: Data((request["body"] as? String ?? "").utf8)) as? [String: String])
        #expect(body["message_id"] == message.messageID)
        #expect(body["delivery_key"] == message.deliveryKey)
        #expect(body["raw"].map { Array($0.utf8) } == message.data)
        #expect(body["from"] == "Example Team <hello@example.com>")
        #expect(body["to"] == "Ann Example <ann@example.org>")
        #expect(body["envelope_from"] == "hello@example.com")
        #expect(body["envelope_to"] == "ann@example.org")
    }

    @Test("503 with an HTTP-date Retry-After is temporary; the retry carries the same Idempotency-Key and is sent")
    func retryKeepsKey() async throws {
        let server = try await FixtureServer.start("http_sink.py", ["503:1,200"])
        defer { server.stop() }
        let transport = try Self.transport(server)
        let message = Self.message()

        let first = await sendOffPool(transport, message)
        let retry = await sendOffPool(transport, message)

        guard case .temporaryFailure(let reason, let retryAfter) = first else {
            Issue.record("expected a temporary failure, got \(first)")
            return
        }
        #expect(reason.hasPrefix("HTTP 503: "))
        // The sink says "120 s from now" as a date with one-second resolution.
        #expect(retryAfter.map { (.seconds(115)...(.seconds(121))).contains($0) } == true, "\(String(describing: retryAfter))")
        #expect(retry == .sent(providerID: "prov-2"))
        let keys = try Self.requests(server).map { ($0["headers"] as? [String: String])?["idempotency-key"] }
        #expect(keys == [message.deliveryKey, message.deliveryKey])
    }

    @Test("429 is throttling and honours Retry-After in seconds")
    func tooManyRequests() async throws {
        let server = try await FixtureServer.start("http_sink.py", ["429"])
        defer { server.stop() }

        let outcome = await sendOffPool(try Self.transport(server), Self.message())

        #expect(outcome == .throttled(
            reason: #"HTTP 429: {"error": "scripted 429", "detail": "request 1"}"#, retryAfter: .seconds(7)))
    }

    /// Statuses and the class each must map to.
    static let statuses: [(scenario: String, kind: String)] = [
        ("400", "permanent"), ("422", "permanent"), ("401", "fault"), ("403", "fault"), ("404", "fault"),
        ("408", "temporary"), ("500", "temporary"), ("301", "fault"),
    ]

    @Test("each status maps to its class, with the status and a body excerpt in the reason", arguments: statuses)
    func status(scenario: String, kind: String) async throws {
        let server = try await FixtureServer.start("http_sink.py", [scenario])
        defer { server.stop() }

        let outcome = await sendOffPool(try Self.transport(server), Self.message())

        #expect(outcome.kind == kind, "\(outcome)")
        #expect(outcome.reason.hasPrefix("HTTP \(scenario): {\"error\": \"scripted \(scenario)\""), "\(outcome)")
        #expect(!outcome.reason.contains(Self.token))
    }

    @Test("a connection dropped after the request is ambiguous")
    func dropped() async throws {
        let server = try await FixtureServer.start("http_sink.py", ["drop"])
        defer { server.stop() }

        let outcome = await sendOffPool(try Self.transport(server), Self.message())

        #expect(outcome.kind == "ambiguous", "\(outcome)")
    }

    @Test("no response within the timeout after the request is ambiguous")
    func stalled() async throws {
        let server = try await FixtureServer.start("http_sink.py", ["stall"])
        defer { server.stop() }

        let outcome = await sendOffPool(try Self.transport(server), Self.message())

        #expect(outcome.kind == "ambiguous", "\(outcome)")
    }

    @Test("nothing listening is a transport fault")
    func serverDown() async throws {
        let transport = try HTTPTransport(url: "http://127.0.0.1:\(try FixtureServer.freePort())/", token: nil, timeout: 1)

        let outcome = await sendOffPool(transport, Self.message())

        #expect(outcome.kind == "fault", "\(outcome)")
    }

    @Test("configuration: URL scheme, credentials in the URL, header-breaking tokens")
    func configuration() {
        #expect(throws: TransportConfigurationError.self) { try HTTPTransport(url: "smtp://x.example", token: nil, timeout: 1) }
        #expect(throws: TransportConfigurationError.self) { try HTTPTransport(url: "https://u:p@x.example", token: nil, timeout: 1) }
        #expect(throws: TransportConfigurationError.self) { try HTTPTransport(url: "https://x.example", token: "a\r\nX: y", timeout: 1) }
    }
}
