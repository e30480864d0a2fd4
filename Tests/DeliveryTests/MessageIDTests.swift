import Testing
@testable import Delivery

@Suite("Message-ID")
struct MessageIDTests {
    @Test("the id derives from the delivery key and the sender's domain only")
    func deterministic() {
        let first = MessageID.make(deliveryKey: "d-123-intro", senderAddress: "hello@Example.COM")
        #expect(first == "<seqd.d-123-intro@example.com>")
        #expect(MessageID.make(deliveryKey: "d-123-intro", senderAddress: "other@example.com") == first)
        #expect(MessageID.make(deliveryKey: "d-124-intro", senderAddress: "hello@example.com") != first)
    }

    @Test(
        "keys with unsafe characters are sanitised and disambiguated",
        arguments: ["d 1/intro", "d-1.intro.", "..", "", "d-1-<x>@y", "d-1-✉️", String(repeating: "k", count: 200)]
    )
    func sanitised(key: String) {
        let id = MessageID.make(deliveryKey: key, senderAddress: "hello@example.com")
        #expect(id.hasPrefix("<seqd.") && id.hasSuffix("@example.com>"))
        let local = id.dropFirst().prefix { $0 != "@" }
        #expect(local.utf8.count <= MessageID.maxLocalLength)
        // RFC 5322 dot-atom-text: atext runs separated by single dots.
        #expect(local.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
            !part.isEmpty && part.unicodeScalars.allSatisfy(HeaderEncoding.isAtext)
        })
        #expect(MessageID.make(deliveryKey: key, senderAddress: "hello@example.com") == id)
    }

    @Test("keys that sanitise to the same text still get different ids")
    func noCollisions() {
        let ids = Set(["d 1", "d/1", "d_1", "d-1"].map { MessageID.make(deliveryKey: $0, senderAddress: "a@example.com") })
        #expect(ids.count == 4)
    }

    @Test("a sender without a usable ASCII domain falls back to seqd.invalid", arguments: ["nobody", "a@", "a@bücher.de", "a@x..y"])
    func fallbackDomain(sender: String) {
        #expect(MessageID.make(deliveryKey: "d-1", senderAddress: sender) == "<seqd.d-1@seqd.invalid>")
    }
}
