import Foundation
import Testing

@testable import Mail

/// Reading raw inbound mail: header fields, encoded-words, addresses and msg-ids, and the refusals
/// that name the line (what the parsed message means is SequenceEngine's, in InboundMessageTests).
@Suite("inbound mail: parsing")
struct InboundMessageParsingTests {
    static func parse(_ text: String) throws -> InboundMessage { try InboundMessage.parse(Array(text.utf8)) }

    // MARK: Headers

    @Test("RFC 2047: Q and B words, adjacent words joined, mixed text, a malformed word kept as written")
    func encodedWords() throws {
        let cases: [(String, String)] = [
            ("=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "Grüße aus Köln"),
            ("=?utf-8?b?w4RyZ2VyIMO8YmVy?= =?utf-8?b?IGRpZSBTdGV1ZXI=?=", "Ärger über die Steuer"),
            ("Re: =?ISO-8859-1?Q?Caf=E9?= tonight", "Re: Café tonight"),
            ("=?windows-1252?Q?=93quoted=94?=", "\u{201C}quoted\u{201D}"),
            ("=?UTF-8?X?broken?= stays", "=?UTF-8?X?broken?= stays"),
            ("=?UTF-8?Q?a?=   =?UTF-8?Q?b?=", "ab"),
        ]
        for (raw, decoded) in cases {
            let message = try Self.parse("From: a@example.com\nSubject: \(raw)\n\nx")
            #expect(message.subject == decoded, "\(raw)")
        }
    }

    @Test("header names are case-insensitive; msg-id lists, comments and bare ids are read")
    func messageIDLists() throws {
        let message = try Self.parse(
            """
            FROM: "Lovelace, Ada" <Ada@Example.org> (work)
            in-reply-to: <a@x.example> (comment)
            REFERENCES: <r1@x.example>
            \t<r2@x.example>  <a@x.example>
            To: Team: one@example.com, "Two, B" <two@example.com>;
            Cc: three@example.com (Three)

            body
            """)
        #expect(message.from == "ada@example.org")
        #expect(message.inReplyTo == ["<a@x.example>"])
        #expect(message.references == ["<r1@x.example>", "<r2@x.example>", "<a@x.example>"])
        #expect(message.matchReferences.map(\.messageID) == ["<a@x.example>", "<r2@x.example>", "<r1@x.example>"])
        #expect(message.recipients == ["one@example.com", "two@example.com", "three@example.com"])
        #expect(try Self.parse("In-Reply-To: bare-id@x.example\n\nb").inReplyTo == ["<bare-id@x.example>"])
    }

    @Test("an mbox 'From ' envelope line before the headers is skipped")
    func mboxLine() throws {
        let message = try Self.parse("From MAILER-DAEMON Mon Nov 30 07:45:12 2026\nFrom: a@example.com\nSubject: x\n\nbody")
        #expect(message.from == "a@example.com")
    }

    // MARK: Malformed input

    @Test("malformed messages are refused naming the line and what is wrong")
    func malformed() {
        let cases: [(String, String)] = [
            ("", "the message is empty"),
            ("\nbody only", "line 1: the message has no header section"),
            ("\r\n\r\nbody", "line 1: the message has no header section"),
            ("From: a@example.com\nthis line has no colon\n\nbody", "line 2: a header line without a colon"),
            (" folded: first\nFrom: a@example.com\n\n", "line 1: a folded continuation line comes before any header field"),
            ("From: a@example.com\n: empty name\n\n", "line 2: a header line with an empty field name"),
            ("From: a@example.com\nBad\u{7F}Name: x\n\n", "line 2: a header field name with characters RFC 5322 forbids"),
            ("Subject: hello\nTo: b@example.com\n\nbody", "the header section has no From, In-Reply-To or References"),
            ("Subject: hello\nFrom: undisclosed\n\nbody", "line 2: the From header holds no address"),
            ("From MAILER-DAEMON Mon Nov 30\n\nbody", "line 2: the message has no header section"),
        ]
        for (text, expected) in cases {
            do {
                _ = try InboundMessage.parse(Array(text.utf8))
                Issue.record("accepted \(text.debugDescription)")
            } catch {
                #expect(error.description.hasPrefix(expected), "\(text.debugDescription): \(error)")
            }
        }
        #expect(throws: InboundMessageError.self) { try InboundMessage.parse([0x46, 0x72, 0x00, 0x3A, 0x20, 0x61]) }
        #expect(throws: InboundMessageError.self) { try InboundMessage.parse([UInt8](repeating: 0x41, count: InboundMessage.maxSize + 1)) }
    }

    // MARK: Bounds

    @Test("a 32 MiB Subject or header line is cut before any pattern runs; huge line counts are not all indexed")
    func caps() throws {
        let subject = String(repeating: "out of office ", count: 100_000)
        let parsed = try InboundMessage.parse(Array("From: a@example.org\nSubject: \(subject)\nX-Long: \(String(repeating: "x", count: 1 << 20))\n\nhi\n".utf8))
        #expect((parsed.subject?.count ?? 0) <= InboundMessage.maxSubjectCharacters)
        #expect((parsed.value("X-Long")?.utf8.count ?? 0) <= InboundMessage.maxFieldBytes)
        let lines = MessageLines(Array(repeating: 0x0A, count: 3 << 20))
        #expect(lines.count == InboundMessage.maxLines)
        let joined = MessageLines(Array(repeating: 0x61, count: 3 << 20)).joined(0..<1, limit: InboundMessage.maxPartBytes)
        #expect(joined.count == InboundMessage.maxPartBytes)
    }
}
