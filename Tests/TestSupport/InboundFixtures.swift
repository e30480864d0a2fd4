import Foundation

/// The raw messages in `Tests/Fixtures/inbound` (a Gmail reply, an Outlook auto-reply, Postfix and
/// Exchange bounce reports, …) with their placeholders filled in: `{{MESSAGE_ID}}` (the seqd
/// Message-ID the message refers to), `{{CONTACT}}` and `{{SENDER}}`.
public enum InboundFixtures {
    public static func text(
        _ name: String, messageID: String, contact: String, sender: String, filePath: String = #filePath
    ) throws -> String {
        let url = URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/inbound/\(name)")
        return try String(contentsOf: url, encoding: .utf8)
            .replacingOccurrences(of: "{{MESSAGE_ID}}", with: messageID)
            .replacingOccurrences(of: "{{CONTACT}}", with: contact)
            .replacingOccurrences(of: "{{SENDER}}", with: sender)
    }
}
