import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceStore

struct EventWebhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event-webhook",
        abstract: "Enrollment events posted to event_webhook.url: what waits, and whether it is stuck.",
        discussion: """
            `seqd run` posts enrollment events (replied, bounced, opted_out, completed, failed, stopped, converted, \
            delivered; event_webhook.types) to event_webhook.url, signed with Seqd-Signature, at least once, \
            retrying with backoff while the receiver fails. See the README's "Event webhooks".

            Examples:
              seqd event-webhook status
              seqd event-webhook status --json
            """,
        subcommands: [Status.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pending and failing event webhooks, the oldest pending age, and deliveries in the last hour.",
            discussion: """
                pending: events not delivered yet; failed: of those, the ones whose last attempt failed and \
                are being retried; oldest pending: how long the oldest has waited. Exits 0 whatever the \
                counts (a script compares them), 69 when the database is unreachable.

                --json prints {enabledTypes, pending, failed, oldestPendingSeconds, deliveredLastHour, \
                nextRetryAt, lastError}; enabledTypes is null when this role may not read seqd.settings.

                Examples:
                  seqd event-webhook status
                  seqd event-webhook status --json | jq .pending
                """)

        @OptionGroup var global: GlobalOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let status = try await configuration.operations("event-webhook").eventWebhookStatus()
            if json { return try printJSON(status) }
            print(status.rendered)
        }
    }
}

extension EventWebhookStatus {
    var rendered: String {
        let types: String
        switch enabledTypes {
        case nil: types = "unknown (this role cannot read seqd.settings)"
        case let list? where list.isEmpty: types = "off (event_webhook.url is unset)"
        case let list?: types = list.joined(separator: ", ")
        }
        var table = TextTable("PENDING", "FAILED", "OLDEST PENDING", "DELIVERED LAST HOUR")
        table.add(String(pending), String(failed), pending == 0 ? "-" : Self.age(oldestPendingSeconds), String(deliveredLastHour))
        var lines = ["event webhooks: \(types)", "", table.rendered]
        if let nextRetryAt { lines.append("\nnext retry: \(RFC3339.format(nextRetryAt))") }
        if let lastError { lines.append((nextRetryAt == nil ? "\n" : "") + "last error: \(lastError)") }
        return lines.joined(separator: "\n")
    }

    /// 42s, 7m05s, 3h12m, 2d04h.
    static func age(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        switch s {
        case ..<60: return "\(s)s"
        case ..<3_600: return String(format: "%dm%02ds", s / 60, s % 60)
        case ..<86_400: return String(format: "%dh%02dm", s / 3_600, s % 3_600 / 60)
        default: return String(format: "%dd%02dh", s / 86_400, s % 86_400 / 3_600)
        }
    }
}
