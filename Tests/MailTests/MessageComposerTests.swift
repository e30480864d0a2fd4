import Foundation
import TestSupport
import Testing

@testable import Mail

@Suite("Message composition")
struct MessageComposerTests {
    @Test("the same message composes byte-identically, with or without html")
    func deterministic() {
        for html: String? in [nil, "<p>Hello</p>"] {
            let first = MessageComposer(messageIDKey: .testing).compose(.sample(html: html))
            let second = MessageComposer(messageIDKey: .testing).compose(.sample(html: html))
            #expect(first == second)
        }
        let other = MessageComposer(messageIDKey: .testing).compose(.sample(html: "<p>Hello</p>", deliveryKey: "d-124-intro"))
        #expect(other.messageID != MessageComposer(messageIDKey: .testing).compose(.sample()).messageID)
    }

    @Test("a text-only message has the expected headers and body")
    func textOnly() {
        let composed = MessageComposer(messageIDKey: .testing).compose(.sample())
        #expect(composed.envelopeFrom == "hello@example.com")
        #expect(composed.envelopeTo == "ann@example.org")
        let id = MessageID.make(deliveryKey: "d-123-intro", senderAddress: "hello@example.com", key: .testing)
        #expect(composed.messageID == id)
        #expect(id.hasPrefix("<seqd.d-123-intro.") && id.hasSuffix("@example.com>"))
        #expect(String(decoding: composed.data, as: UTF8.self) == """
            Date: Tue, 01 Jul 2025 09:30:00 +0000\r
            From: Example Team <hello@example.com>\r
            To: Ann Example <ann@example.org>\r
            Subject: Welcome aboard\r
            Message-ID: \(id)\r
            List-Unsubscribe: <https://seqd.example.com/u/tok123>,\r
             <mailto:unsubscribe@example.com>\r
            List-Unsubscribe-Post: List-Unsubscribe=One-Click\r
            MIME-Version: 1.0\r
            Content-Type: text/plain; charset=utf-8\r
            Content-Transfer-Encoding: quoted-printable\r
            \r
            Hello Ann,\r
            thanks for signing up.\r

            """)
        #expect(header("Auto-Submitted", in: composed.data) == nil)
    }

    @Test("threaded steps carry In-Reply-To and References")
    func threading() {
        var message = OutgoingMessage.sample()
        message.inReplyTo = "seqd.d-122-intro@example.com"
        message.references = ["<seqd.d-121-hello@example.com>", "<seqd.d-122-intro@example.com>"]
        let data = MessageComposer(messageIDKey: .testing).compose(message).data
        #expect(header("In-Reply-To", in: data) == "<seqd.d-122-intro@example.com>")
        #expect(header("References", in: data) == "<seqd.d-121-hello@example.com> <seqd.d-122-intro@example.com>")
    }

    @Test("one-click unsubscribe needs a URL; a mailto alone gets only List-Unsubscribe")
    func unsubscribeVariants() {
        var message = OutgoingMessage.sample()
        message.listUnsubscribeURL = nil
        var data = MessageComposer(messageIDKey: .testing).compose(message).data
        #expect(header("List-Unsubscribe", in: data) == "<mailto:unsubscribe@example.com>")
        #expect(header("List-Unsubscribe-Post", in: data) == nil)

        message.listUnsubscribeMailto = nil
        data = MessageComposer(messageIDKey: .testing).compose(message).data
        #expect(header("List-Unsubscribe", in: data) == nil)
    }

    @Test("html makes a multipart/alternative with the text part first, both quoted-printable")
    func multipart() throws {
        let html = "<p>Hello <b>Ann</b> — <a href=\"https://example.com/?a=1\">link</a></p>\n"
        let composed = MessageComposer(messageIDKey: .testing).compose(.sample(html: html))
        let contentType = try #require(header("Content-Type", in: composed.data))
        let boundary = MessageComposer.boundary(forDeliveryKey: "d-123-intro")
        #expect(contentType == "multipart/alternative; boundary=\"\(boundary)\"")
        #expect(header("Content-Transfer-Encoding", in: composed.data) == nil)

        let text = String(decoding: composed.data, as: UTF8.self)
        let body = try #require(text.range(of: "\r\n\r\n")).upperBound
        let parts = text[body...].components(separatedBy: "--\(boundary)")
        #expect(parts.count == 4)  // preamble, text, html, epilogue
        #expect(parts[0].isEmpty)
        #expect(parts[3] == "--\r\n")
        for (part, (type, content)) in zip(parts[1...2], [("text/plain", OutgoingMessage.sample().text), ("text/html", html)]) {
            let split = try #require(part.range(of: "\r\n\r\n"))
            #expect(part[..<split.lowerBound] == "\r\nContent-Type: \(type); charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable")
            let decoded = decodeQuotedPrintable(String(part[split.upperBound...]))
            #expect(decoded == Array(content.replacingOccurrences(of: "\n", with: "\r\n").utf8))
        }
    }

    @Test(
        "every line ends in CRLF and stays within 998 octets (headers within 78)",
        arguments: [nil, "<p>" + String(repeating: "wörd ", count: 500) + "</p>"]
    )
    func lineDiscipline(html: String?) {
        let message = OutgoingMessage.sample(
            subject: String(repeating: "Ünïcödé ", count: 40),
            text: String(repeating: "x", count: 3000) + "\r\n.dot line\rlone CR\n",
            html: html
        )
        let data = MessageComposer(messageIDKey: .testing).compose(message).data
        var lineStart = 0
        var inHeader = true
        for (index, byte) in data.enumerated() {
            if byte == 0x0A {
                #expect(index > 0 && data[index - 1] == 0x0D, "bare LF at \(index)")
                let length = index - 1 - lineStart
                #expect(length <= (inHeader ? 78 : 998))
                if length == 0 { inHeader = false }
                lineStart = index + 1
            } else if byte == 0x0D {
                #expect(index + 1 < data.count && data[index + 1] == 0x0A, "bare CR at \(index)")
            }
        }
        #expect(data.suffix(2) == [0x0D, 0x0A])
        #expect(crlfLines(data).contains(".dot line"))
    }

    @Test("dates are formatted in UTC regardless of the fractional second or the era", arguments: [
        (0.0, "Thu, 01 Jan 1970 00:00:00 +0000"),
        (951_782_400.75, "Tue, 29 Feb 2000 00:00:00 +0000"),
        (-1.0, "Wed, 31 Dec 1969 23:59:59 +0000"),
        (4_102_444_799.0, "Thu, 31 Dec 2099 23:59:59 +0000"),
    ])
    func dates(seconds: Double, expected: String) {
        #expect(MessageDate.format(Date(timeIntervalSince1970: seconds)) == expected)
    }
}
