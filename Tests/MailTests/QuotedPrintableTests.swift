import Foundation
import TestSupport
import Testing

@testable import Mail

@Suite("Quoted-printable")
struct QuotedPrintableTests {
    private func encode(_ text: String) -> String {
        String(decoding: QuotedPrintable.encode(text), as: UTF8.self)
    }

    @Test("long lines get soft breaks and no encoded line exceeds 76 characters")
    func lineLimit() {
        let text = String(repeating: "a", count: 200) + "\n" + String(repeating: "é", count: 60) + "\n"
        let encoded = encode(text)
        let lines = crlfLines(Array(encoded.utf8))
        #expect(lines.count > 4)
        #expect(lines.allSatisfy { $0.utf8.count <= 76 })
        #expect(lines[0] == String(repeating: "a", count: 75) + "=")
        // A soft break never splits an escape: every "=" starts "=XX" or ends its line.
        for line in lines {
            let bytes = Array(line.utf8)
            for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "=") {
                #expect(index == bytes.count - 1 || index + 2 < bytes.count)
            }
        }
        #expect(decodeQuotedPrintable(encoded) == Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8))
    }

    @Test("a line of exactly 76 characters needs no soft break")
    func exactLimit() {
        #expect(encode(String(repeating: "b", count: 76)) == String(repeating: "b", count: 76) + "\r\n")
        #expect(encode(String(repeating: "b", count: 77)) == String(repeating: "b", count: 75) + "=\r\nbb\r\n")
    }

    @Test("= and non-ASCII are escaped as =XX in upper-case hex")
    func escapes() {
        #expect(encode("a=b") == "a=3Db\r\n")
        #expect(encode("café ✓") == "caf=C3=A9 =E2=9C=93\r\n")
        #expect(encode("nul\u{0}bell\u{7}") == "nul=00bell=07\r\n")
    }

    @Test("whitespace is literal inside a line and encoded before a line break")
    func trailingWhitespace() {
        #expect(encode("two words \nnext\t\nend ") == "two words=20\r\nnext=09\r\nend=20\r\n")
    }

    @Test("lines starting with a dot arrive intact (no dot-stuffing)")
    func leadingDot() {
        #expect(encode(".\n.hidden\n..two") == ".\r\n.hidden\r\n..two\r\n")
    }

    @Test(
        "LF, CR and CRLF input all become CRLF",
        arguments: ["one\ntwo\n", "one\r\ntwo\r\n", "one\rtwo\r", "one\ntwo"]
    )
    func lineEndings(input: String) {
        #expect(encode(input) == "one\r\ntwo\r\n")
    }

    @Test("empty lines are kept and an empty body encodes to nothing")
    func emptyLines() {
        #expect(encode("a\n\n\nb") == "a\r\n\r\n\r\nb\r\n")
        #expect(encode("").isEmpty)
    }
}
