import Foundation
import Mail

/// Small, independent decoders for the Mail and Delivery tests: the tests check the encoders
/// against these rather than against the encoders' own idea of what they produce (nor against
/// Mail's own parser).

/// The message's lines, split on CRLF (the final CRLF does not start another line).
public func crlfLines(_ data: [UInt8]) -> [String] {
    var text = String(decoding: data, as: UTF8.self)
    if text.hasSuffix("\r\n") { text.removeLast() }  // "\r\n" is one Character in Swift
    return text.components(separatedBy: "\r\n")
}

/// Header fields (unfolded) up to the first empty line, in order.
public func headerFields(_ data: [UInt8]) -> [(name: String, value: String)] {
    var fields: [(name: String, value: String)] = []
    for line in crlfLines(data) {
        if line.isEmpty { break }
        if line.first == " " || line.first == "\t" {
            fields[fields.count - 1].value += line  // unfolding removes only the CRLF
        } else {
            let colon = line.firstIndex(of: ":")!
            fields.append((String(line[..<colon]), String(line[line.index(after: colon)...].dropFirst())))
        }
    }
    return fields
}

public func header(_ name: String, in data: [UInt8]) -> String? {
    headerFields(data).first { $0.name.lowercased() == name.lowercased() }?.value
}

/// Decodes RFC 2047 B and Q encoded-words; whitespace between adjacent encoded-words is dropped.
public func decodeRFC2047(_ value: String) -> String {
    let pattern = try! NSRegularExpression(pattern: #"=\?([^?]+)\?([BbQq])\?([^?]*)\?="#)
    var result = ""
    var previousWasEncoded = false
    var cursor = value.startIndex
    let matches = pattern.matches(in: value, range: NSRange(value.startIndex..., in: value))
    for match in matches {
        let range = Range(match.range, in: value)!
        let between = String(value[cursor..<range.lowerBound])
        if !(previousWasEncoded && between.allSatisfy(\.isWhitespace)) { result += between }
        let encoding = value[Range(match.range(at: 2), in: value)!].uppercased()
        let text = String(value[Range(match.range(at: 3), in: value)!])
        let bytes: [UInt8]
        if encoding == "B" {
            bytes = Array(Data(base64Encoded: text)!)
        } else {
            bytes = decodeQuotedPrintable(text.replacingOccurrences(of: "_", with: " "))
        }
        result += String(decoding: bytes, as: UTF8.self)
        previousWasEncoded = true
        cursor = range.upperBound
    }
    result += value[cursor...]
    return result
}

/// RFC 2045 quoted-printable decoding: soft breaks removed, `=XX` decoded, CRLF kept.
public func decodeQuotedPrintable(_ text: String) -> [UInt8] {
    let bytes = Array(text.utf8)
    var output: [UInt8] = []
    var index = 0
    while index < bytes.count {
        if bytes[index] == UInt8(ascii: "=") {
            if index + 2 < bytes.count, bytes[index + 1] == 0x0D, bytes[index + 2] == 0x0A {
                index += 3
                continue
            }
            let hex = String(decoding: bytes[(index + 1)...(index + 2)], as: UTF8.self)
            output.append(UInt8(hex, radix: 16)!)
            index += 3
        } else {
            output.append(bytes[index])
            index += 1
        }
    }
    return output
}

extension OutgoingMessage {
    /// A typical message; tests change only what they are about.
    public static func sample(
        subject: String = "Welcome aboard",
        text: String = "Hello Ann,\nthanks for signing up.\n",
        html: String? = nil,
        deliveryKey: String = "d-123-intro"
    ) -> OutgoingMessage {
        OutgoingMessage(
            fromAddress: "hello@example.com",
            fromName: "Example Team",
            toAddress: "ann@example.org",
            toName: "Ann Example",
            subject: subject,
            text: text,
            html: html,
            deliveryKey: deliveryKey,
            date: Date(timeIntervalSince1970: 1_751_362_200),  // 2025-07-01 09:30:00 UTC, a Tuesday
            listUnsubscribeURL: "https://seqd.example.com/u/tok123",
            listUnsubscribeMailto: "unsubscribe@example.com"
        )
    }
}

extension MessageID.Key {
    /// A fixed key, so composed messages are the same in every test run.
    public static let testing = MessageID.Key(secret: "test-secret")
}
