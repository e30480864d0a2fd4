import Foundation

/// RFC 2047 encoded-words (`=?charset?B|Q?text?=`), both ways. seqd writes B words in UTF-8
/// for header text that cannot go as it is (``HeaderEncoding``); it reads B and Q words in any
/// charset ``MIMEDecoding`` knows, in the headers of inbound mail.
enum EncodedWord {
    /// RFC 2047 §2: an encoded-word is at most 75 characters.
    static let maxLength = 75

    // MARK: Encoding

    /// `=?UTF-8?B?…?=` words of at most `maxLength` characters, each holding whole characters
    /// (RFC 2047 §5 forbids splitting one across words).
    static func encode(_ text: String, maxLength: Int) -> [String] {
        let overhead = "=?UTF-8?B??=".utf8.count
        let maxBytes = (maxLength - overhead) / 4 * 3
        var words: [String] = []
        var chunk: [UInt8] = []
        func flush() {
            guard !chunk.isEmpty else { return }
            words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=")
            chunk.removeAll(keepingCapacity: true)
        }
        func append(_ bytes: some Collection<UInt8>) {
            if chunk.count + bytes.count > maxBytes { flush() }
            chunk.append(contentsOf: bytes)
        }
        for character in text {
            let bytes = Array(character.utf8)
            if bytes.count <= maxBytes {
                // Prefer ending a word after a space: some decoders (Python's address parser among
                // them) wrongly insert a space between adjacent encoded-words, which then falls
                // between two words instead of inside one.
                if chunk.count + bytes.count > maxBytes,
                   let space = chunk.lastIndex(of: UInt8(ascii: " ")), space >= maxBytes / 2 {
                    let rest = Array(chunk[(space + 1)...])
                    chunk.removeSubrange((space + 1)...)
                    flush()
                    chunk = rest
                }
                append(bytes)
            } else {
                // A grapheme cluster longer than a whole word (long emoji sequences, stacked
                // combining marks) is split between scalars, which decoders reassemble.
                for scalar in character.unicodeScalars { append(Array(String(scalar).utf8)) }
            }
        }
        flush()
        return words
    }

    // MARK: Decoding

    /// Decodes the encoded-words in an unstructured header (`Subject`). Whitespace between two
    /// adjacent encoded-words is dropped, as RFC 2047 §6.2 says; a malformed word stays as written.
    static func decode(_ value: String) -> String {
        guard value.contains("=?") else { return value }
        var output = ""
        var pendingSpace = ""
        var previousWasEncoded = false
        var rest = Substring(value)
        while !rest.isEmpty {
            // Split off the next run of whitespace or the next word.
            if rest.first!.isWhitespace {
                let space = rest.prefix(while: \.isWhitespace)
                pendingSpace += space
                rest = rest.dropFirst(space.count)
                continue
            }
            let word = rest.prefix { !$0.isWhitespace }
            rest = rest.dropFirst(word.count)
            if let decoded = decodeWord(word) {
                if !previousWasEncoded { output += pendingSpace }
                output += decoded
                previousWasEncoded = true
            } else {
                output += pendingSpace + word
                previousWasEncoded = false
            }
            pendingSpace = ""
        }
        return output + pendingSpace
    }

    /// One `=?charset?B|Q?text?=`, or nil when `word` is not one.
    static func decodeWord(_ word: Substring) -> String? {
        guard word.hasPrefix("=?"), word.hasSuffix("?="), word.count >= 8 else { return nil }
        let inner = word.dropFirst(2).dropLast(2)
        let parts = inner.split(separator: "?", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty else { return nil }
        // RFC 2231 allows a language after '*': "utf-8*en".
        let charset = String(parts[0].split(separator: "*").first ?? parts[0])
        let payload = Array(parts[2].utf8)
        switch parts[1].lowercased() {
        case "b": return MIMEDecoding.text(MIMEDecoding.base64(payload), charset: charset)
        case "q": return MIMEDecoding.text(QuotedPrintable.decode(payload, underscoreIsSpace: true), charset: charset)
        default: return nil
        }
    }
}
