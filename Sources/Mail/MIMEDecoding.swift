import Foundation

/// The decoding half of MIME that inbound mail needs (RFC 2045–2047): transfer encodings,
/// charsets, `Content-Type` parameters, address and msg-id lists. Quoted-printable and
/// encoded-words are decoded beside their encoders, in ``QuotedPrintable`` and ``EncodedWord``.
/// Lenient on purpose: mail in the wild breaks every rule, and a header we cannot decode is
/// better read roughly than refused (only the message's outer structure is checked strictly).
enum MIMEDecoding {
    // MARK: Transfer encodings

    /// Decodes a body by its `Content-Transfer-Encoding`; unknown encodings pass through.
    static func decodeBody(_ bytes: [UInt8], transferEncoding: String?) -> [UInt8] {
        switch transferEncoding?.lowercased().trimmingCharacters(in: .whitespaces) {
        case "base64": base64(bytes)
        case "quoted-printable": QuotedPrintable.decode(bytes)
        default: bytes
        }
    }

    /// Base64, ignoring line breaks and stray characters (as mail readers do).
    static func base64(_ bytes: [UInt8]) -> [UInt8] {
        var cleaned = bytes.filter { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"): true
            default: false
            }
        }
        // Padding is optional in practice; a dangling single character carries no whole byte.
        if cleaned.count % 4 == 1 { cleaned.removeLast() }
        while cleaned.count % 4 != 0 { cleaned.append(UInt8(ascii: "=")) }
        return Data(base64Encoded: Data(cleaned)).map { Array($0) } ?? []
    }

    // MARK: Charsets

    /// Text in `charset`; unknown charsets and invalid bytes decode as UTF-8 with replacement
    /// characters, so decoding never fails.
    static func text(_ bytes: [UInt8], charset: String?) -> String {
        let encoding: String.Encoding? =
            switch charset?.lowercased().trimmingCharacters(in: .whitespaces) {
            case "iso-8859-1", "latin1", "iso_8859-1", "l1": .isoLatin1
            case "windows-1252", "cp1252": .windowsCP1252
            case "iso-8859-2", "latin2": .isoLatin2
            case "utf-16": .utf16
            default: nil
            }
        if let encoding, let decoded = String(data: Data(bytes), encoding: encoding) { return decoded }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: Structured header values

    /// A `Content-Type` (or `Content-Disposition`) value: the lower-cased `type/subtype` and its
    /// parameters with lower-cased names and unquoted values.
    static func contentType(_ value: String) -> (type: String, parameters: [String: String]) {
        let pieces = splitOutsideQuotes(value, separator: ";")
        let type = (pieces.first ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        var parameters = [String: String]()
        for piece in pieces.dropFirst() {
            guard let equals = piece.firstIndex(of: "=") else { continue }
            let name = piece[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            var parameterValue = piece[piece.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if parameterValue.count >= 2, parameterValue.hasPrefix("\""), parameterValue.hasSuffix("\"") {
                parameterValue = unquote(String(parameterValue.dropFirst().dropLast()))
            }
            if !name.isEmpty, parameters[name] == nil { parameters[name] = parameterValue }
        }
        return (type, parameters)
    }

    /// Splits at `separator` where it is not inside a quoted string, a comment or angle brackets.
    static func splitOutsideQuotes(_ value: String, separator: Character) -> [String] {
        var pieces = [String]()
        var current = ""
        var inQuotes = false
        var escaped = false
        var commentDepth = 0
        var inAngle = false
        for character in value {
            if escaped {
                current.append(character)
                escaped = false
                continue
            }
            switch character {
            case "\\" where inQuotes || commentDepth > 0: escaped = true
            case "\"" where commentDepth == 0: inQuotes.toggle()
            case "(" where !inQuotes: commentDepth += 1
            case ")" where !inQuotes && commentDepth > 0: commentDepth -= 1
            case "<" where !inQuotes && commentDepth == 0: inAngle = true
            case ">" where !inQuotes && commentDepth == 0: inAngle = false
            case separator where !inQuotes && commentDepth == 0 && !inAngle:
                pieces.append(current)
                current = ""
                continue
            default: break
            }
            current.append(character)
        }
        pieces.append(current)
        return pieces
    }

    private static func unquote(_ text: String) -> String {
        var output = ""
        var escaped = false
        for character in text {
            if !escaped && character == "\\" {
                escaped = true
                continue
            }
            output.append(character)
            escaped = false
        }
        return output
    }

    /// The addresses of an address-list header (`From`, `To`, `Cc`), lower-cased: the angle-addr
    /// of each mailbox, or its bare addr-spec; comments, display names and group syntax dropped.
    static func addresses(_ value: String) -> [String] {
        // A group ("team: a@x, b@y;") is a phrase, a colon and a list: the list is what counts.
        var list = value
        if let colon = firstOutsideQuotes(":", in: value), !value[..<colon].contains("<"), !value[..<colon].contains("@") {
            list = String(value[value.index(after: colon)...]).replacingOccurrences(of: ";", with: "")
        }
        return splitOutsideQuotes(list, separator: ",").compactMap(address)
    }

    /// One mailbox's address, or nil when it has none.
    static func address(_ mailbox: String) -> String? {
        let withoutComments = removingComments(mailbox)
        var candidate: Substring
        if let open = withoutComments.lastIndex(of: "<"),
            let close = withoutComments[open...].firstIndex(of: ">")
        {
            candidate = withoutComments[withoutComments.index(after: open)..<close]
        } else {
            // No angle brackets: the addr-spec is the last word holding an '@'.
            guard let word = withoutComments.split(whereSeparator: \.isWhitespace).last(where: { $0.contains("@") }) else {
                return nil
            }
            candidate = word
        }
        // An obsolete source route ("<@relay:user@host>") comes before the colon.
        if candidate.hasPrefix("@"), let colon = candidate.firstIndex(of: ":") { candidate = candidate[candidate.index(after: colon)...] }
        let address = candidate.trimmingCharacters(in: .whitespaces).lowercased()
        guard let at = address.lastIndex(of: "@"), at != address.startIndex, address.index(after: at) != address.endIndex,
            !address.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" })
        else { return nil }
        return address
    }

    private static func firstOutsideQuotes(_ target: Character, in value: String) -> String.Index? {
        var inQuotes = false
        var index = value.startIndex
        while index < value.endIndex {
            let character = value[index]
            if character == "\"" { inQuotes.toggle() }
            if character == target && !inQuotes { return index }
            index = value.index(after: index)
        }
        return nil
    }

    /// The value with `(comments)` removed (outside quoted strings), nested ones included.
    static func removingComments(_ value: String) -> String {
        var output = ""
        var depth = 0
        var inQuotes = false
        var escaped = false
        for character in value {
            if escaped {
                if depth == 0 { output.append(character) }
                escaped = false
                continue
            }
            switch character {
            case "\\" where inQuotes || depth > 0:
                escaped = true
                if depth == 0 { output.append(character) }
            case "\"" where depth == 0:
                inQuotes.toggle()
                output.append(character)
            case "(" where !inQuotes: depth += 1
            case ")" where !inQuotes && depth > 0: depth -= 1
            default: if depth == 0 { output.append(character) }
            }
        }
        return output
    }

    /// The msg-ids of `In-Reply-To`, `References` or `Message-ID`, each as `<id>`. Clients that
    /// forget the angle brackets write a bare `id@host`; that is accepted too.
    static func messageIDs(_ value: String) -> [String] {
        let text = removingComments(value)
        var ids = [String]()
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "<") {
            guard let close = rest[open...].firstIndex(of: ">") else { break }
            let inner = rest[rest.index(after: open)..<close].filter { !$0.isWhitespace }
            if !inner.isEmpty { ids.append("<\(inner)>") }
            rest = rest[rest.index(after: close)...]
        }
        if ids.isEmpty {
            ids = text.split(whereSeparator: { $0.isWhitespace || $0 == "," })
                .filter { $0.contains("@") && !$0.contains("<") && !$0.contains(">") }
                .map { "<\($0)>" }
        }
        return ids
    }
}
