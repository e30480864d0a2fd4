import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

struct EventCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event",
        abstract: "Record events that contacts did (they start triggered sequences and meet goals).",
        subcommands: [Send.self])

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record one event: create the contact if new, enroll it where a sequence's trigger matches, convert met goals.",
            discussion: """
                Works like POST /v1/events. Once per --key: sending the same key again changes nothing and \
                says so (exit 0). Enrollment follows `seqd enroll`'s rules: a contact live in the sequence, \
                or who went through it before, or suppressed, or lacking a template field, is skipped and \
                the reason printed. Properties are available to the enrollment's templates as \
                {{event.NAME}}; at most 50, names of letters, digits and _, values up to 1,000 characters. \
                A bad name, key, property or address exits 65.

                Examples:
                  seqd event send --contact ada@example.com --name trial_started --key signup-4711 --property plan=pro
                  seqd event send --contact ada@example.com --name meeting_booked --key cal-99 --json
                """)

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("The contact's address.", valueName: "email"))
        var contact: String

        @Option(help: ArgumentHelp("The event's name, e.g. trial_started.", valueName: "name"))
        var name: String

        @Option(help: ArgumentHelp("Idempotency key: an event with a key seen before changes nothing.", valueName: "key"))
        var key: String

        @Option(name: .customLong("property"), help: ArgumentHelp("A property NAME=VALUE (repeatable).", valueName: "name=value"))
        var properties: [String] = []

        @Option(help: ArgumentHelp("When it happened (RFC 3339); informational.", valueName: "time"))
        var occurredAt: String?

        @Flag(help: "Print JSON: {event_id, contact_id, duplicate, contact_created, enrolled: [{sequence, version, enrollment_id}], skipped: [{sequence, reason, missing_fields?}], converted: [{enrollment_id, sequence, goal}]}.")
        var json = false

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            var parsed = [String: String]()
            for property in properties {
                guard let equals = property.firstIndex(of: "="), equals != property.startIndex else {
                    throw ValidationError("--property '\(property)': use NAME=VALUE")
                }
                let name = String(property[..<equals])
                guard parsed[name] == nil else { throw ValidationError("--property '\(name)' is given twice") }
                parsed[name] = String(property[property.index(after: equals)...])
            }
            var occurred: Date?
            if let occurredAt {
                guard let date = try? Date(occurredAt, strategy: .iso8601) else {
                    throw ValidationError("--occurred-at '\(occurredAt)' is not an RFC 3339 time such as 2026-12-07T09:00:00Z")
                }
                occurred = date
            }
            let email = contact.trimmingCharacters(in: .whitespaces)
            if let problem = EmailAddress.problem(email) { throw CommandFailure(status: .dataError, message: problem) }
            let event: IncomingEvent
            do {
                event = try IncomingEvent(email: email, name: name, key: key, properties: parsed, occurredAt: occurred)
            } catch {
                throw CommandFailure(status: .dataError, message: "invalid event: \(error.description)")
            }
            let outcome = try await configuration.operations("event send").recordEvent(event)
            if json { return try printJSON(outcome) }
            print(Self.describe(outcome, name: event.name, key: event.key))
        }

        static func describe(_ outcome: EventOutcome, name: String, key: String) -> String {
            if outcome.duplicate {
                return "event \(name) with key \(key) was already recorded (event \(outcome.eventID)): nothing changed"
            }
            var lines = ["event \(outcome.eventID) recorded (\(name)) for contact \(outcome.contactID)\(outcome.contactCreated ? " (new contact)" : "")"]
            for enrolled in outcome.enrolled {
                lines.append("enrolled in \(enrolled.sequence) v\(enrolled.version): enrollment \(enrolled.enrollmentID)")
            }
            for skipped in outcome.skipped {
                let fields = skipped.missingFields.map { ": \($0.joined(separator: ", "))" } ?? ""
                lines.append("not enrolled in \(skipped.sequence): \(skipped.reason.replacingOccurrences(of: "_", with: " "))\(fields)")
            }
            for conversion in outcome.converted {
                lines.append("enrollment \(conversion.enrollmentID) (\(conversion.sequence)) converted: \(conversion.goal)")
            }
            if outcome.enrolled.isEmpty && outcome.skipped.isEmpty && outcome.converted.isEmpty {
                lines.append("no sequence is triggered by \(name) and no goal was met")
            }
            return lines.joined(separator: "\n")
        }
    }
}
