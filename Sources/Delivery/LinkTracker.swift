import Foundation

/// Rewrites the links of one email for click tracking (`tracking.clicks: true`): every `http`/`https`
/// link becomes `<tracking.base_url>/c/<token>`, whose signed token leads back to exactly that URL
/// (`ClickToken`). Pure and deterministic: the same message and delivery give the same bytes, so a
/// retry composes what the first attempt did.
///
/// - HTML: the `href` of `<a>` and `<area>` tags, entity-decoded before signing (`&amp;` is `&` in
///   the URL the browser opens). Comments and the raw text of `<script>` and `<style>` are copied
///   untouched. One invisible decoy link is added before `</body>`: no person sees or tabs to it,
///   so a hit on it is a link scanner's (they fetch every `href` in the message).
/// - Text: bare URLs, ending at white space, `<`, `>` or `"`, without trailing punctuation (a
///   closing parenthesis stays when the URL opened one).
/// - Never rewritten: other schemes (`mailto:`, `tel:`), the unsubscribe endpoint's links, links
///   already tracked, URLs with white space or control characters inside, and URLs longer than
///   `ClickToken.maxURLBytes`. Non-ASCII bytes are percent-encoded before signing (RFC 3987 §3.1),
///   so the redirect's `Location` is a plain URI.
public struct LinkTracker: Sendable {
    /// `<tracking.base_url>/c/`.
    let clickPrefix: String
    let key: ClickToken.Key
    /// Links that must keep working untracked: the unsubscribe endpoint's, and our own click links.
    let untouchedPrefixes: [String]

    /// - Parameters:
    ///   - baseURL: `tracking.base_url` (which defaults to `unsubscribe.base_url`).
    ///   - unsubscribeBaseURL: its `/u/` links are never rewritten.
    public init(baseURL: String, key: ClickToken.Key, unsubscribeBaseURL: String?) {
        clickPrefix = Self.trimmingSlash(baseURL) + "/c/"
        self.key = key
        untouchedPrefixes = [clickPrefix.lowercased()] + (unsubscribeBaseURL.map { [(Self.trimmingSlash($0) + "/u/").lowercased()] } ?? [])
    }

    /// The parts with their links rewritten for `deliveryID`; the HTML part gains the decoy link
    /// when the message has any tracked link at all.
    public func rewrite(text: String, html: String?, deliveryID: Int64) -> (text: String, html: String?) {
        var firstURL: String?
        let trackedHTML = html.map { rewriteHTML(Array($0.utf8), deliveryID: deliveryID, firstURL: &firstURL) }
        let trackedText = rewriteText(Array(text.utf8), deliveryID: deliveryID, firstURL: &firstURL)
        guard var trackedHTML, let firstURL else { return (trackedText, trackedHTML) }
        // The decoy leads where the first real link does, so following it looks like any other.
        let decoy = clickPrefix + ClickToken.make(.init(deliveryID: deliveryID, url: firstURL, isDecoy: true), key: key)
        let anchor = #"<a href="\#(Self.escapeAttribute(decoy))" style="display:none" aria-hidden="true" tabindex="-1"></a>"#
        if let body = trackedHTML.range(of: "</body", options: [.caseInsensitive, .backwards]) {
            trackedHTML.insert(contentsOf: anchor, at: body.lowerBound)
        } else {
            trackedHTML += anchor
        }
        return (trackedText, trackedHTML)
    }

    /// The click link for `url` and the URL it signs (percent-encoded), or nil when `url` is not to
    /// be tracked (see the type's comment).
    func tracked(_ url: String, deliveryID: Int64) -> (link: String, url: String)? {
        let lowered = url.lowercased()
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://"),
            !untouchedPrefixes.contains(where: { lowered.hasPrefix($0) })
        else { return nil }
        var encoded = ""
        for byte in url.utf8 {
            if byte <= 0x20 || byte == 0x7F { return nil }
            if byte >= 0x80 {
                encoded += "%" + String(byte, radix: 16, uppercase: true)
            } else {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        // A URL needs a host: `https://` alone, or `https:///path`, is not a link anyone follows.
        let afterScheme = encoded.drop { $0 != ":" }.dropFirst(3)
        guard let host = afterScheme.first, host != "/", host != "?", host != "#",
            encoded.utf8.count <= ClickToken.maxURLBytes
        else { return nil }
        return (clickPrefix + ClickToken.make(.init(deliveryID: deliveryID, url: encoded, isDecoy: false), key: key), encoded)
    }

    // MARK: Text

    private func rewriteText(_ bytes: [UInt8], deliveryID: Int64, firstURL: inout String?) -> String {
        var output = [UInt8]()
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            guard Self.startsURL(bytes, at: index), index == 0 || !Self.isWordByte(bytes[index - 1]) else {
                output.append(bytes[index])
                index += 1
                continue
            }
            var end = index
            while end < bytes.count, !Self.endsBareURL(bytes[end]) { end += 1 }
            while end > index, Self.isTrailingPunctuation(bytes[end - 1]) {
                if bytes[end - 1] == UInt8(ascii: ")"),
                    bytes[index..<end].count(where: { $0 == UInt8(ascii: "(") }) >= bytes[index..<end].count(where: { $0 == UInt8(ascii: ")") })
                { break }
                end -= 1
            }
            let url = String(decoding: bytes[index..<end], as: UTF8.self)
            if let tracked = tracked(url, deliveryID: deliveryID) {
                if firstURL == nil { firstURL = tracked.url }
                output += Array(tracked.link.utf8)
            } else {
                output += bytes[index..<end]
            }
            index = end
        }
        return String(decoding: output, as: UTF8.self)
    }

    static func startsURL(_ bytes: [UInt8], at index: Int) -> Bool {
        func hasPrefix(_ prefix: String) -> Bool {
            let wanted = Array(prefix.utf8)
            guard index + wanted.count <= bytes.count else { return false }
            return zip(bytes[index..<(index + wanted.count)], wanted).allSatisfy { lowercased($0) == $1 }
        }
        return hasPrefix("http://") || hasPrefix("https://")
    }

    static func endsBareURL(_ byte: UInt8) -> Bool {
        byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: "<") || byte == UInt8(ascii: ">") || byte == UInt8(ascii: "\"")
    }

    static func isTrailingPunctuation(_ byte: UInt8) -> Bool {
        ".,;:!?')]}".utf8.contains(byte)
    }

    static func isWordByte(_ byte: UInt8) -> Bool {
        let lower = lowercased(byte)
        return (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(lower) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    static func lowercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
    }

    // MARK: HTML

    /// A small tokenizer after the HTML standard's tag and attribute states: enough to find every
    /// `href` a browser would, and never one inside a comment, a script or an attribute value.
    private func rewriteHTML(_ bytes: [UInt8], deliveryID: Int64, firstURL: inout String?) -> String {
        var output = [UInt8]()
        output.reserveCapacity(bytes.count + 256)
        var index = 0
        func starts(_ prefix: String, at start: Int) -> Bool {
            let wanted = Array(prefix.utf8)
            return start + wanted.count <= bytes.count
                && zip(bytes[start..<(start + wanted.count)], wanted).allSatisfy { Self.lowercased($0) == $1 }
        }
        func find(_ needle: String, from start: Int) -> Int? {
            let wanted = Array(needle.utf8)
            var at = start
            while at + wanted.count <= bytes.count {
                if zip(bytes[at..<(at + wanted.count)], wanted).allSatisfy({ Self.lowercased($0) == $1 }) { return at }
                at += 1
            }
            return nil
        }
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: "<") else {
                output.append(bytes[index])
                index += 1
                continue
            }
            if starts("<!--", at: index) {
                let end = find("-->", from: index + 4).map { $0 + 3 } ?? bytes.count
                output += bytes[index..<end]
                index = end
                continue
            }
            guard index + 1 < bytes.count, Self.isLetter(bytes[index + 1]) else {
                output.append(bytes[index])
                index += 1
                continue
            }
            let tag = Self.parseTag(bytes, at: index)
            if tag.name == "a" || tag.name == "area", let href = tag.href {
                let raw = String(decoding: bytes[href.valueStart..<href.valueEnd], as: UTF8.self)
                let url = Self.decodeEntities(raw).trimmingASCIIWhitespace()
                if let tracked = tracked(url, deliveryID: deliveryID) {
                    if firstURL == nil { firstURL = tracked.url }
                    output += bytes[index..<href.spanStart]
                    output += Array(("\"" + Self.escapeAttribute(tracked.link) + "\"").utf8)
                    output += bytes[href.spanEnd..<tag.end]
                    index = tag.end
                    continue
                }
            }
            output += bytes[index..<tag.end]
            index = tag.end
            // Raw text elements: their content is not markup.
            if tag.name == "script" || tag.name == "style" {
                let end = find("</" + tag.name, from: index) ?? bytes.count
                output += bytes[index..<end]
                index = end
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    struct Tag {
        var name: String
        /// Just past the closing `>` (or the end of the input).
        var end: Int
        var href: Attribute?
    }

    struct Attribute {
        /// The value as written, quotes included, and without them.
        var spanStart: Int, spanEnd: Int, valueStart: Int, valueEnd: Int
    }

    /// The start tag at `start` (`<` then a letter): its lowercased name, where it ends, and its
    /// first `href` attribute with a value (a browser ignores later duplicates).
    static func parseTag(_ bytes: [UInt8], at start: Int) -> Tag {
        var index = start + 1
        var name = [UInt8]()
        while index < bytes.count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: "/"), bytes[index] != UInt8(ascii: ">") {
            name.append(lowercased(bytes[index]))
            index += 1
        }
        var tag = Tag(name: String(decoding: name, as: UTF8.self), end: bytes.count, href: nil)
        while index < bytes.count {
            while index < bytes.count, isSpace(bytes[index]) || bytes[index] == UInt8(ascii: "/") { index += 1 }
            guard index < bytes.count else { break }
            if bytes[index] == UInt8(ascii: ">") {
                tag.end = index + 1
                return tag
            }
            // The attribute name (an `=` in the first position belongs to the name).
            var attribute = [UInt8]()
            repeat {
                attribute.append(lowercased(bytes[index]))
                index += 1
            } while index < bytes.count && !isSpace(bytes[index]) && !"/>=".utf8.contains(bytes[index])
            while index < bytes.count, isSpace(bytes[index]) { index += 1 }
            guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else { continue }
            index += 1
            while index < bytes.count, isSpace(bytes[index]) { index += 1 }
            guard index < bytes.count else { break }
            let spanStart = index
            let value: (start: Int, end: Int)
            if bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") {
                let quote = bytes[index]
                var close = index + 1
                while close < bytes.count, bytes[close] != quote { close += 1 }
                value = (index + 1, close)
                index = min(close + 1, bytes.count)
            } else {
                var close = index
                while close < bytes.count, !isSpace(bytes[close]), bytes[close] != UInt8(ascii: ">") { close += 1 }
                value = (index, close)
                index = close
            }
            if attribute == Array("href".utf8), tag.href == nil {
                tag.href = Attribute(spanStart: spanStart, spanEnd: index, valueStart: value.start, valueEnd: value.end)
            }
        }
        return tag
    }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0C || byte == 0x0D
    }

    static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(lowercased(byte))
    }

    /// Character references as they appear in URLs: the five predefined entities and numeric
    /// ones. Other named references are left as written (they do not occur in URLs in practice).
    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        let named = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'"]
        var output = ""
        var rest = Substring(text)
        while let ampersand = rest.firstIndex(of: "&") {
            output += rest[..<ampersand]
            rest = rest[ampersand...]
            guard let semicolon = rest.prefix(12).firstIndex(of: ";") else {
                output += "&"
                rest = rest.dropFirst()
                continue
            }
            let reference = rest[rest.index(after: rest.startIndex)..<semicolon]
            var decoded: String?
            if reference.hasPrefix("#x") || reference.hasPrefix("#X") {
                decoded = UInt32(reference.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String($0) }
            } else if reference.hasPrefix("#") {
                decoded = UInt32(reference.dropFirst(), radix: 10).flatMap(Unicode.Scalar.init).map { String($0) }
            } else {
                decoded = named[String(reference)]
            }
            if let decoded {
                output += decoded
                rest = rest[rest.index(after: semicolon)...]
            } else {
                output += "&"
                rest = rest.dropFirst()
            }
        }
        return output + rest
    }

    /// For a double-quoted attribute value.
    static func escapeAttribute(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "<", with: "&lt;")
    }

    static func trimmingSlash(_ base: String) -> String {
        base.hasSuffix("/") ? String(base.dropLast()) : base
    }
}

extension String {
    fileprivate func trimmingASCIIWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.utf8.first, LinkTracker.isSpace(first) { slice = slice.dropFirst() }
        while let last = slice.utf8.last, LinkTracker.isSpace(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
