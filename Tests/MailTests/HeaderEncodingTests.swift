import Foundation
import TestSupport
import Testing

@testable import Mail

@Suite("Header encoding")
struct HeaderEncodingTests {
    @Test("a non-ASCII subject round-trips through RFC 2047 encoded-words within the length limits")
    func nonASCIISubjectRoundTrip() throws {
        let subject = "Grüße aus Köln — 你好, Ann! 👋🏽 Ihre Bestellung ist unterwegs 🚚 und kommt bald an 🎉"
        let composed = MessageComposer(messageIDKey: .testing).compose(.sample(subject: subject))

        let raw = try #require(header("Subject", in: composed.data))
        #expect(decodeRFC2047(raw) == subject)

        let words = raw.split(separator: " ")
        #expect(words.count > 1, "long subject should be split into several encoded-words")
        for word in words {
            #expect(word.hasPrefix("=?UTF-8?B?") && word.hasSuffix("?="))
            #expect(word.utf8.count <= 75)
        }
        let subjectLines = crlfLines(composed.data).drop { !$0.hasPrefix("Subject:") }.prefix(words.count)
        #expect(subjectLines.allSatisfy { $0.utf8.count <= 78 })
    }

    @Test("a plain ASCII subject stays readable and folds only at spaces")
    func plainSubjectFolds() throws {
        let subject = Array(repeating: "word", count: 40).joined(separator: " ")
        let composed = MessageComposer(messageIDKey: .testing).compose(.sample(subject: subject))
        #expect(try #require(header("Subject", in: composed.data)) == subject)
        #expect(crlfLines(composed.data).allSatisfy { $0.utf8.count <= 78 })
    }

    @Test(
        "ASCII subjects that would not survive folding are encoded",
        arguments: ["looks =?UTF-8?B?like?= a word", "  padded  ", "double  space", String(repeating: "x", count: 90)]
    )
    func awkwardASCIISubjectsAreEncoded(subject: String) throws {
        let raw = try #require(header("Subject", in: MessageComposer(messageIDKey: .testing).compose(.sample(subject: subject)).data))
        #expect(raw.hasPrefix("=?UTF-8?B?"))
        #expect(decodeRFC2047(raw) == subject)
    }

    @Test(
        "display names become atoms, a quoted-string or encoded-words",
        arguments: [
            ("Ann Example", "Ann Example <ann@example.org>"),
            ("Example, Inc. \"Sales\"", #""Example, Inc. \"Sales\"" <ann@example.org>"#),
            ("Jürgen Groß", "=?UTF-8?B?SsO8cmdlbiBHcm/Dnw==?= <ann@example.org>"),
        ]
    )
    func displayNames(name: String, expected: String) throws {
        var message = OutgoingMessage.sample()
        message.toName = name
        let to = try #require(header("To", in: MessageComposer(messageIDKey: .testing).compose(message).data))
        #expect(to == expected)
    }

    @Test("a missing display name gives a bare address")
    func bareAddress() throws {
        var message = OutgoingMessage.sample()
        message.toName = nil
        message.fromName = ""
        let data = MessageComposer(messageIDKey: .testing).compose(message).data
        #expect(header("To", in: data) == "ann@example.org")
        #expect(header("From", in: data) == "hello@example.com")
    }

    @Test("CR and LF in any header input cannot add a header or a recipient")
    func headerInjectionIsNeutralised() throws {
        let message = OutgoingMessage(
            fromAddress: "hello@example.com\r\nBcc: thief@evil.test",
            fromName: "Team\nBcc: thief@evil.test",
            toAddress: "ann@example.org\r\nCc: thief@evil.test",
            toName: "Ann\r\nX-Injected: yes",
            subject: "Hi\r\nBcc: thief@evil.test\r\n\r\nfake body",
            text: "body",
            deliveryKey: "d-1\r\nX-Injected: yes",
            date: Date(timeIntervalSince1970: 0),
            inReplyTo: "<a@b>\r\nX-Injected: yes",
            references: ["<c@d>\nX-Injected: yes"],
            listUnsubscribeURL: "https://x.test/u/1>\r\nX-Injected: yes",
            listUnsubscribeMailto: "u@x.test\rX-Injected: yes"
        )
        let composed = MessageComposer(messageIDKey: .testing).compose(message)

        let names = headerFields(composed.data).map(\.name)
        #expect(names == [
            "Date", "From", "To", "Subject", "Message-ID", "In-Reply-To", "References",
            "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
            "Content-Transfer-Encoding",
        ])
        // Addresses are cut at the line break: joining the pieces would send to evil.test.
        #expect(composed.envelopeFrom == "hello@example.com")
        #expect(composed.envelopeTo == "ann@example.org")
        #expect(header("To", in: composed.data) == #""Ann  X-Injected: yes" <ann@example.org>"#)
        #expect(composed.messageID.hasSuffix("@example.com>"))
        #expect(!composed.messageID.contains("\r") && !composed.messageID.contains("\n"))
        #expect(header("In-Reply-To", in: composed.data) == "<a@b>")
        #expect(decodeRFC2047(try #require(header("Subject", in: composed.data))) == "Hi  Bcc: thief@evil.test    fake body")
        #expect(header("List-Unsubscribe", in: composed.data)?.contains("%3E%0D%0AX-Injected:") == true)
        // The body is exactly the one line given: nothing leaked from the headers into it.
        #expect(crlfLines(composed.data).last == "body")
    }
}
