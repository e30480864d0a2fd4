import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

/// `seqd pause|resume|stop|retry|reply|opt-out|bounce`: one command shape, seven verbs.
enum OperatorCommands {
    static let all: [any ParsableCommand.Type] = [
        OperatorCommand<Pause>.self, OperatorCommand<Resume>.self, OperatorCommand<Stop>.self,
        OperatorCommand<Retry>.self, OperatorCommand<Reply>.self, OperatorCommand<OptOut>.self,
        OperatorCommand<Bounce>.self,
    ]
}

/// What distinguishes one operator verb from another.
protocol OperatorVerb {
    static var name: String { get }
    static var abstract: String { get }
    static var example: String { get }
    static func event(until: Date?) -> OperatorEvent
}

enum Pause: OperatorVerb {
    static let name = "pause"
    static let abstract = "Pause enrollments; they keep their place and remaining wait."
    static let example = "seqd pause --contact ada@example.com --until 2026-12-27T09:00:00Z"
    static func event(until: Date?) -> OperatorEvent { .pause(until: until) }
}

enum Resume: OperatorVerb {
    static let name = "resume"
    static let abstract = "Resume paused enrollments with the wait they had left."
    static let example = "seqd resume --contact ada@example.com --sequence onboarding"
    static func event(until: Date?) -> OperatorEvent { .resume }
}

enum Stop: OperatorVerb {
    static let name = "stop"
    static let abstract = "End enrollments for good (status stopped)."
    static let example = "seqd stop --enrollment 42 --reason 'asked by sales'"
    static func event(until: Date?) -> OperatorEvent { .stop }
}

enum Retry: OperatorVerb {
    static let name = "retry"
    static let abstract = "Make failed enrollments active again; a failed delivery is retried with the same key."
    static let example = "seqd retry --contact ada@example.com"
    static func event(until: Date?) -> OperatorEvent { .retry }
}

enum Reply: OperatorVerb {
    static let name = "reply"
    static let abstract = "Record a reply; ends the enrollment when the sequence has exit_on_reply."
    static let example = "seqd reply --contact ada@example.com --sequence onboarding"
    static func event(until: Date?) -> OperatorEvent { .reply }
}

enum OptOut: OperatorVerb {
    static let name = "opt-out"
    static let abstract = "Suppress addresses globally and end all their live enrollments."
    static let example = "seqd opt-out --contact ada@example.com --contact bob@example.com"
    static func event(until: Date?) -> OperatorEvent { .optOut }
}

enum Bounce: OperatorVerb {
    static let name = "bounce"
    static let abstract = "Record a hard bounce: suppress the address and end its live enrollments."
    static let example = "seqd bounce --contact ada@example.com --reason '550 5.1.1 user unknown'"
    static func event(until: Date?) -> OperatorEvent { .bounce }
}

struct OperatorCommand<Verb: OperatorVerb>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: Verb.name, abstract: Verb.abstract,
            discussion: """
                Name the enrollments with --contact (repeatable) and optionally --sequence, or with --enrollment. \
                Without --sequence a command acts on every live enrollment of the contact and says how many.\(
                    Verb.event(until: nil).isGlobal ? " \(Verb.name) is global: the address is suppressed even when all its enrollments have finished, and --sequence does not apply." : "")

                Exit codes: 0 done, 1 refused (nothing matched, or the enrollment's status does not allow it).

                Example:
                  \(Verb.example)
                """)
    }

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("contact"), help: ArgumentHelp("Contact email address (repeatable).", valueName: "email"))
    var contacts: [String] = []

    @Option(help: "Only the enrollment in this sequence.")
    var sequence: String?

    @Option(help: "One enrollment by id.")
    var enrollment: Int64?

    @Option(help: "Why, recorded in the audit trail.")
    var reason: String?

    @Option(help: ArgumentHelp("pause only: resume automatically at this RFC 3339 time.", valueName: "time"))
    var until: String?

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        if contacts.isEmpty == (enrollment == nil) {
            throw ValidationError("name the enrollments with --contact EMAIL (repeatable) or with --enrollment ID")
        }
        if enrollment != nil && sequence != nil { throw ValidationError("--sequence goes with --contact, not --enrollment") }
        if Verb.event(until: nil).isGlobal && sequence != nil {
            throw ValidationError("\(Verb.name) is global (the suppression list); --sequence does not apply")
        }
        if until != nil && Verb.name != "pause" { throw ValidationError("--until goes with pause only") }
        if let until, (try? Date(until, strategy: .iso8601)) == nil {
            throw ValidationError("--until '\(until)' is not an RFC 3339 time such as 2026-12-27T09:00:00Z")
        }
    }

    func run() async throws {
        let configuration = try await global.loadConfiguration()
        let event = Verb.event(until: try until.map { try Date($0, strategy: .iso8601) })
        let target: OperatorTarget = enrollment.map { .enrollment($0) } ?? .contacts(contacts, sequence: sequence)
        let result = try await configuration.operations(Verb.name).signal(event, to: target, reason: reason)
        let report = OperatorReport(verb: Verb.name, outcomes: result.outcomes, inFlightSettled: result.inFlightSettled)
        if json { try printJSON(report) } else { print(report.rendered) }
        if !report.changedAnything { throw ExitCode(ExitStatus.refused.rawValue) }
    }
}

/// The printable (and `--json`) result of an operator command.
struct OperatorReport: Encodable {
    struct Line: Encodable {
        let subject: String
        let enrollment: Int64?
        let sequence: String?
        let from: String?
        let to: String?
        let refused: String?
        let note: String?
    }

    let verb: String
    let lines: [Line]
    let changed: Int
    let suppressed: Bool
    /// False when sends of these contacts were still in flight at the timeout.
    let inFlightSettled: Bool

    var changedAnything: Bool { changed > 0 || suppressed }

    init(verb: String, outcomes: [OperatorOutcome], inFlightSettled: Bool) {
        self.verb = verb
        self.inFlightSettled = inFlightSettled
        var lines = [Line]()
        for outcome in outcomes {
            if outcome.suppressed {
                lines.append(
                    Line(subject: outcome.subject, enrollment: nil, sequence: nil, from: nil, to: nil, refused: nil,
                         note: "suppressed; \(outcome.results.count) live enrollment(s) ended"))
            } else if !outcome.contactFound {
                lines.append(Line(subject: outcome.subject, enrollment: nil, sequence: nil, from: nil, to: nil, refused: "no such contact", note: nil))
            } else if outcome.results.isEmpty {
                let statuses = outcome.finishedStatuses
                lines.append(
                    Line(subject: outcome.subject, enrollment: nil, sequence: nil, from: nil, to: nil,
                         refused: statuses.isEmpty ? "no enrollments" : "no live enrollment (finished: \(statuses.joined(separator: ", ")))",
                         note: outcome.repliesCredited > 0 ? "counted as a reply to the completed sequence's last email (seqd report)" : nil))
            }
            for result in outcome.results where !outcome.suppressed {
                let colleagues = result.companyStops.filter { $0.refusal == nil }.count
                lines.append(
                    Line(subject: outcome.subject, enrollment: result.enrollmentID, sequence: result.sequenceName,
                         from: result.from.rawValue, to: result.to?.rawValue, refused: result.refusal?.description,
                         note: colleagues > 0 ? "stop_company_on_reply stopped \(colleagues) enrollment(s) of the same company" : nil))
            }
        }
        self.lines = lines
        // Accepted events count even without a status change (a reply recorded under exit_on_reply: false).
        self.changed = outcomes.flatMap(\.results).filter { $0.refusal == nil }.count
        self.suppressed = outcomes.contains(where: \.suppressed)
    }

    var rendered: String {
        var text = lines.map { line in
            var subject = line.subject
            if let enrollment = line.enrollment { subject += ": enrollment \(enrollment) (\(line.sequence ?? "?"))" }
            if let refused = line.refused { return "\(subject): \(refused)" + (line.note.map { "; \($0)" } ?? "") }
            if let note = line.note, line.to == nil { return "\(subject): \(note)" }
            return "\(subject): \(line.from ?? "?") → \(line.to ?? "?")" + (line.note.map { " (\($0))" } ?? "")
        }
        text.append("\(verb): \(changed) enrollment(s) changed\(suppressed ? ", address(es) suppressed" : "")")
        if !inFlightSettled { text.append("warning: a send of these contacts was still in flight when the wait timed out") }
        return text.joined(separator: "\n")
    }
}
