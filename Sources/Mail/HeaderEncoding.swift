import Foundation

/// Header field construction: neutralising untrusted input, RFC 2047 encoded-words and folding.
///
/// Every header value passes through here, which is where injection is prevented: no CR or LF from
/// any input ever reaches the output except as the folding this file inserts itself.
package enum HeaderEncoding {
    /// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters (MUST be at most 998).
    static let lineLimit = 78

    // MARK: Neutralising input

    /// Replaces every character that could end a header line or confuse a reader (C0 and C1
    /// controls, DEL, U+2028/U+2029) with a space. Line breaks are replaced rather than removed
    /// so words on either side stay apart.
    package static func sanitizeText(_ text: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            result.append(isControl(scalar) ? " " : scalar)
        }
        return String(result)
    }

    /// Cuts the address at the first control character and drops whitespace and the characters
    /// that delimit addresses in a header (`<>(),;:"\`), so an address can neither inject a header
    /// nor add a recipient, and the envelope and header addresses agree. Cutting rather than
    /// joining matters: `a@example.org\r\nCc: x@evil.test` joined would become an address at
    /// evil.test. Quoted local parts are therefore not supported.
    static func sanitizeAddress(_ address: String) -> String {
        // Nearly every address is printable ASCII with nothing to drop: returned as it is, without
        // the Unicode property lookups below (they showed in the daemon's profile).
        let plain = address.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: ","),
                UInt8(ascii: ";"), UInt8(ascii: ":"), UInt8(ascii: "\""), UInt8(ascii: "\\"): false
            default: byte > 0x20 && byte < 0x7F
            }
        }
        if plain { return address }
        var result = String.UnicodeScalarView()
        for scalar in address.unicodeScalars {
            if isControl(scalar) { break }
            if scalar.properties.isWhitespace || "<>(),;:\"\\".unicodeScalars.contains(scalar) { continue }
            result.append(scalar)
        }
        return String(result)
    }

    /// Makes a URI safe inside `<…>` (RFC 2369): percent-encodes controls, whitespace, angle
    /// brackets and non-ASCII bytes, keeping everything else (including existing `%XX`) as is.
    static func sanitizeURI(_ uri: String) -> String {
        var result = ""
        for byte in uri.utf8 {
            if byte > 0x20, byte < 0x7F, byte != UInt8(ascii: "<"), byte != UInt8(ascii: ">") {
                result.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                result += "%" + hexByte(byte)
            }
        }
        return result
    }

    /// Normalises a Message-ID reference to `<id>` with nothing that could break the header.
    static func sanitizeMessageID(_ id: String) -> String? {
        let core = sanitizeAddress(id)  // also drops the brackets, which are then added back
        return core.isEmpty ? nil : "<\(core)>"
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029: true
        default: false
        }
    }

    // MARK: Tokens

    /// The longest encoded-word that still fits on the header's first line after `Name: `.
    static func maxWordLength(forHeader name: String) -> Int {
        min(EncodedWord.maxLength, lineLimit - name.utf8.count - 2)
    }

    /// Tokens for an unstructured field such as `Subject`: the words themselves when the text is
    /// plain ASCII that folds losslessly, otherwise RFC 2047 encoded-words.
    static func unstructuredTokens(_ text: String, header name: String) -> [String] {
        let text = sanitizeText(text)
        if text.isEmpty { return [] }
        let words = text.split(separator: " ", omittingEmptySubsequences: false)
        // Folding happens only at single spaces between words, so runs of spaces, leading or
        // trailing spaces and over-long words would not survive it; `=?` would be misread as an
        // encoded-word. All of those go encoded instead, which round-trips exactly.
        let plain = isPrintableASCII(text)
            && !text.contains("=?")
            && words.allSatisfy { !$0.isEmpty && $0.utf8.count <= maxWordLength(forHeader: name) }
        return plain ? words.map(String.init) : EncodedWord.encode(text, maxLength: maxWordLength(forHeader: name))
    }

    /// Tokens for a display name (RFC 5322 `phrase`): atoms as they are, a quoted-string when
    /// the name has specials, encoded-words when it is not ASCII or too long to quote on one line.
    static func phraseTokens(_ name: String, header: String) -> [String] {
        let name = sanitizeText(name)
        if name.isEmpty { return [] }
        let maxLength = maxWordLength(forHeader: header)
        guard isPrintableASCII(name), !name.contains("=?") else {
            return EncodedWord.encode(name, maxLength: maxLength)
        }
        let atoms = name.split(separator: " ", omittingEmptySubsequences: false)
        if atoms.allSatisfy({ !$0.isEmpty && $0.utf8.count <= maxLength && $0.unicodeScalars.allSatisfy(isAtext) }) {
            return atoms.map(String.init)
        }
        let quoted = "\"" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        return quoted.utf8.count <= maxLength ? [quoted] : EncodedWord.encode(name, maxLength: maxLength)
    }

    // MARK: Folding

    /// `Name: tokens…` with CRLF folding before any token that would pass 78 characters.
    /// A single token longer than that (a long URL) stays whole on its own line.
    static func field(_ name: String, _ tokens: [String]) -> String {
        var output = name + ":"
        var lineLength = output.utf8.count
        for (index, token) in tokens.enumerated() {
            let length = token.utf8.count
            if index > 0, lineLength + 1 + length > lineLimit {
                output += "\r\n"
                lineLength = 0
            }
            output += " " + token
            lineLength += 1 + length
        }
        return output + "\r\n"
    }

    // MARK: Character classes

    static func isPrintableASCII(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    /// RFC 5322 `atext`.
    static func isAtext(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9": true
        default: "!#$%&'*+-/=?^_`{|}~".unicodeScalars.contains(scalar)
        }
    }

    static func hexByte(_ byte: UInt8) -> String {
        let digits = QuotedPrintable.hexDigits
        return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]], as: UTF8.self)
    }
}
