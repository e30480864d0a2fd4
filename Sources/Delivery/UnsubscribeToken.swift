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
        return Base64URL.encode(id + Array(mac))
    }

    /// The enrollment the token was made for, or nil when it is malformed or its MAC does not
    /// verify (the comparison is constant-time).
    public static func verify(_ token: String, secret: String) -> Int64? {
        guard let bytes = Base64URL.decode(token), bytes.count == 8 + 32 else { return nil }
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
}
