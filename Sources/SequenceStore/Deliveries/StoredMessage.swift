import Foundation
import Postgres
import SequenceEngine

/// What a delivery row holds in `message`: the step rendered for its contact when the step ran,
/// plus the sender, so sending needs neither the template nor the definition.
public struct StoredMessage: Codable, Sendable, Equatable {
    public var subject: String?
    public var text: String?
    public var html: String?
    /// For `thread: true` steps: the step key of the email whose thread this one continues.
    public var threadParentKey: String?
    public var fromAddress: String?
    public var fromName: String?
    /// For webhook steps: the request rendered for this enrollment (nil if it could not be).
    public var webhook: RenderedWebhook?
    /// `true` when the sequence had `tracking.clicks` as the step ran: its links are rewritten when
    /// the message is composed (never here, so the stored text stays the author's). Absent: untracked.
    public var trackClicks: Bool?

    /// A rendered email step as the outbox stores it, with the sequence's sender and whether its
    /// links are tracked.
    public static func email(_ email: RenderedEmail, from sender: SequenceDefinition.Sender, tracking: SequenceDefinition.Tracking = .off) -> StoredMessage {
        StoredMessage(
            subject: email.subject, text: email.text, html: email.html, threadParentKey: email.threadParentKey,
            fromAddress: sender.address, fromName: sender.name, trackClicks: tracking.clicks ? true : nil)
    }

    enum CodingKeys: String, CodingKey {
        case subject, text, html
        case threadParentKey = "thread_parent_key"
        case fromAddress = "from_address"
        case fromName = "from_name"
        case webhook
        case trackClicks = "track_clicks"
    }
}

/// Deliveries an advance transaction leases to its own process's senders as it writes them, so
/// the commonest email costs the database two writes (the advance, the settle) instead of three
/// (the advance, the sender's claim and lease, the settle). Its rows are `sending` from the start,
/// with owner, fencing token and expiry, exactly as a claim would have left them.
public struct DirectLease: Sendable {
    /// `lease_owner` of the leased rows.
    public let owner: String
    public let seconds: Int
    /// Where the senders' room comes from. The advance asks it only once it knows how many emails
    /// its batch writes, so room never sits with a transaction that claimed nothing while another
    /// claims the work without any.
    public let room: any LeaseRoom

    public init(owner: String, seconds: Int, room: any LeaseRoom) {
        self.owner = owner
        self.seconds = seconds
        self.room = room
    }
}

/// The senders' side of a `DirectLease`: how many more leased deliveries they can take.
public protocol LeaseRoom: Sendable {
    /// Up to `wanted` places, held until released or filled.
    func reserve(upTo wanted: Int) -> Int
    /// Gives back places reserved and not filled.
    func release(_ reserved: Int)
}

/// Delivery rows an advance transaction writes: one per email or webhook step reached.
struct OutboxRows {
    private(set) var enrollmentIDs = [Int64]()
    private(set) var contactIDs = [Int64]()
    private(set) var sequenceIDs = [Int64]()
    private(set) var stepKeys = [String]()
    private(set) var kinds = [DeliveryKind]()
    private(set) var idempotencyKeys = [String]()
    private(set) var messages = [String]()
    /// The A/B variant each email rendered (nil: none), for `deliveries.variant`.
    private(set) var variants = [String?]()
    /// What a leased row's sender needs without reading it back: the message and its recipient.
    private var stored = [StoredMessage]()
    private var recipients = [ContactFields]()
    /// Rows written already leased (`DirectLease`).
    private var leased = [Bool]()

    /// `<installation>-e<enrollment>-<step key>`: stable across retries (so is the Message-ID derived
    /// from it) and distinct across installations that share a sender domain.
    static func deliveryKey(installationID: String, enrollmentID: Int64, stepKey: String) -> String {
        "\(installationID)-e\(enrollmentID)-\(stepKey)"
    }

    mutating func add(
        _ request: DeliveryRequest, record: EnrollmentRecord, definition: SequenceDefinition, installationID: String
    ) {
        let message: StoredMessage
        var variant: String?
        switch request.payload {
        case .email(let email):
            message = .email(email, from: definition.sender, tracking: definition.tracking)
            variant = email.variant
            kinds.append(.email)
        case .webhook(let webhook):
            let fields = WebhookRequestFields(
                enrollmentID: record.id, stepKey: request.stepKey, sequence: definition.name,
                deliveryKey: Self.deliveryKey(installationID: installationID, enrollmentID: record.id, stepKey: request.stepKey))
            // The machine checked the contact has every field; a stored template was validated.
            message = StoredMessage(
                fromAddress: definition.sender.address, fromName: definition.sender.name,
                webhook: try? webhook.render(for: record.contact, request: fields))
            kinds.append(.webhook)
        }
        enrollmentIDs.append(record.id)
        contactIDs.append(record.contactID)
        sequenceIDs.append(record.sequenceID)
        stepKeys.append(request.stepKey)
        idempotencyKeys.append(
            Self.deliveryKey(installationID: installationID, enrollmentID: record.id, stepKey: request.stepKey))
        messages.append(String(decoding: (try? JSONEncoder().encode(message)) ?? Data("{}".utf8), as: UTF8.self))
        variants.append(variant)
        stored.append(message)
        recipients.append(record.contact)
        leased.append(false)
    }

    /// Adds `other`'s rows after these.
    mutating func append(_ other: OutboxRows) {
        enrollmentIDs += other.enrollmentIDs
        contactIDs += other.contactIDs
        sequenceIDs += other.sequenceIDs
        stepKeys += other.stepKeys
        kinds += other.kinds
        idempotencyKeys += other.idempotencyKeys
        messages += other.messages
        variants += other.variants
        stored += other.stored
        recipients += other.recipients
        leased += other.leased
    }

    /// How many rows `lease(upTo:)` could mark.
    var leasable: Int {
        kinds.indices.count { kinds[$0] == .email && stored[$0].threadParentKey == nil }
    }

    /// Marks up to `limit` rows to be written leased: emails only, and not threaded ones (a
    /// threaded email needs its enrollment's sent keys, which the sender's claim reads).
    mutating func lease(upTo limit: Int) {
        var left = limit
        for index in kinds.indices where left > 0 && kinds[index] == .email && stored[index].threadParentKey == nil {
            leased[index] = true
            left -= 1
        }
    }

    static let insertStatement = PreparedStatement(
        name: "deliveries_insert",
        sql: """
            INSERT INTO seqd.deliveries (enrollment_id, contact_id, step_key, kind, idempotency_key, message, variant,
                                         sequence_id, status, fencing_token, lease_owner, lease_expires_at)
            SELECT e, c, s, k, i, m, v, q,
                   CASE WHEN l THEN 'sending' ELSE 'pending' END::seqd.delivery_status,
                   CASE WHEN l THEN nextval('seqd.fencing_tokens') END,
                   CASE WHEN l THEN $8::text END,
                   CASE WHEN l THEN now() + make_interval(secs => $9::int) END
            FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::bool[], $10::text[], $11::bigint[])
                AS u(e, c, s, k, i, m, l, v, q)
            ON CONFLICT (enrollment_id, step_key) DO NOTHING
            RETURNING id, idempotency_key, fencing_token
            """)

    /// Inserts the rows; a row that exists already (same enrollment and step) is left as it is
    /// (invariant 1). Returns how many were new, and the leased ones as their sender takes them
    /// (`now`, the transaction's, is their claim time).
    func insert(_ connection: Postgres.Connection, lease: DirectLease? = nil, now: Date) throws -> (
        created: Int, leased: [ClaimedDelivery]
    ) {
        guard !enrollmentIDs.isEmpty else { return (0, []) }
        let rows = try connection.query(
            Self.insertStatement,
            [enrollmentIDs, contactIDs, stepKeys, kinds.map(\.rawValue), idempotencyKeys, messages, leased, lease?.owner ?? "",
             lease?.seconds ?? 0, variants, sequenceIDs])
        guard lease != nil, leased.contains(true) else { return (rows.count, []) }
        let index = Dictionary(idempotencyKeys.enumerated().map { ($1, $0) }) { first, _ in first }
        var claimed = [ClaimedDelivery]()
        for row in rows.rows {
            guard let token = try row.decode("fencing_token", as: Int64?.self),
                let i = index[try row.decode("idempotency_key", as: String.self)]
            else { continue }
            let names = [recipients[i].firstName, recipients[i].lastName].compactMap { $0 }.joined(separator: " ")
            claimed.append(
                ClaimedDelivery(
                    id: try row.decode("id"), enrollmentID: enrollmentIDs[i], stepKey: stepKeys[i], kind: kinds[i],
                    deliveryKey: idempotencyKeys[i], token: token, message: stored[i], toAddress: recipients[i].email,
                    toName: names.isEmpty ? nil : names, sentKeysByStep: [:], claimedAt: now))
        }
        return (rows.count, claimed)
    }
}
