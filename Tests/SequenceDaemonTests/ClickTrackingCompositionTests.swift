import Delivery
import Foundation
import Mail
import SequenceEngine
import SequenceStore
import Testing

@testable import SequenceDaemon

@Suite("click tracking when a message is composed")
struct ClickTrackingCompositionTests {
    static let secret = "test-unsubscribe-secret"

    static func delivery(trackClicks: Bool, id: Int64 = 77) throws -> ClaimedDelivery {
        let json: [String: Any] = [
            "subject": "Hello", "from_address": "team@example.com",
            "text": "Pricing: https://example.com/pricing?a=1&b=2. Write to mailto:team@example.com",
            "html": #"<html><body><p><a href="https://example.com/pricing?a=1&amp;b=2">Pricing</a> <a href="mailto:team@example.com">us</a></p></body></html>"#,
        ].merging(trackClicks ? ["track_clicks": true] : [:]) { $1 }
        let message = try JSONDecoder().decode(StoredMessage.self, from: JSONSerialization.data(withJSONObject: json))
        return ClaimedDelivery(
            id: id, enrollmentID: 5, stepKey: "hello", kind: .email, deliveryKey: "test-e5-hello", token: 1, message: message,
            toAddress: "ada@example.com", toName: nil, sentKeysByStep: [:], claimedAt: Date(timeIntervalSince1970: 1_800_000_000))
    }

    /// The message as a reader sees it: quoted-printable soft breaks and escapes undone.
    static func decoded(_ message: ComposedMessage) -> String {
        let text = String(decoding: message.data, as: UTF8.self).replacingOccurrences(of: "=\r\n", with: "")
        var output = ""
        var rest = Substring(text)
        while let equals = rest.firstIndex(of: "=") {
            output += rest[..<equals]
            let hex = rest[rest.index(after: equals)...].prefix(2)
            if hex.count == 2, let byte = UInt8(hex, radix: 16) {
                output.unicodeScalars.append(Unicode.Scalar(byte))
                rest = rest[rest.index(equals, offsetBy: 3)...]
            } else {
                output += "="
                rest = rest[rest.index(after: equals)...]
            }
        }
        return output + rest
    }

    static func clicks(in text: String) -> [ClickToken.Click] {
        let key = ClickToken.Key(secret: secret)
        return text.matches(of: /https:\/\/t\.example\.com\/c\/([A-Za-z0-9_-]+)/).compactMap { ClickToken.verify(String($0.1), key: key) }
    }

    static func builder(trackingBaseURL: String?, unsubscribeBaseURL: String? = "https://mail.example.com", untracked: @escaping @Sendable (String) -> Void = { _ in }) -> MessageBuilder {
        MessageBuilder(
            secret: secret, unsubscribeBaseURL: unsubscribeBaseURL, unsubscribeMailto: nil, trackingBaseURL: trackingBaseURL, untracked: untracked)
    }

    @Test("tracking on: the links of both parts lead through /c/, signed for this delivery; mailto and List-Unsubscribe stay; one decoy in HTML; a retry composes the same bytes")
    func rewritten() throws {
        let builder = Self.builder(trackingBaseURL: "https://t.example.com")
        let composed = builder.compose(try Self.delivery(trackClicks: true))
        let message = Self.decoded(composed)
        let clicks = Self.clicks(in: message)
        // The text part's link, the HTML part's link (entity-decoded) and the decoy.
        #expect(clicks.filter { !$0.isDecoy }.map(\.url) == ["https://example.com/pricing?a=1&b=2", "https://example.com/pricing?a=1&b=2"])
        #expect(clicks.filter(\.isDecoy).count == 1)
        #expect(clicks.allSatisfy { $0.deliveryID == 77 })
        #expect(message.contains(#"style="display:none" aria-hidden="true" tabindex="-1"></a></body>"#))
        #expect(!message.contains("https://example.com/pricing"))
        #expect(message.contains("mailto:team@example.com"))
        #expect(message.contains("List-Unsubscribe: <https://mail.example.com/u/"))
        #expect(builder.compose(try Self.delivery(trackClicks: true)) == composed)
    }

    @Test("tracking.base_url unset: unsubscribe.base_url is the base")
    func defaultsToUnsubscribeBase() throws {
        let message = Self.decoded(Self.builder(trackingBaseURL: nil).compose(try Self.delivery(trackClicks: true)))
        #expect(message.contains("https://mail.example.com/c/"))
        #expect(!message.contains("https://example.com/pricing"))
    }

    @Test("tracking off: links untouched and no decoy")
    func off() throws {
        let message = Self.decoded(Self.builder(trackingBaseURL: "https://t.example.com").compose(try Self.delivery(trackClicks: false)))
        #expect(Self.clicks(in: message).isEmpty)
        #expect(message.contains("Pricing: https://example.com/pricing?a=1&b=2."))
        #expect(message.contains(#"<a href="https://example.com/pricing?a=1&amp;b=2">"#))
        #expect(!message.contains("display:none"))
    }

    @Test("no base URL at all: the message goes out untracked and the builder says so")
    func noBaseURL() throws {
        let told = Box<[String]>([])
        let builder = Self.builder(trackingBaseURL: nil, unsubscribeBaseURL: nil, untracked: { key in told.withLock { $0.append(key) } })
        let message = Self.decoded(builder.compose(try Self.delivery(trackClicks: true)))
        #expect(message.contains("Pricing: https://example.com/pricing?a=1&b=2."))
        #expect(told.withLock { $0 } == ["test-e5-hello"])
    }
}
