import Delivery
import Foundation
import Mail
import SequenceEngine
import SequenceStore

/// `seqd sequence preview`: a sequence's emails for one contact, rendered by the engine and
/// composed by the daemon's own `MessageBuilder`, so the bytes are those the transport would get.
/// Only what does not exist yet is stood in for, and labelled: the delivery key (and so the
/// Message-ID and MIME boundary) is a preview key, the unsubscribe link is made for no enrollment
/// (it can unsubscribe nobody), tracked links for no delivery (they redirect and count nothing),
/// and `Date` is the database's clock now.
public enum MessagePreview {
    /// One composed email.
    public struct Message: Sendable {
        public let stepKey: String
        public let stepIndex: Int
        /// The preview delivery key the Message-ID derives from.
        public let deliveryKey: String
        /// The A/B variant rendered, for a step with variants.
        public let variant: String?
        public let composed: ComposedMessage
    }

    /// Steps that cannot be rendered for the contact, each with why (the fields it lacks).
    public struct RenderError: Error, Sendable, CustomStringConvertible {
        public let problems: [(stepKey: String, message: String)]
        public var description: String {
            problems.map { "step '\($0.stepKey)': \($0.message)" }.joined(separator: "\n")
        }
    }

    /// The unsubscribe token in previews: made for enrollment 0, which never exists, so the link
    /// has the real shape and signature but the endpoint answers it as an invalid link.
    public static let previewEnrollmentID: Int64 = 0
    /// The delivery of tracked links in previews: never exists either, so a click on one redirects
    /// to its URL and records nothing.
    public static let previewDeliveryID: Int64 = 0

    /// Composes the email steps of `context` (only `stepKey`'s when given) in step order.
    /// A step with variants renders `variant` when given, else the one the contact's enrollment
    /// picks (the pick of `previewEnrollmentID` when it has none). `trackingBaseURL` is
    /// `tracking.base_url` (nil: `unsubscribeBaseURL`); with neither, the links of a sequence that
    /// tracks clicks stay as written, as the daemon would send them. Unknown step or a step that
    /// is not an email: `StoreError(.notFound)` / `.refused`; a `variant` no selected step has:
    /// `.notFound`. Any step the contact lacks fields for: `RenderError` naming every such step and field.
    public static func compose(
        _ context: SequencePreviewContext, stepKey: String?, variant: String? = nil, unsubscribeBaseURL: String?,
        unsubscribeMailto: String?, unsubscribeSecret: String?, trackingBaseURL: String? = nil
    ) throws -> [Message] {
        let definition = context.definition
        var indexes = Array(definition.steps.indices)
        if let stepKey {
            guard let index = definition.index(ofStep: stepKey) else {
                throw StoreError(
                    .notFound,
                    "sequence '\(context.sequence)' version \(context.version) has no step '\(stepKey)' (its steps: "
                        + definition.steps.map(\.key).joined(separator: ", ") + ")")
            }
            switch definition.steps[index].kind {
            case .email: break
            case .webhook: return []  // `webhooks(_:stepKey:)` previews it
            case .wait, .branch:
                throw StoreError(
                    .refused,
                    "step '\(stepKey)' is a \(definition.steps[index].typeName) step; only email and webhook steps send something")
            }
            indexes = [index]
        }
        if let variant {
            let offered = Set(indexes.flatMap { index -> [String] in
                guard case .email(let email) = definition.steps[index].kind else { return [] }
                return email.variants.map(\.key)
            })
            guard offered.contains(variant) else {
                throw StoreError(
                    .notFound,
                    "no email step \(stepKey.map { "'\($0)' " } ?? "")of sequence '\(context.sequence)' version \(context.version) has a variant '\(variant)'"
                        + (offered.isEmpty ? " (it has no variants)" : " (variants: \(offered.sorted().joined(separator: ", ")))"))
            }
        }
        var enrollmentID = previewEnrollmentID
        if case .pinned(let id) = context.versionChoice { enrollmentID = id }
        let secret = try context.installation.unsubscribeSecret(configured: unsubscribeSecret)
        let builder = MessageBuilder(
            secret: secret, unsubscribeBaseURL: unsubscribeBaseURL, unsubscribeMailto: unsubscribeMailto, trackingBaseURL: trackingBaseURL)
        // A threaded step replies to its parent: the real sent one when the contact's enrollment
        // has sent it, otherwise the parent as previewed here.
        var parentKeys = [String: String]()
        for step in definition.steps where step.typeName == "email" {
            parentKeys[step.key] = context.previewDeliveryKey(stepKey: step.key)
        }
        parentKeys.merge(context.sentKeysByStep) { _, sent in sent }

        var messages = [Message]()
        var problems = [(stepKey: String, message: String)]()
        for index in indexes {
            let step = definition.steps[index]
            guard case .email(let email) = step.kind else { continue }
            let rendered: RenderedEmail
            do {
                rendered = try definition.render(
                    email, at: index, for: context.contact, enrollmentID: enrollmentID,
                    variant: variant.flatMap { email.variant(named: $0) })
            } catch {
                problems.append((step.key, "\(error)"))
                continue
            }
            let key = context.previewDeliveryKey(stepKey: step.key)
            let composed = builder.compose(
                .email(rendered, from: definition.sender, tracking: definition.tracking), deliveryID: previewDeliveryID,
                deliveryKey: key, enrollmentID: previewEnrollmentID,
                toAddress: context.contact.email, toName: context.toName, sentKeysByStep: parentKeys, date: context.now)
            messages.append(Message(stepKey: step.key, stepIndex: index, deliveryKey: key, variant: rendered.variant, composed: composed))
        }
        guard problems.isEmpty else { throw RenderError(problems: problems) }
        return messages
    }

    /// One webhook step's request as it would be made for the contact (secrets still named, the
    /// signature made when it is sent).
    public struct Webhook: Sendable {
        public let stepKey: String
        public let stepIndex: Int
        public let deliveryKey: String
        public let request: RenderedWebhook
    }

    /// Renders the webhook steps of `context` (only `stepKey`'s when given) in step order; a step
    /// the contact lacks fields for is a `RenderError`.
    public static func webhooks(_ context: SequencePreviewContext, stepKey: String?) throws -> [Webhook] {
        var previews = [Webhook]()
        var problems = [(stepKey: String, message: String)]()
        for (index, step) in context.definition.steps.enumerated() where stepKey == nil || step.key == stepKey {
            guard case .webhook(let webhook) = step.kind else { continue }
            let missing = webhook.missingFields(for: context.contact)
            guard missing.isEmpty else {
                problems.append((step.key, "the contact has no \(missing.joined(separator: ", "))"))
                continue
            }
            let key = context.previewDeliveryKey(stepKey: step.key)
            let fields = WebhookRequestFields(
                enrollmentID: previewEnrollmentID, stepKey: step.key, sequence: context.definition.name, deliveryKey: key)
            do {
                previews.append(Webhook(stepKey: step.key, stepIndex: index, deliveryKey: key, request: try webhook.render(for: context.contact, request: fields)))
            } catch {
                problems.append((step.key, "\(error)"))
            }
        }
        guard problems.isEmpty else { throw RenderError(problems: problems) }
        return previews
    }
}
