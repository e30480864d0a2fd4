import Crypto
import Foundation

/// The token of a tracked link (`<tracking.base_url>/c/<token>`): the delivery it was sent in, the
/// URL it leads to, and whether it is the message's invisible decoy, signed.
///
/// Self-contained rather than a row id: `seqd prune` clears delivery messages, and links in old mail
/// must keep leading where they did. The redirect goes only to the URL inside the signature, so the
/// endpoint is no open redirect: changing one byte of the URL or the delivery makes it a 404.
///
/// Layout, base64url without padding: version (1 byte, 1), delivery id (8 bytes, big-endian),
/// flags (1 byte; bit 0: decoy), the URL's UTF-8 bytes, then the first 16 bytes of
/// HMAC-SHA256 over everything before it. 128 bits of MAC are the usual truncation (RFC 2104 §5
/// allows half the output) and keep the links 22 characters shorter.
public enum ClickToken {
    /// What a verified token says.
    public struct Click: Sendable, Equatable {
        public let deliveryID: Int64
        public let url: String
        /// The hidden link no person can see: whatever follows it is a scanner.
        public let isDecoy: Bool

        public init(deliveryID: Int64, url: String, isDecoy: Bool) {
            self.deliveryID = deliveryID
            self.url = url
            self.isDecoy = isDecoy
        }
    }

    /// The MAC key, derived from the unsubscribe secret with a label of its own (as `MessageID.Key`
    /// is), so a click token can never stand in for an unsubscribe token or a Message-ID.
    public struct Key: Sendable {
        let key: SymmetricKey

        public init(secret: String) {
            let derived = HMAC<SHA256>.authenticationCode(
                for: Array("seqd-click-v1".utf8), using: SymmetricKey(data: Array(secret.utf8)))
            key = SymmetricKey(data: Array(derived))
        }
    }

    static let version: UInt8 = 1
    static let macBytes = 16
    static let headerBytes = 1 + 8 + 1
    /// Longest URL a token carries: `seqd.clicks.url`'s limit. Longer links are left untracked.
    public static let maxURLBytes = 4096
    /// Longest token `verify` looks at: anything longer is refused before decoding or hashing.
    public static let maxTokenLength = (headerBytes + maxURLBytes + macBytes + 2) / 3 * 4

    public static func make(_ click: Click, key: Key) -> String {
        var bytes = [version]
        bytes += (0..<8).map { UInt8(truncatingIfNeeded: click.deliveryID >> (8 * (7 - $0))) }
        bytes.append(click.isDecoy ? 1 : 0)
        bytes += Array(click.url.utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: bytes, using: key.key)
        return Base64URL.encode(bytes + Array(mac).prefix(macBytes))
    }

    /// The click a token was made for, or nil when it is too long, not canonical base64url, of
    /// another version, or its MAC does not verify (compared in constant time).
    public static func verify(_ token: String, key: Key) -> Click? {
        guard token.utf8.count <= maxTokenLength, let bytes = Base64URL.decode(token),
            bytes.count > headerBytes + macBytes, bytes[0] == version
        else { return nil }
        let signed = Array(bytes[..<(bytes.count - macBytes)])
        let mac = Array(bytes[(bytes.count - macBytes)...])
        let expected = Array(HMAC<SHA256>.authenticationCode(for: signed, using: key.key)).prefix(macBytes)
        var difference: UInt8 = 0
        for (given, wanted) in zip(mac, expected) { difference |= given ^ wanted }
        guard difference == 0, signed[9] & ~1 == 0 else { return nil }
        let deliveryID = signed[1..<9].reduce(Int64(0)) { $0 << 8 | Int64($1) }
        guard let url = String(validating: signed[headerBytes...], as: UTF8.self) else { return nil }
        return Click(deliveryID: deliveryID, url: url, isDecoy: signed[9] == 1)
    }
}

/// URL-safe base64 without padding (RFC 4648 §5), decoded only in its canonical spelling.
enum Base64URL {
    static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// The decoder ignores the unused low bits of the last character, so without the round trip
    /// several spellings of one token would all verify.
    static func decode(_ text: String) -> [UInt8]? {
        guard text.utf8.allSatisfy({ isAlphabet($0) }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let bytes = Data(base64Encoded: base64).map(Array.init), encode(bytes) == text else { return nil }
        return bytes
    }

    private static func isAlphabet(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }
}
