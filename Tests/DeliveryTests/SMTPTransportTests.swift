import Foundation
import Mail
import TestSupport
import Testing
@testable import Delivery

/// The SMTP transport against a real SMTP server (aiosmtpd, `Tests/Fixtures/smtp_server.py`) on
/// loopback, one server per test with its faults scripted by a scenario.
@Suite("SMTP transport against a real server", .timeLimit(.minutes(1)))
struct SMTPTransportTests {
    /// Short, so the stall tests end quickly; still far above what loopback needs.
    static let timeout: TimeInterval = 1

    static func transport(
        _ server: FixtureServer, username: String? = nil, password: String? = nil,
        starttls: SMTPTransport.StartTLS? = nil
    ) throws -> SMTPTransport {
        try SMTPTransport(
            url: "smtp://127.0.0.1:\(server.port)", username: username, password: password, starttls: starttls,
            timeout: timeout, heloName: "seqd.test")
    }

    static func message(_ key: String = "d-1-intro", subject: String = "Welcome aboard", text: String = "Hello Ann,\nthanks.\n") -> ComposedMessage {
        MessageComposer(messageIDKey: .testing).compose(.sample(subject: subject, text: text, deliveryKey: key))
    }

    @Test("a message arrives byte for byte: headers, non-ASCII subject and body, lines starting with a dot")
    func delivers() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["accept"])
        defer { server.stop() }
        let subject = "Grüße aus Köln — ready? ✓"
        let text = "Héllo Ann,\n.a line starting with a dot\n.\n..two dots\nbye — ✓\n"
        let composed = Self.message(subject: subject, text: text)
        // The test only means something if the wire really has lines starting with a dot, one of
        // them the lone dot that would end the data if libcurl did not stuff it.
        let lines = crlfLines(composed.data)
        #expect(lines.contains(".") && lines.contains(".a line starting with a dot"))

        let outcome = await sendOffPool(try Self.transport(server), composed)

        #expect(outcome == .sent(providerID: "OK queued as Q0001"))
        let received = try server.files(endingWith: ".eml")
        try #require(received.count == 1)
        let bytes = try server.contents(received[0])
        #expect(bytes == composed.data)
        #expect(header("Message-ID", in: bytes) == composed.messageID)
        #expect(header("From", in: bytes) == "Example Team <hello@example.com>")
        #expect(header("List-Unsubscribe-Post", in: bytes) == "List-Unsubscribe=One-Click")
        #expect(decodeRFC2047(try #require(header("Subject", in: bytes))) == subject)
        let body = try #require(String(decoding: bytes, as: UTF8.self).range(of: "\r\n\r\n"))
        let decoded = decodeQuotedPrintable(String(String(decoding: bytes, as: UTF8.self)[body.upperBound...]))
        #expect(String(decoding: decoded, as: UTF8.self) == text.replacingOccurrences(of: "\n", with: "\r\n"))
        let envelope = try JSONSerialization.jsonObject(with: Data(try server.contents(received[0].replacingOccurrences(of: ".eml", with: ".json")))) as? [String: Any]
        #expect(envelope?["mail_from"] as? String == "hello@example.com")
        #expect(envelope?["rcpt_tos"] as? [String] == ["ann@example.org"])
    }

    @Test("three messages share one connection")
    func reusesConnection() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["accept"])
        defer { server.stop() }
        let transport = try Self.transport(server)

        for index in 1...3 {
            #expect(await sendOffPool(transport, Self.message("d-\(index)-intro")).kind == "sent")
        }

        #expect(try server.files(endingWith: ".eml").count == 3)
        #expect(String(decoding: try server.contents(server.directory + "/connections"), as: UTF8.self) == "1")
    }

    @Test("messages_per_connection 2: five messages open three connections")
    func reconnectsAfterTheConfiguredCount() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["accept"])
        defer { server.stop() }
        let transport = try SMTPTransport(
            url: "smtp://127.0.0.1:\(server.port)", username: nil, password: nil, timeout: 5, messagesPerConnection: 2)

        for index in 1...5 {
            #expect(await sendOffPool(transport, Self.message("d-\(index)-intro")).kind == "sent")
        }

        #expect(try server.files(endingWith: ".eml").count == 5)
        #expect(String(decoding: try server.contents(server.directory + "/connections"), as: UTF8.self) == "3")
    }

    @Test("451 at RCPT twice is temporary twice, then the same transport delivers on a clean session")
    func temporaryThenAccepted() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["rcpt:451 4.3.0 try later:2"])
        defer { server.stop() }
        let transport = try Self.transport(server)
        let message = Self.message()

        let first = await sendOffPool(transport, message)
        let second = await sendOffPool(transport, message)
        let third = await sendOffPool(transport, message)

        #expect(first == .temporaryFailure(reason: "SMTP RCPT TO rejected: 451 4.3.0 try later", retryAfter: nil))
        #expect(second == first)
        #expect(third.kind == "sent")
        #expect(try server.files(endingWith: ".eml").count == 1)
    }

    /// Scripted replies and the class each must map to (design §6).
    static let rejections: [(scenario: String, kind: String, reply: String)] = [
        ("rcpt:550 5.1.1 no such user", "bounce", "550 5.1.1 no such user"),
        ("rcpt:553 mailbox name not allowed", "bounce", "553 mailbox name not allowed"),
        ("rcpt:550 5.7.1 relaying denied", "permanent", "550 5.7.1 relaying denied"),
        ("rcpt:554 transaction failed", "permanent", "554 transaction failed"),
        ("rcpt:452 4.2.2 mailbox full", "temporary", "452 4.2.2 mailbox full"),
        ("data:550 5.1.1 no such user", "bounce", "550 5.1.1 no such user"),
        ("data:554 5.7.1 spam", "permanent", "554 5.7.1 spam"),
        ("data:451 4.3.0 try later", "temporary", "451 4.3.0 try later"),
        ("mail:452 4.3.1 insufficient storage", "fault", "452 4.3.1 insufficient storage"),
        ("mail:554 5.7.1 sender blocked", "fault", "554 5.7.1 sender blocked"),
        ("mail:421 4.7.0 too many connections, slow down", "throttled", "421 4.7.0 too many connections, slow down"),
        ("rcpt:454 4.7.0 Throttling failure - Maximum sending rate exceeded", "throttled",
         "454 4.7.0 Throttling failure - Maximum sending rate exceeded"),
        ("data:451 4.7.1 Throttling - too much mail from your IP", "throttled", "451 4.7.1 Throttling - too much mail from your IP"),
    ]

    @Test("each scripted rejection maps to its class", arguments: rejections)
    func rejection(scenario: String, kind: String, reply: String) async throws {
        let server = try await FixtureServer.start("smtp_server.py", [scenario])
        defer { server.stop() }

        let outcome = await sendOffPool(try Self.transport(server), Self.message())

        #expect(outcome.kind == kind)
        #expect(outcome.reason.hasSuffix(reply), "\(outcome)")
    }

    @Test("535 at AUTH is a transport fault whose reason never carries the password; good credentials send")
    func authentication() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["--auth", "seqd:right-horse", "accept"])
        defer { server.stop() }
        let password = "wrong-battery-staple"

        let refused = await sendOffPool(try Self.transport(server, username: "seqd", password: password), Self.message())
        let anonymous = await sendOffPool(try Self.transport(server), Self.message())
        let accepted = await sendOffPool(try Self.transport(server, username: "seqd", password: "right-horse"), Self.message())

        #expect(refused.kind == "fault")
        #expect(refused.reason.contains("535"), "\(refused)")
        for secret in [password, Data(password.utf8).base64EncodedString(), Data("\0seqd\0\(password)".utf8).base64EncodedString()] {
            #expect(!refused.reason.contains(secret))
        }
        // Without credentials the server refuses MAIL FROM (530): the transport's fault too.
        #expect(anonymous.kind == "fault")
        #expect(anonymous.reason.contains("MAIL FROM rejected: 530"), "\(anonymous)")
        #expect(accepted.kind == "sent")
    }

    @Test("a connection dropped after the data is ambiguous; the retry with the same Message-ID arrives again")
    func droppedAfterData() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["data:drop:1"])
        defer { server.stop() }
        let transport = try Self.transport(server)
        let message = Self.message()

        let first = await sendOffPool(transport, message)
        let retry = await sendOffPool(transport, message)

        #expect(first.kind == "ambiguous", "\(first)")
        #expect(retry.kind == "sent")
        // Both copies reached the server: exactly the duplicate `delivery.on_unknown` decides about.
        let copies = try server.files(endingWith: ".eml").map { try header("Message-ID", in: server.contents($0)) }
        #expect(copies == [message.messageID, message.messageID])
    }

    @Test("a server that stalls at RCPT ends the attempt after the timeout, as a temporary failure")
    func stallBeforeData() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["rcpt:stall"])
        defer { server.stop() }
        let started = ContinuousClock.now

        let outcome = await sendOffPool(try Self.transport(server), Self.message())

        #expect(outcome.kind == "temporary", "\(outcome)")
        #expect(outcome.reason.contains("RCPT TO"))
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test("a server that stalls after the data makes the outcome ambiguous")
    func stallAfterData() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["data:stall"])
        defer { server.stop() }

        let outcome = await sendOffPool(try Self.transport(server), Self.message())

        #expect(outcome.kind == "ambiguous", "\(outcome)")
    }

    @Test("nothing listening is a transport fault")
    func serverDown() async throws {
        let transport = try SMTPTransport(
            url: "smtp://127.0.0.1:\(try FixtureServer.freePort())", username: nil, password: nil, timeout: Self.timeout)

        let outcome = await sendOffPool(transport, Self.message())

        #expect(outcome.kind == "fault", "\(outcome)")
    }

    @Test("STARTTLS required but not offered is a transport fault")
    func startTLSRequired() async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["accept"])
        defer { server.stop() }

        let outcome = await sendOffPool(try Self.transport(server, starttls: .required), Self.message())

        #expect(outcome.kind == "fault", "\(outcome)")
        #expect(outcome.reason.contains("STARTTLS"))
        #expect(try server.files(endingWith: ".eml").isEmpty)
    }

    @Test("a certificate that does not verify is a transport fault, whatever the STARTTLS policy", arguments: [
        SMTPTransport.StartTLS.required, .opportunistic,
    ])
    func untrustedCertificate(policy: SMTPTransport.StartTLS) async throws {
        let server = try await FixtureServer.start("smtp_server.py", ["--self-signed-tls", "accept"])
        defer { server.stop() }

        let outcome = await sendOffPool(try Self.transport(server, starttls: policy), Self.message())

        #expect(outcome.kind == "fault", "\(outcome)")
        #expect(outcome.reason.hasPrefix("SMTP TLS failure: "), "\(outcome)")
        #expect(try server.files(endingWith: ".eml").isEmpty)
    }

    @Test("configuration: URLs, credentials and the STARTTLS default")
    func configuration() throws {
        #expect(throws: TransportConfigurationError.self) {
            try SMTPTransport(url: "http://relay.example.com", username: nil, password: nil, timeout: 5)
        }
        #expect(throws: TransportConfigurationError.self) {
            try SMTPTransport(url: "smtp://user:pw@relay.example.com", username: nil, password: nil, timeout: 5)
        }
        #expect(throws: TransportConfigurationError.self) {
            try SMTPTransport(url: "smtp://relay.example.com", username: nil, password: "pw", timeout: 5)
        }
        #expect(throws: TransportConfigurationError.self) {
            try SMTPTransport(url: "smtp://relay.example.com", username: nil, password: nil, timeout: 5, heloName: "a b")
        }
        #expect(try SMTPTransport(url: "smtp://relay.example.com:587", username: nil, password: nil, timeout: 5).startTLS == .required)
        #expect(try SMTPTransport(url: "smtp://127.0.0.1:25", username: nil, password: nil, timeout: 5).startTLS == .opportunistic)
        #expect(try SMTPTransport(url: "smtp://localhost:25", username: nil, password: nil, timeout: 5).startTLS == .opportunistic)
        #expect(try SMTPTransport(url: "smtp://[::1]:25", username: nil, password: nil, timeout: 5).startTLS == .opportunistic)
        #expect(try SMTPTransport(url: "smtp://127.0.0.1:25", username: nil, password: nil, starttls: .required, timeout: 5).startTLS == .required)
    }
}
