import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

struct DeliveriesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliveries",
        abstract: "List deliveries, release held ones, cancel one.",
        subcommands: [List.self, Release.self, Cancel.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List deliveries, newest first.",
            discussion: """
                Examples:
                  seqd deliveries list --status unknown
                  seqd deliveries list --status failed --json
                """)

        @OptionGroup var global: GlobalOptions
        @Option(help: "pending, sending, sent, failed, cancelled or unknown.") var status: String?
        @Option(help: "At most this many.") var limit = 50
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let (status, limit) = (self.status, self.limit)
            let deliveries = try await configuration.operations("deliveries").deliveries(status: status, limit: limit)
            if json { return try printJSON(deliveries) }
            guard !deliveries.isEmpty else { return print("no deliveries\(status.map { " with status \($0)" } ?? "")") }
            var table = TextTable("ID", "ENROLLMENT", "SEQUENCE", "STEP", "STATUS", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR")
            for delivery in deliveries {
                table.add(
                    String(delivery.id), String(delivery.enrollmentID), delivery.sequence, delivery.stepKey, delivery.status,
                    String(delivery.attempts), delivery.nextAttemptAt.map(RFC3339.format) ?? "",
                    String((delivery.lastError ?? "").prefix(60)))
            }
            print(table.rendered)
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Release a delivery held in 'unknown' (delivery.on_unknown: hold): it is sent again with the same Message-ID.",
            discussion: "Example:\n  seqd deliveries release 42")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The delivery id.") var id: Int64

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let id = self.id
            let policy = configuration.deliveryPolicy
            let delivery = try await configuration.operations("deliveries").releaseDelivery(id, policy: policy)
            print("delivery \(delivery.id) (\(delivery.sequence), step \(delivery.stepKey)) is \(delivery.status) again")
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a delivery that is not being sent, then stop its enrollment or skip the step.",
            discussion: """
                Examples:
                  seqd deliveries cancel 42 --then stop --reason 'wrong template'
                  seqd deliveries cancel 42 --then skip
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The delivery id.") var id: Int64
        @Option(help: "stop: end the enrollment; skip: move past the step without sending it.") var then: AfterCancel
        @Option(help: "Why, recorded in the audit trail.") var reason: String?

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let (id, then, reason) = (self.id, self.then, self.reason)
            let policy = configuration.deliveryPolicy
            let result = try await configuration.operations("deliveries").cancelDelivery(id, then: then, reason: reason, policy: policy)
            let enrollment = result.enrollment.map { " enrollment \($0.enrollmentID): \($0.from.rawValue) → \($0.to?.rawValue ?? "?")" } ?? ""
            print("delivery \(result.delivery.id) cancelled;\(enrollment)")
        }
    }
}

extension AfterCancel: ExpressibleByArgument {}
