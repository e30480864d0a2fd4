import Foundation
import Mail

/// What an `Authentication-Results` header (RFC 8601) added by the operator's own MTA proves about
/// an inbound message's `From` domain. Pure: reads the parsed header fields only.
///
/// A `From` header proves nothing by itself: anyone can write any address there. The receiving
/// MTA can check SPF, DKIM and DMARC and record what it found in `Authentication-Results`, under
/// its own name (the authserv-id). seqd believes only results under the authserv-id the operator
/// configured (`inbound.authserv_id`); that MTA must remove such headers arriving from outside
/// (RFC 8601 §5), which OpenDMARC, rspamd and the large providers do.
public enum SenderAuthentication {
    /// Longest `Authentication-Results` value read; an MTA's own results are a few hundred bytes.
    static let maxValueLength = 8 << 10

    /// The evidence, like `dmarc=pass header.from=example.com by mx.example.net`, that the From
    /// domain of `message` is authenticated by `authservID`: DMARC pass for that domain, or a DKIM
    /// pass whose `header.d`, or an SPF pass whose `smtp.mailfrom` domain, is aligned with it
    /// (equal, or one a subdomain of the other). nil when there is none.
    public static func evidence(_ message: InboundMessage, authservID: String) -> String? {
        guard let from = message.from, let at = from.lastIndex(of: "@") else { return nil }
        let fromDomain = normalized(from[from.index(after: at)...])
        let wanted = normalized(Substring(authservID))
        guard !fromDomain.isEmpty, !wanted.isEmpty else { return nil }
        // DMARC is the verdict made for exactly this question; aligned DKIM or SPF stand in for it.
        var passed = Set<String>()
        for field in message.fields where field.name.caseInsensitiveCompare("Authentication-Results") == .orderedSame {
            guard field.value.utf8.count <= maxValueLength else { continue }
            let statements = withoutComments(field.value).split(separator: ";").map { $0.split(whereSeparator: \.isWhitespace) }
            // The authserv-id comes first, optionally followed by a version number.
            guard let head = statements.first, let id = head.first, normalized(id) == wanted else { continue }
            for statement in statements.dropFirst() {
                guard let result = statement.first, let equals = result.firstIndex(of: "=") else { continue }
                let method = result[..<equals].lowercased()
                let outcome = result[result.index(after: equals)...].lowercased()
                guard outcome == "pass" else { continue }
                var properties = [String: String]()
                for token in statement.dropFirst() {
                    guard let sign = token.firstIndex(of: "=") else { continue }
                    properties[token[..<sign].lowercased()] = normalized(token[token.index(after: sign)...])
                }
                let aligned: Bool
                switch method {
                case "dmarc":
                    // DMARC is evaluated for the From domain; when the MTA names it, it must be ours.
                    aligned = properties["header.from"].map { $0 == fromDomain } ?? true
                case "dkim":
                    aligned = properties["header.d"].map { isAligned($0, fromDomain) } ?? false
                case "spf":
                    let mailFrom = properties["smtp.mailfrom"].map { value in
                        value.split(separator: "@").last.map(String.init) ?? value
                    }
                    aligned = mailFrom.map { isAligned($0, fromDomain) } ?? false
                default:
                    aligned = false
                }
                if aligned { passed.insert(method) }
            }
        }
        return ["dmarc", "dkim", "spf"].first { passed.contains($0) }.map { "\($0)=pass for \(fromDomain) by \(wanted)" }
    }

    /// Relaxed alignment without a public-suffix list: the same domain, or one a subdomain of the
    /// other, where the shorter still has two labels (so `co.uk` aligns with nothing).
    static func isAligned(_ domain: String, _ fromDomain: String) -> Bool {
        if domain == fromDomain { return true }
        let (shorter, longer) = domain.count < fromDomain.count ? (domain, fromDomain) : (fromDomain, domain)
        return shorter.split(separator: ".").count >= 2 && longer.hasSuffix("." + shorter)
    }

    private static func normalized(_ text: Substring) -> String {
        var value = text.lowercased()
        while value.hasSuffix(".") { value.removeLast() }
        if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
        return value
    }

    /// The value without RFC 5322 comments (`(…)`, nested), which may hold anything.
    static func withoutComments(_ value: String) -> String {
        var output = ""
        var depth = 0
        var escaped = false
        for character in value {
            if escaped {
                escaped = false
                continue
            }
            switch character {
            case "\\" where depth > 0: escaped = true
            case "(": depth += 1
            case ")" where depth > 0: depth -= 1
            default: if depth == 0 { output.append(character) }
            }
        }
        return output
    }
}
