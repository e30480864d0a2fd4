import Delivery
import Foundation
import Mail
import Postgres
import SequenceStore

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

extension InboundFixtures {
    /// The Message-ID key of the installation in `connection`'s database (derived from its stored
    /// unsubscribe secret, as `seqd run` derives it).
    public static func messageIDKey(_ connection: Connection) throws -> MessageID.Key {
        let secret = try connection.query("SELECT value FROM seqd.settings WHERE name = 'unsubscribe.secret'")[0]
            .decode("value", as: String.self)
        return MessageID.Key(secret: secret)
    }

    /// Records on every delivery the Message-ID the composer mints for it, as a sender records it
    /// when it hands the message over.
    public static func recordMessageIDs(_ connection: Connection, sender: String = "team@example.com") throws {
        let key = try messageIDKey(connection)
        let rows = try connection.query("SELECT id, idempotency_key FROM seqd.deliveries").rows
        for row in rows {
            let id = MessageID.make(deliveryKey: try row.decode("idempotency_key", as: String.self), senderAddress: sender, key: key)
            try connection.query("UPDATE seqd.deliveries SET message_id = $1 WHERE id = $2", [id, try row.decode("id", as: Int64.self)])
        }
    }

    /// What `seqd inbound` trusts for this database: Message-IDs with this installation's MAC, and
    /// the From fallback only with `authservID`.
    public static func trust(_ connection: Connection, authservID: String? = nil) throws -> InboundTrust {
        let key = try messageIDKey(connection)
        return InboundTrust(verifyReference: { MessageID.verify($0, deliveryKey: $1, key: key) }, trustedAuthservID: authservID)
    }

    /// An `Authentication-Results` header line as the operator's MTA would add it.
    public static func authenticationResults(authservID: String = "mx.example.com", domain: String, dmarc: String = "pass") -> String {
        "Authentication-Results: \(authservID); dkim=\(dmarc) header.d=\(domain) header.s=s1; spf=none smtp.mailfrom=\(domain); dmarc=\(dmarc) (p=reject) header.from=\(domain)"
    }
}
