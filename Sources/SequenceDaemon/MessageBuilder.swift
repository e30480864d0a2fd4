import Delivery
import Foundation
import Mail
import SequenceStore

/// Turns a claimed delivery into the message the transport sends. Deterministic: a retry of the
/// same delivery composes the same Message-ID and body (tracked links included: their tokens
/// derive from the delivery id and the URL alone).
struct MessageBuilder: Sendable {
    /// Signs Message-IDs with the key derived from the unsubscribe secret.
    let composer: MessageComposer
    /// `unsubscribe.base_url` and `unsubscribe.mailto`, when configured.
    let unsubscribeBaseURL: String?
    let unsubscribeMailto: String?
    /// Makes the token for an enrollment's unsubscribe link.
    let unsubscribeToken: @Sendable (Int64) -> String
    /// Rewrites the links of messages whose sequence tracks clicks; nil when neither
    /// `tracking.base_url` nor `unsubscribe.base_url` is set (only the file and null transports
    /// run so: the others require `unsubscribe.base_url`).
    let linkTracker: LinkTracker?
    /// Told, with the delivery key, each time a message that asks for tracking is composed
    /// untracked because `linkTracker` is nil. The daemon logs it; the bytes do not depend on it.
    let untracked: @Sendable (String) -> Void

    init(
        messageIDKey: MessageID.Key, unsubscribeBaseURL: String?, unsubscribeMailto: String?,
        unsubscribeToken: @escaping @Sendable (Int64) -> String, linkTracker: LinkTracker? = nil,
        untracked: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        composer = MessageComposer(messageIDKey: messageIDKey)
        self.unsubscribeBaseURL = unsubscribeBaseURL
        self.unsubscribeMailto = unsubscribeMailto
        self.unsubscribeToken = unsubscribeToken
        self.linkTracker = linkTracker
        self.untracked = untracked
    }

    /// The builder of a process with this secret and these base URLs. `trackingBaseURL` is
    /// `tracking.base_url`, or `unsubscribe.base_url` when that is unset (one `seqd serve`
    /// answers both `/u/` and `/c/`).
    init(
        secret: String, unsubscribeBaseURL: String?, unsubscribeMailto: String?, trackingBaseURL: String?,
        untracked: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.init(
            messageIDKey: MessageID.Key(secret: secret), unsubscribeBaseURL: unsubscribeBaseURL, unsubscribeMailto: unsubscribeMailto,
            unsubscribeToken: { UnsubscribeToken.make(enrollmentID: $0, secret: secret) },
            linkTracker: (trackingBaseURL ?? unsubscribeBaseURL).map {
                LinkTracker(baseURL: $0, key: ClickToken.Key(secret: secret), unsubscribeBaseURL: unsubscribeBaseURL)
            },
            untracked: untracked)
    }

    func compose(_ delivery: ClaimedDelivery) -> ComposedMessage {
        compose(
            delivery.message, deliveryID: delivery.id, deliveryKey: delivery.deliveryKey, enrollmentID: delivery.enrollmentID,
            toAddress: delivery.toAddress, toName: delivery.toName, sentKeysByStep: delivery.sentKeysByStep,
            date: delivery.claimedAt)
    }

    /// The same composition from its parts, for a delivery that does not exist yet (`MessagePreview`).
    func compose(
        _ message: StoredMessage, deliveryID: Int64, deliveryKey: String, enrollmentID: Int64, toAddress: String, toName: String?,
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
        var text = message.text ?? ""
        var html = message.html
        if message.trackClicks == true {
            if let linkTracker {
                (text, html) = linkTracker.rewrite(text: text, html: html, deliveryID: deliveryID)
            } else {
                untracked(deliveryKey)
            }
        }
        return composer.compose(
            OutgoingMessage(
                fromAddress: sender, fromName: message.fromName ?? "", toAddress: toAddress,
                toName: toName, subject: message.subject ?? "", text: text, html: html,
                deliveryKey: deliveryKey, date: date, inReplyTo: parentID,
                references: parentID.map { [$0] } ?? [], listUnsubscribeURL: url, listUnsubscribeMailto: unsubscribeMailto))
    }
}
