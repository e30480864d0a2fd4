import Delivery
import Foundation
import SequenceStore

/// Turns a claimed delivery into the message the transport sends. Deterministic: a retry of the
/// same delivery composes the same Message-ID and body.
struct MessageBuilder: Sendable {
    let composer = MessageComposer()
    /// `unsubscribe.base_url` and `unsubscribe.mailto`, when configured.
    let unsubscribeBaseURL: String?
    let unsubscribeMailto: String?
    /// Makes the token for an enrollment's unsubscribe link.
    let unsubscribeToken: @Sendable (Int64) -> String

    func compose(_ delivery: ClaimedDelivery) -> ComposedMessage {
        let message = delivery.message
        let sender = message.fromAddress ?? ""
        var parentID: String?
        if let parentKey = message.threadParentKey, let parentDelivery = delivery.sentKeysByStep[parentKey] {
            parentID = MessageID.make(deliveryKey: parentDelivery, senderAddress: sender)
        }
        let url = unsubscribeBaseURL.map { base in
            (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/u/" + unsubscribeToken(delivery.enrollmentID)
        }
        return composer.compose(
            OutgoingMessage(
                fromAddress: sender, fromName: message.fromName ?? "", toAddress: delivery.toAddress,
                toName: delivery.toName, subject: message.subject ?? "", text: message.text ?? "", html: message.html,
                deliveryKey: delivery.deliveryKey, date: delivery.claimedAt, inReplyTo: parentID,
                references: parentID.map { [$0] } ?? [], listUnsubscribeURL: url, listUnsubscribeMailto: unsubscribeMailto))
    }
}
