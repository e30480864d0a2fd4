import Delivery
import Foundation
import Mail
import SequenceStore

/// Turns a claimed delivery into the message the transport sends. Deterministic: a retry of the
/// same delivery composes the same Message-ID and body.
struct MessageBuilder: Sendable {
    /// Signs Message-IDs with the key derived from the unsubscribe secret.
    let composer: MessageComposer
    /// `unsubscribe.base_url` and `unsubscribe.mailto`, when configured.
    let unsubscribeBaseURL: String?
    let unsubscribeMailto: String?
    /// Makes the token for an enrollment's unsubscribe link.
    let unsubscribeToken: @Sendable (Int64) -> String

    init(
        messageIDKey: MessageID.Key, unsubscribeBaseURL: String?, unsubscribeMailto: String?,
        unsubscribeToken: @escaping @Sendable (Int64) -> String
    ) {
        composer = MessageComposer(messageIDKey: messageIDKey)
        self.unsubscribeBaseURL = unsubscribeBaseURL
        self.unsubscribeMailto = unsubscribeMailto
        self.unsubscribeToken = unsubscribeToken
    }

    func compose(_ delivery: ClaimedDelivery) -> ComposedMessage {
        compose(
            delivery.message, deliveryKey: delivery.deliveryKey, enrollmentID: delivery.enrollmentID,
            toAddress: delivery.toAddress, toName: delivery.toName, sentKeysByStep: delivery.sentKeysByStep,
            date: delivery.claimedAt)
    }

    /// The same composition from its parts, for a delivery that does not exist yet (`MessagePreview`).
    func compose(
        _ message: StoredMessage, deliveryKey: String, enrollmentID: Int64, toAddress: String, toName: String?,
        sentKeysByStep: [String: String], date: Date
    ) -> ComposedMessage {
        let sender = message.fromAddress ?? ""
        var parentID: String?
        if let parentKey = message.threadParentKey, let parentDelivery = sentKeysByStep[parentKey] {
            parentID = MessageID.make(deliveryKey: parentDelivery, senderAddress: sender, key: composer.messageIDKey)
        }
        let url = unsubscribeBaseURL.map { base in
            (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/u/" + unsubscribeToken(enrollmentID)
        }
        return composer.compose(
            OutgoingMessage(
                fromAddress: sender, fromName: message.fromName ?? "", toAddress: toAddress,
                toName: toName, subject: message.subject ?? "", text: message.text ?? "", html: message.html,
                deliveryKey: deliveryKey, date: date, inReplyTo: parentID,
                references: parentID.map { [$0] } ?? [], listUnsubscribeURL: url, listUnsubscribeMailto: unsubscribeMailto))
    }
}
