/// Deterministic Message-IDs.
///
/// The id derives only from the delivery key and the sender's domain, so every attempt of a
/// delivery (including `retry` after `failed` and re-sends after an `unknown` outcome) carries the
/// same id; receivers that deduplicate by Message-ID then collapse the duplicates, and inbound
/// replies can be matched to the delivery without having stored anything extra.
public enum MessageID {
    /// Longest local part kept verbatim; longer keys are shortened and disambiguated by a hash, which
    /// keeps the `Message-ID` header on one line.
    static let maxLocalLength = 64

    /// Returns `<seqd.KEY@domain>`, a valid RFC 5322 `msg-id`.
    ///
    /// Characters outside `A-Z a-z 0-9 - _ .` are replaced; when that (or shortening) changed the
    /// key, a hash of the original key is appended, so distinct keys never share an id. The domain
    /// is the part of `senderAddress` after the last `@`, or `seqd.invalid` when that is not a
    /// plain ASCII host name (there is no IDNA encoder in Foundation).
    public static func make(deliveryKey: String, senderAddress: String) -> String {
        "<\(localPart(deliveryKey))@\(domain(of: senderAddress))>"
    }

    static func localPart(_ key: String) -> String {
        var sanitized = ""
        var previousWasDot = true  // forbids a leading dot
        for scalar in key.unicodeScalars {
            if isSafe(scalar) {
                sanitized.unicodeScalars.append(scalar)
                previousWasDot = false
            } else if scalar == ".", !previousWasDot {
                sanitized.append(".")
                previousWasDot = true
            } else {
                sanitized.append("_")
                previousWasDot = false
            }
        }
        while sanitized.hasSuffix(".") { sanitized.removeLast() }

        // The prefix marks the ids as ours and keeps them apart from ids other software mints for
        // the same domain.
        let candidate = "seqd." + sanitized
        if sanitized == key, !key.isEmpty, candidate.utf8.count <= maxLocalLength {
            return candidate
        }
        let kept = String(candidate.prefix(maxLocalLength - 17))
        return (kept.hasSuffix(".") ? kept : kept + ".") + stableHex(key)
    }

    static func domain(of address: String) -> String {
        guard let at = address.lastIndex(of: "@") else { return fallbackDomain }
        let host = address[address.index(after: at)...]
            .trimmingWhitespace()
            .lowercased()
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        let valid = !host.isEmpty && host.utf8.count <= 253 && labels.allSatisfy { label in
            !label.isEmpty && label.unicodeScalars.allSatisfy { isSafe($0) && $0 != "_" }
        }
        return valid ? host : fallbackDomain
    }

    static let fallbackDomain = "seqd.invalid"

    private static func isSafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "-", "_": true
        default: false
        }
    }
}

extension Substring {
    /// Foundation's `trimmingCharacters(in:)` without bridging; header inputs are trimmed often.
    func trimmingWhitespace() -> Substring {
        var slice = self
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return slice
    }
}
