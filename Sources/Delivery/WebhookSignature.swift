import Crypto
import Foundation

/// The `Seqd-Signature` header on every request seqd makes to a webhook (a sequence's webhook
/// steps and the event webhook), in Stripe's format:
///
///     Seqd-Signature: t=1765100000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
///
/// `v1` is the lowercase hex HMAC-SHA256, under the installation's `webhook.secret`, of the
/// timestamp, a `.` and the exact request body. A receiver recomputes it over the raw body it got,
/// compares in constant time, and refuses timestamps older than a few minutes (replays).
public enum WebhookSignature {
    public static let headerName = "Seqd-Signature"

    /// The header's value for `body` sent at `timestamp` (Unix seconds).
    public static func header(body: [UInt8], timestamp: Int64, secret: String) -> String {
        "t=\(timestamp),v1=\(hex(mac(body: body, timestamp: timestamp, secret: secret)))"
    }

    /// Whether `header` signs `body` under `secret`, made within `tolerance` seconds of `now`
    /// (constant-time comparison). What a receiver does; seqd's tests use it only as a cross-check.
    public static func isValid(header: String, body: [UInt8], secret: String, now: Int64, tolerance: Int64 = 300) -> Bool {
        var fields = [String: String]()
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard let timestamp = fields["t"].flatMap(Int64.init), abs(now - timestamp) <= tolerance,
              let given = fields["v1"].flatMap(bytes(hex:))
        else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(
            given, authenticating: signedBytes(body: body, timestamp: timestamp), using: SymmetricKey(data: Array(secret.utf8)))
    }

    private static func mac(body: [UInt8], timestamp: Int64, secret: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: signedBytes(body: body, timestamp: timestamp), using: SymmetricKey(data: Array(secret.utf8))))
    }

    private static func signedBytes(body: [UInt8], timestamp: Int64) -> [UInt8] {
        Array("\(timestamp).".utf8) + body
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    private static func bytes(hex: String) -> [UInt8]? {
        guard hex.count % 2 == 0, hex.allSatisfy(\.isHexDigit) else { return nil }
        var result = [UInt8]()
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            result.append(byte)
            index = next
        }
        return result
    }
}
