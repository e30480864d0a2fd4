/// FNV-1a (64-bit). Swift's `Hasher` is seeded per process, and the Message-ID, MIME boundary and
/// file names must be the same in every process that ever composes a given delivery.
package func stableHash(_ text: String, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
    var hash = seed
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01b3
    }
    return hash
}

/// `stableHash` as 16 lowercase hex digits, zero-padded so lengths never vary.
package func stableHex(_ text: String, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> String {
    let hex = String(stableHash(text, seed: seed), radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}
