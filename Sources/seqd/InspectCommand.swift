import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceStore

struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a contact's enrollments: step, status, why it is not moving, and the full history.",
        discussion: """
            Examples:
              seqd inspect --contact ada@example.com
              seqd inspect --contact ada@example.com --json | jq '.enrollments[].events'
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("The contact's email address.", valueName: "email"))
    var contact: String

    @Flag(help: "Print JSON (times in RFC 3339).")
    var json = false

    func run() async throws {
        let configuration = try await global.loadConfiguration()
        let email = contact
        let inspection = try await configuration.operations("inspect").inspect(email: email)
        if json {
            try printJSON(inspection)
            return
        }
        print("\(inspection.email)\(inspection.suppressed ? " (suppressed: no mail will be sent)" : "")")
        if inspection.enrollments.isEmpty { print("no enrollments") }
        for enrollment in inspection.enrollments {
            print("\nenrollment \(enrollment.id): \(enrollment.sequence) v\(enrollment.version), step \(enrollment.stepKey), \(enrollment.status) — \(enrollment.blockedReason)")
            if let stepData = enrollment.stepData { print("step data: \(stepData)") }
            var table = TextTable("AT", "EVENT", "STATUS", "STEP", "ACTOR", "REASON / DETAIL")
            for event in enrollment.events {
                table.add(
                    RFC3339.format(event.at), event.event,
                    event.fromStatus.map { "\($0) → \(event.toStatus)" } ?? event.toStatus,
                    event.fromStep.map { "\($0) → \(event.toStep)" } ?? event.toStep, event.actor,
                    [event.reason, event.detail].compactMap { $0 }.joined(separator: " "))
            }
            print(table.rendered)
            if !enrollment.deliveries.isEmpty {
                var deliveries = TextTable("DELIVERY", "STEP", "STATUS", "ATTEMPTS", "SENT AT", "LAST ERROR")
                for delivery in enrollment.deliveries {
                    deliveries.add(
                        String(delivery.id), delivery.stepKey, delivery.status, String(delivery.attempts),
                        delivery.sentAt.map(RFC3339.format) ?? "", delivery.lastError ?? "")
                }
                print(deliveries.rendered)
            }
        }
    }
}

/// Times as operators read and type them: RFC 3339 in UTC with milliseconds.
enum RFC3339 {
    static func format(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}
