import Postgres

/// Why a hit on a tracked link was taken for a link scanner's rather than a person's
/// (`seqd.clicks.scanner`; NULL is a person).
public enum ClickScanner: String, Sendable, CaseIterable {
    /// A `HEAD` request: browsers send GET; scanners and link previewers probe with HEAD.
    case head
    /// Within `Clicks.tooSoonSeconds` of the send: the receiving side's security gateways (Microsoft
    /// Safe Links, Mimecast, Proofpoint, Barracuda) open every link as the message arrives.
    case tooSoon = "too_soon"
    /// The message's invisible decoy link, or another link of the same message followed within
    /// `Clicks.decoyWindowSeconds` of it: no person sees the decoy, a crawler fetches every href.
    case decoy
}

/// A recorded hit on a tracked link.
public struct RecordedClick: Sendable, Equatable {
    /// nil: a person.
    public let scanner: ClickScanner?
    /// Earlier hits on the same message that this decoy hit showed to be a scanner's.
    public let reclassified: Int
}

/// Hits on tracked links (`GET`/`HEAD /c/<token>`), one row each in `seqd.clicks`.
///
/// The classification is made here, by the database clock (invariant 6), in the statement that
/// records the hit: one round trip. Two hits committed at the same instant in two transactions can
/// miss each other (neither sees the other's row); a scanner's later hits in the window are still
/// caught, and the flag errs toward counting a person, never toward hiding one.
public enum Clicks {
    /// A click this soon after the send is a gateway scanning the message on arrival. Gateways
    /// fetch within seconds (Safe Links "time of click" aside, detonation happens at delivery);
    /// a person has to get the notification, open the mail and read it first. Mailchimp's and
    /// HubSpot's bot filters, and the cold-email tools' guides, use windows from a few seconds to a
    /// minute; 30 s takes the scanners seen in practice and few people.
    public static let tooSoonSeconds = 30
    /// A scanner follows a message's links within moments of each other: hits on the same
    /// message this close to a decoy hit (before or after it) are the same scanner's.
    public static let decoyWindowSeconds = 60

    /// Records a hit on a link of `deliveryID` leading to `url`, and returns how it was
    /// classified; nil when nothing was recorded: the delivery does not exist (a preview's link,
    /// a token from another installation with the same secret) or is not an email, or its contact
    /// was erased (a click on an old link must not bring back what erasure removed).
    public static func record(
        _ connection: Connection, deliveryID: Int64, url: String, head: Bool, decoy: Bool
    ) throws -> RecordedClick? {
        let rows = try connection.query(
            """
            WITH target AS (
                SELECT d.id, d.sent_at
                FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id
                WHERE d.id = $1 AND d.kind = 'email' AND c.email <> 'erased-' || c.id || '@erased.invalid'
            ), hit AS (
                INSERT INTO seqd.clicks (delivery_id, url, scanner)
                SELECT t.id, $2,
                       CASE WHEN $3 THEN 'head'
                            WHEN $4 THEN 'decoy'
                            -- Not settled as sent yet: the relay or the receiving gateway is reading it.
                            WHEN t.sent_at IS NULL OR now() < t.sent_at + make_interval(secs => $5) THEN 'too_soon'
                            WHEN EXISTS (SELECT 1 FROM seqd.clicks k
                                         WHERE k.delivery_id = t.id AND k.scanner = 'decoy'
                                           AND k.clicked_at > now() - make_interval(secs => $6)) THEN 'decoy'
                       END
                FROM target t
                RETURNING delivery_id, scanner
            ), earlier AS (
                -- A decoy hit also unmasks the person-looking hits on the same message just before it.
                UPDATE seqd.clicks k SET scanner = 'decoy'
                FROM hit
                WHERE $4 AND k.delivery_id = hit.delivery_id AND k.scanner IS NULL
                  AND k.clicked_at > now() - make_interval(secs => $6)
                RETURNING k.id
            )
            SELECT hit.scanner, (SELECT count(*) FROM earlier) AS reclassified FROM hit
            """, [deliveryID, url, head, decoy, tooSoonSeconds, decoyWindowSeconds])
        guard let row = rows.rows.first else { return nil }
        let scanner = try row.decode("scanner", as: String?.self)
        return RecordedClick(
            scanner: try scanner.map { text in
                guard let kind = ClickScanner(rawValue: text) else { throw StoreError(.refused, "unknown click scanner '\(text)'") }
                return kind
            },
            reclassified: try row.decode("reclassified", as: Int.self))
    }
}
