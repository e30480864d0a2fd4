import ArgumentParser
import Delivery
import Foundation
import Mail
import SeqdApplication
import SeqdConfig
import SequenceDaemon
import SequenceEngine
import SequenceStore

extension SequenceCommand {
    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a sequence's emails and webhook requests for a contact exactly as they would go out.",
            discussion: """
                Each email step (or only --step KEY) is rendered and composed by the same code as the daemon \
                and printed as the full RFC 5322 message (headers and body, CRLF line ends) on stdout; one \
                line per message on stderr says which step it is. With --step, stdout is exactly one message, \
                ready to save as a .eml file. Nothing is written to the database.

                A webhook step prints its request: method and URL, headers (a ${NAME} secret stays named; it \
                is read from the environment only when the request is sent), Idempotency-Key, and the JSON body.

                The version is --version N, else the one the contact's live enrollment is pinned to, else the \
                latest (what enroll would pin). What does not exist yet is stood in for: the delivery key is \
                a preview key (preview-<installation>-c<contact>-<step>), so the Message-ID and MIME boundary \
                differ from the real send; the List-Unsubscribe link (when unsubscribe.base_url is set) is \
                signed for no enrollment and unsubscribes nobody; Date is now. A threaded step replies to \
                its parent's real Message-ID when the contact's enrollment has sent it.

                A step with A/B variants renders the variant the contact's enrollment picks (an arbitrary \
                one when it is not enrolled); --variant KEY renders that variant of every step that has it.

                A contact lacking a template field without fallback exits 65 naming each step and field \
                (enroll skips such a contact). Unknown sequence, version, contact or step, and a --step that \
                is a wait or a branch, exit 1.

                Examples:
                  seqd sequence preview onboarding --contact ada@example.com
                  seqd sequence preview onboarding --contact ada@example.com --step intro > intro.eml
                  seqd sequence preview onboarding --contact ada@example.com --step intro --variant b
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The sequence's name.")
        var name: String

        @Option(help: ArgumentHelp("The contact's address.", valueName: "email"))
        var contact: String

        @Option(help: ArgumentHelp("Only this email step.", valueName: "key"))
        var step: String?

        @Option(help: "A stored version instead of the contact's pinned one (or the latest).")
        var version: Int?

        @Option(help: ArgumentHelp("Render this A/B variant of the steps that have it.", valueName: "key"))
        var variant: String?

        func validate() throws {
            if let version, version < 1 { throw ValidationError("--version must be 1 or more") }
        }

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let context = try await configuration.operations("sequence preview").previewContext(
                sequence: name, contact: contact, version: version)
            let messages: [MessagePreview.Message]
            let webhooks: [MessagePreview.Webhook]
            do {
                messages = try MessagePreview.compose(
                    context, stepKey: step, variant: variant, unsubscribeBaseURL: configuration.string("unsubscribe.base_url"),
                    unsubscribeMailto: configuration.string("unsubscribe.mailto"),
                    unsubscribeSecret: configuration.string("unsubscribe.secret"),
                    trackingBaseURL: configuration.string("tracking.base_url"))
                webhooks = try MessagePreview.webhooks(context, stepKey: step)
            } catch let error as MessagePreview.RenderError {
                throw CommandFailure(
                    status: .dataError,
                    message: "\(context.contact.email) cannot be sent \(name) version \(context.version) "
                        + "(enroll skips such a contact):\n" + error.description)
            }
            let chosen: String
            switch context.versionChoice {
            case .requested: chosen = "as requested"
            case .pinned(let enrollmentID): chosen = "the version enrollment \(enrollmentID) is pinned to"
            case .latest: chosen = "the latest, which a new enrollment gets"
            }
            CommandInput.printError(
                "preview of \(name) version \(context.version) (\(chosen)) for \(context.contact.email); "
                    + "Message-IDs derive from preview delivery keys, the unsubscribe link names no enrollment; nothing is written")
            if context.definition.tracking.clicks {
                if configuration.string("tracking.base_url") ?? configuration.string("unsubscribe.base_url") == nil {
                    CommandInput.printError(
                        "note: \(name) tracks clicks, but neither tracking.base_url nor unsubscribe.base_url is set: links are shown (and would be sent) untracked")
                } else {
                    CommandInput.printError("note: \(name) tracks clicks; the tracked links name no delivery (they redirect and count nothing)")
                }
            }
            if context.suppressed {
                CommandInput.printError("note: \(context.contact.email) is suppressed; nothing would be sent to it")
            }
            let emailSteps = context.definition.steps.filter { $0.typeName == "email" }.map(\.key)
            // Emails and webhook requests in step order.
            var printed = messages.map { message in
                (message.stepIndex, {
                    let position = (emailSteps.firstIndex(of: message.stepKey) ?? 0) + 1
                    CommandInput.printError(
                        "==> step \(message.stepKey) (email \(position) of \(emailSteps.count)"
                            + (message.variant.map { ", variant \($0)" } ?? "") + "), "
                            + "delivery key \(message.deliveryKey) (preview)")
                    FileHandle.standardOutput.write(Data(message.composed.data))
                })
            }
            printed += webhooks.map { webhook in
                (webhook.stepIndex, {
                    CommandInput.printError("==> step \(webhook.stepKey) (webhook), delivery key \(webhook.deliveryKey) (preview)")
                    print(Self.requestText(webhook))
                })
            }
            for (_, print) in printed.sorted(by: { $0.0 < $1.0 }) { print() }
        }

        /// The request as it would leave, headers and body; `${NAME}` secrets stay named and the
        /// signature is made when it is sent.
        static func requestText(_ webhook: MessagePreview.Webhook) -> String {
            let request = webhook.request
            var lines = ["\(request.method) \(request.url)"]
            lines += request.headers.map { "\($0.name): \($0.value)" }
            if request.body != nil { lines.append("Content-Type: application/json") }
            lines.append("Idempotency-Key: \(webhook.deliveryKey)")
            lines.append("\(WebhookSignature.headerName): t=<when sent>,v1=<HMAC-SHA256 of t.body under webhook.secret>")
            lines.append("")
            lines.append(request.body ?? "")
            return lines.joined(separator: "\n")
        }
    }
}
