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
    /// For webhook steps.
    public var webhookURL: String?

    /// A rendered email step as the outbox stores it, with the sequence's sender.
    public static func email(_ email: RenderedEmail, from sender: SequenceDefinition.Sender) -> StoredMessage {
        StoredMessage(
            subject: email.subject, text: email.text, html: email.html, threadParentKey: email.threadParentKey,
            fromAddress: sender.address, fromName: sender.name)
    }

    enum CodingKeys: String, CodingKey {
        case subject, text, html
        case threadParentKey = "thread_parent_key"
        case fromAddress = "from_address"
        case fromName = "from_name"
        case webhookURL = "webhook_url"
    }
}

/// Delivery rows an advance transaction writes: one per email or webhook step reached.
struct OutboxRows {
    private(set) var enrollmentIDs = [Int64]()
    private(set) var contactIDs = [Int64]()
    private(set) var stepKeys = [String]()
    private(set) var kinds = [String]()
    private(set) var idempotencyKeys = [String]()
    private(set) var messages = [String]()

    /// `<installation>-e<enrollment>-<step key>`: stable across retries (so is the Message-ID derived
    /// from it) and distinct across installations that share a sender domain.
    static func deliveryKey(installationID: String, enrollmentID: Int64, stepKey: String) -> String {
        "\(installationID)-e\(enrollmentID)-\(stepKey)"
    }

    mutating func add(
        _ request: DeliveryRequest, record: EnrollmentRecord, definition: SequenceDefinition, installationID: String
    ) {
        let message: StoredMessage
        switch request.payload {
        case .email(let email):
            message = .email(email, from: definition.sender)
            kinds.append("email")
        case .webhook(let url):
            message = StoredMessage(fromAddress: definition.sender.address, fromName: definition.sender.name, webhookURL: url)
            kinds.append("webhook")
        }
        enrollmentIDs.append(record.id)
        contactIDs.append(record.contactID)
        stepKeys.append(request.stepKey)
        idempotencyKeys.append(
            Self.deliveryKey(installationID: installationID, enrollmentID: record.id, stepKey: request.stepKey))
        messages.append(String(decoding: (try? JSONEncoder().encode(message)) ?? Data("{}".utf8), as: UTF8.self))
    }

    /// Adds `other`'s rows after these.
    mutating func append(_ other: OutboxRows) {
        enrollmentIDs += other.enrollmentIDs
        contactIDs += other.contactIDs
        stepKeys += other.stepKeys
        kinds += other.kinds
        idempotencyKeys += other.idempotencyKeys
        messages += other.messages
    }

    /// Inserts the rows; a row that exists already (same enrollment and step) is left as it is
    /// (invariant 1). Returns how many were new.
    func insert(_ connection: Postgres.Connection) throws -> Int {
        guard !enrollmentIDs.isEmpty else { return 0 }
        return try connection.query(
            DeliveryOutbox.insert, [enrollmentIDs, contactIDs, stepKeys, kinds, idempotencyKeys, messages]
        ).affectedRows
    }
}
