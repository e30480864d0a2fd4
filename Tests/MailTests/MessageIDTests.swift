import Foundation
import TestSupport
import Testing

@testable import Mail

@Suite("Message-ID")
struct MessageIDTests {
    @Test("the id derives from the delivery key, the sender's domain and the MAC of the key only")
    func deterministic() {
        let first = MessageID.make(deliveryKey: "d-123-intro", senderAddress: "hello@Example.COM", key: .testing)
        #expect(first.hasPrefix("<seqd.d-123-intro.") && first.hasSuffix("@example.com>"))
        #expect(MessageID.make(deliveryKey: "d-123-intro", senderAddress: "other@example.com", key: .testing) == first)
        #expect(MessageID.make(deliveryKey: "d-124-intro", senderAddress: "hello@example.com", key: .testing) != first)
        // Another installation's secret mints another id for the same key.
        #expect(MessageID.make(deliveryKey: "d-123-intro", senderAddress: "hello@example.com", key: MessageID.Key(secret: "other")) != first)
    }

    @Test("only the exact id verifies: a guessed key, an old id without MAC, another secret's MAC, a changed digit all fail")
    func verification() {
        let key = MessageID.Key(secret: "s3cret")
        let id = MessageID.make(deliveryKey: "ab12cd34-e7-intro", senderAddress: "team@example.com", key: key)
        #expect(MessageID.verify(id, deliveryKey: "ab12cd34-e7-intro", key: key))
        // The domain carries no secret; clients sometimes change its case.
        #expect(MessageID.verify(id.replacingOccurrences(of: "example.com", with: "EXAMPLE.com"), deliveryKey: "ab12cd34-e7-intro", key: key))
        // The form before issue 16: guessable from any email the installation sent.
        #expect(!MessageID.verify("<seqd.ab12cd34-e7-intro@example.com>", deliveryKey: "ab12cd34-e7-intro", key: key))
        #expect(!MessageID.verify(id, deliveryKey: "ab12cd34-e8-intro", key: key))
        #expect(!MessageID.verify(id, deliveryKey: "ab12cd34-e7-intro", key: MessageID.Key(secret: "other")))
        var tampered = Array(id)
        let index = tampered.firstIndex(of: "@")! - 1
        tampered[index] = tampered[index] == "0" ? "1" : "0"
        #expect(!MessageID.verify(String(tampered), deliveryKey: "ab12cd34-e7-intro", key: key))
        #expect(!MessageID.verify("", deliveryKey: "ab12cd34-e7-intro", key: key))
        #expect(!MessageID.verify("<no-at-sign>", deliveryKey: "ab12cd34-e7-intro", key: key))
    }

    @Test(
        "keys with unsafe characters are sanitised and disambiguated",
        arguments: ["d 1/intro", "d-1.intro.", "..", "", "d-1-<x>@y", "d-1-✉️", String(repeating: "k", count: 200)]
    )
    func sanitised(key: String) {
        let id = MessageID.make(deliveryKey: key, senderAddress: "hello@example.com", key: .testing)
        #expect(id.hasPrefix("<seqd.") && id.hasSuffix("@example.com>"))
        let local = id.dropFirst().prefix { $0 != "@" }
        #expect(local.utf8.count <= MessageID.maxLocalLength + 1 + 2 * MessageID.macBytes)
        // RFC 5322 dot-atom-text: atext runs separated by single dots.
        #expect(local.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
            !part.isEmpty && part.unicodeScalars.allSatisfy(HeaderEncoding.isAtext)
        })
        #expect(MessageID.make(deliveryKey: key, senderAddress: "hello@example.com", key: .testing) == id)
        #expect(MessageID.verify(id, deliveryKey: key, key: .testing))
    }

    @Test("keys that sanitise to the same text still get different ids")
    func noCollisions() {
        let ids = Set(["d 1", "d/1", "d_1", "d-1"].map { MessageID.make(deliveryKey: $0, senderAddress: "a@example.com", key: .testing) })
        #expect(ids.count == 4)
    }

    @Test("a sender without a usable ASCII domain falls back to seqd.invalid", arguments: ["nobody", "a@", "a@bücher.de", "a@x..y"])
    func fallbackDomain(sender: String) {
        #expect(MessageID.make(deliveryKey: "d-1", senderAddress: sender, key: .testing).hasSuffix("@seqd.invalid>"))
    }
}
