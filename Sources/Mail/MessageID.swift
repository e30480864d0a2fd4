import Crypto

/// Deterministic, unforgeable Message-IDs.
///
/// The id derives only from the delivery key, the sender's domain and a MAC of the key under a
/// secret seqd keeps, so every attempt of a delivery (including `retry` after `failed` and
/// re-sends after an `unknown` outcome) carries the same id and receivers that deduplicate by
/// Message-ID collapse the duplicates. The MAC is what makes a reference to the id proof: the
/// delivery key itself is guessable (installation id, enrollment number, step key), so inbound
/// mail is matched to a delivery only when the MAC in the id it refers to verifies (``verify``).
public enum MessageID {
    /// Longest local part kept verbatim before the MAC; longer keys are shortened and
    /// disambiguated by a hash.
    static let maxLocalLength = 64
    /// Bytes of the HMAC-SHA256 kept in the id (128 bits, as 32 hex digits).
    static let macBytes = 16

    /// The MAC key, derived from seqd's unsubscribe secret with a label of its own, so the two uses
    /// of one secret can never stand in for each other.
    public struct Key: Sendable {
        let key: SymmetricKey

        /// Derives the Message-ID key from `secret` (`unsubscribe.secret`, configured or stored at
        /// the first migrate).
        public init(secret: String) {
            let derived = HMAC<SHA256>.authenticationCode(
                for: Array("seqd-message-id-v1".utf8), using: SymmetricKey(data: Array(secret.utf8)))
            key = SymmetricKey(data: Array(derived))
        }

        /// Hex of the first `macBytes` of HMAC-SHA256(key, delivery key).
        func mac(_ deliveryKey: String) -> String {
            let code = HMAC<SHA256>.authenticationCode(for: Array(deliveryKey.utf8), using: key)
            let digits = Array("0123456789abcdef".utf8)
            var hex = [UInt8]()
            for byte in Array(code).prefix(MessageID.macBytes) {
                hex.append(digits[Int(byte >> 4)])
                hex.append(digits[Int(byte & 0x0F)])
            }
            return String(decoding: hex, as: UTF8.self)
        }
    }

    /// Returns `<seqd.KEY.MAC@domain>`, a valid RFC 5322 `msg-id`.
    ///
    /// Characters of the key outside `A-Z a-z 0-9 - _ .` are replaced; when that (or shortening)
    /// changed the key, a hash of the original key is appended, so distinct keys never share an id.
    /// The domain is the part of `senderAddress` after the last `@`, or `seqd.invalid` when that is
    /// not a plain ASCII host name (there is no IDNA encoder in Foundation).
    public static func make(deliveryKey: String, senderAddress: String, key: Key) -> String {
        "<\(signedLocalPart(deliveryKey, key: key))@\(domain(of: senderAddress))>"
    }

    /// Whether `messageID` (`<local@domain>`, as an inbound message refers to it) is the id seqd
    /// minted for `deliveryKey`: its local part, MAC included, must be exactly ours. The domain is
    /// not checked (it carries no secret). Constant-time in the compared bytes, so a sender learns
    /// nothing about the MAC from how long a guess took.
    public static func verify(_ messageID: String, deliveryKey: String, key: Key) -> Bool {
        var text = Substring(messageID)
        if text.hasPrefix("<") { text = text.dropFirst() }
        if text.hasSuffix(">") { text = text.dropLast() }
        guard let at = text.lastIndex(of: "@") else { return false }
        let given = Array(text[..<at].utf8)
        let expected = Array(signedLocalPart(deliveryKey, key: key).utf8)
        guard given.count == expected.count else { return false }
        var difference: UInt8 = 0
        for index in expected.indices { difference |= given[index] ^ expected[index] }
        return difference == 0
    }

    static func signedLocalPart(_ deliveryKey: String, key: Key) -> String {
        localPart(deliveryKey) + "." + key.mac(deliveryKey)
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
