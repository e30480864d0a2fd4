import Crypto
import Foundation

/// The token in `List-Unsubscribe` links: the enrollment id plus an HMAC-SHA256 of it under
/// `unsubscribe.secret`, URL-safe base64. It names one enrollment, cannot be forged or moved to
/// another, and is checked in constant time.
public enum UnsubscribeToken {
    /// Domain separation: the same secret could one day sign other things.
    private static let context = Array("seqd-unsubscribe-v1:".utf8)

    public static func make(enrollmentID: Int64, secret: String) -> String {
        let id = idBytes(enrollmentID)
        let mac = HMAC<SHA256>.authenticationCode(for: context + id, using: SymmetricKey(data: Array(secret.utf8)))
        return base64URL(id + Array(mac))
    }

    /// The enrollment the token was made for, or nil when it is malformed or its MAC does not
    /// verify (the comparison is constant-time).
    public static func verify(_ token: String, secret: String) -> Int64? {
        guard let bytes = fromBase64URL(token), bytes.count == 8 + 32 else { return nil }
        let id = Array(bytes[0..<8])
        let mac = Array(bytes[8...])
        guard HMAC<SHA256>.isValidAuthenticationCode(
            mac, authenticating: context + id, using: SymmetricKey(data: Array(secret.utf8)))
        else { return nil }
        return id.reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }

    private static func idBytes(_ id: Int64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: id >> (8 * (7 - $0))) }
    }

    private static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Decodes only the canonical form: the decoder ignores the unused low bits of the last
    /// character, so without the round trip several spellings of one token would all verify.
    private static func fromBase64URL(_ text: String) -> [UInt8]? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let bytes = Data(base64Encoded: base64).map(Array.init), base64URL(bytes) == text else { return nil }
        return bytes
    }
}
