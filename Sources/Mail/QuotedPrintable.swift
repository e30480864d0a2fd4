/// Quoted-printable (RFC 2045 §6.7), both ways: strict when encoding, lenient when decoding.
///
/// QP keeps mostly-ASCII text readable in the raw message and guarantees short 7-bit lines, which
/// is what lets the composer promise that no line exceeds 998 octets whatever the template
/// produced. It never dot-stuffs: a line starting with "." is left alone because libcurl stuffs
/// SMTP data itself, and the file transport must store the message as the recipient will see it.
enum QuotedPrintable {
    /// Encoded lines are at most 76 characters, the soft-break `=` included.
    static let lineLimit = 76

    /// Encodes `text` with CRLF hard line breaks (input LF, CR or CRLF all count as one break).
    /// The result ends with CRLF unless it is empty.
    static func encode(_ text: String) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count + text.utf8.count / 8)
        for line in lines(of: text) {
            encodeLine(line, into: &output)
            output += [0x0D, 0x0A]
        }
        return output
    }

    /// Splits on CRLF, CR or LF; a final line break does not start another (empty) line.
    static func lines(of text: String) -> [ArraySlice<UInt8>] {
        let bytes = Array(text.utf8)
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        var index = 0
        while index < bytes.count {
            switch bytes[index] {
            case 0x0D:
                lines.append(bytes[start..<index])
                index += (index + 1 < bytes.count && bytes[index + 1] == 0x0A) ? 2 : 1
                start = index
            case 0x0A:
                lines.append(bytes[start..<index])
                index += 1
                start = index
            default:
                index += 1
            }
        }
        if start < bytes.count { lines.append(bytes[start...]) }
        return lines
    }

    /// One hard line, with soft breaks (`=` CRLF) so that no encoded line exceeds 76 characters.
    /// An escape (`=XX`) is never split by a soft break. Appends in place: bodies can be large and
    /// this runs for every message, so no per-byte allocations.
    static func encodeLine(_ line: ArraySlice<UInt8>, into output: inout [UInt8]) {
        guard let last = line.indices.last else { return }
        var lineLength = 0
        for index in line.indices {
            let byte = line[index]
            let isLast = index == last
            let literal = isLiteral(byte, atEndOfLine: isLast)
            let width = literal ? 1 : 3
            // Every line but the last of this hard line needs one more column for the soft break.
            if lineLength + width > (isLast ? lineLimit : lineLimit - 1) {
                output += [UInt8(ascii: "="), 0x0D, 0x0A]
                lineLength = 0
            }
            if literal {
                output.append(byte)
            } else {
                output += [UInt8(ascii: "="), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0F)]]
            }
            lineLength += width
        }
    }

    static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// Printable ASCII other than `=` stands for itself. Space and tab do too, except at the end of
    /// a hard line, where transports may strip trailing whitespace (RFC 2045 rule 3).
    static func isLiteral(_ byte: UInt8, atEndOfLine: Bool) -> Bool {
        switch byte {
        case 0x21...0x3C, 0x3E...0x7E: true
        case 0x20, 0x09: !atEndOfLine
        default: false
        }
    }

    // MARK: Decoding

    /// Decodes quoted-printable leniently, as mail readers do: a soft break may have trailing
    /// white space and a bare LF, and a malformed `=` sequence is kept as it stands. With
    /// `underscoreIsSpace`, the Q encoding of RFC 2047 (``EncodedWord``).
    static func decode(_ bytes: [UInt8], underscoreIsSpace: Bool = false) -> [UInt8] {
        var output = [UInt8]()
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "="), index + 1 < bytes.count {
                // Soft line break: "=" then optional whitespace then CRLF or LF.
                var next = index + 1
                while next < bytes.count, bytes[next] == 0x20 || bytes[next] == 0x09 { next += 1 }
                if next < bytes.count, bytes[next] == 0x0D || bytes[next] == 0x0A {
                    if bytes[next] == 0x0D, next + 1 < bytes.count, bytes[next + 1] == 0x0A { next += 1 }
                    index = next + 1
                    continue
                }
                if index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                    output.append(high << 4 | low)
                    index += 3
                    continue
                }
            }
            output.append(underscoreIsSpace && byte == UInt8(ascii: "_") ? 0x20 : byte)
            index += 1
        }
        return output
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
