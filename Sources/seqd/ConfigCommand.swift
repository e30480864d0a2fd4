import ArgumentParser
import SeqdConfig
import SequenceDaemon
import SequenceHTTP
import SequenceStore

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Inspect the configuration.",
        subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        /// What one `seqd run` process holds of the database's `max_connections`, in words.
        static func connectionBudget(_ configuration: SeqdConfiguration) -> String {
            let advancing = configuration.integer("worker.concurrency") ?? 2
            let sessions = configuration.integer("delivery.concurrency") ?? 16
            let http = configuration.integer("http.port") == nil ? 0 : HTTPListener.connectionBudget
            let events = configuration.string("event_webhook.url") == nil ? "" : " (shared with the event webhook sender)"
            return """
                database connections per `seqd run` process: \(advancing + Daemon.settleWriters + 3 + http) \
                (\(advancing) advancing, 1 claim, \(Daemon.settleWriters) settle, 1 maintenance\(events), 1 LISTEN\(http > 0 ? ", \(http) HTTP listener" : "")); \
                the \(sessions) transport sessions hold none
                """
        }

        static let configuration = CommandConfiguration(
            abstract: "Validate the configuration and print every effective value with its source.",
            discussion: """
                Secrets are shown as <redacted>. An invalid value exits 65 naming the key, where it came from \
                and what is allowed.

                Examples:
                  seqd config check
                  SEQD_WORKER_BATCH_SIZE=50 seqd config check --json
                  seqd config check --config /etc/seqd/seqd.yaml --set log.level=debug
                """)

        @OptionGroup var global: GlobalOptions

        @Flag(help: "Print JSON: an object of key → {value, source, secret}.")
        var json = false

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            // Checked here too, not only when `seqd run` starts: a typo must not wait for a deploy.
            _ = try EventWebhookType.parse(list: configuration.string("event_webhook.types") ?? "")
            if json {
                struct Entry: Encodable {
                    let value: String?
                    let source: String
                    let secret: Bool
                }
                try printJSON(
                    Dictionary(
                        uniqueKeysWithValues: configuration.resolved.map {
                            ($0.key.name, Entry(value: $0.value == nil ? nil : $0.displayValue, source: $0.source.description, secret: $0.key.isSecret))
                        }))
                return
            }
            var table = TextTable("KEY", "VALUE", "SOURCE")
            for entry in configuration.resolved {
                table.add(entry.key.name, entry.displayValue, entry.value == nil ? "-" : entry.source.description)
            }
            print(table.rendered)
            print("\nconfiguration is valid (file: \(configuration.filePath ?? "none"))")
            print(Self.connectionBudget(configuration))
        }
    }
}
