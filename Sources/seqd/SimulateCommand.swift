import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

/// `seqd simulate`: prints the timeline a contact would follow through a sequence's latest
/// version, computed by the engine's enrollment machine on a simulated clock. Reads only.
struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Print the timeline a contact would follow through a sequence, without writing anything.",
        discussion: """
            Drives the same state machine as the daemon with a simulated clock from --start (default: the \
            database's now()), assuming each email is sent the instant it is queued. Shows every step with \
            its time in the contact's zone and in UTC, every deferral (send_window, skip_date) and every \
            branch taken. Sender daily limits are not predicted: they depend on everyone else's sends.

            --json prints {sequence, version, contact, time_zone, start, start_local, entries: [{kind, step, \
            at, at_local, until?, until_local?, reason?, target?, rule?, subject?}], completed, note}; kind is \
            email, webhook, wait, deferred, branch, completed or failed; times are RFC 3339.

            Exit codes: 0 done, 1 unknown sequence or contact, 64 usage.

            Example:
              seqd simulate --sequence onboarding --contact ada@example.com --start 2026-12-24T16:00:00Z
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "The sequence (its latest version).") var sequence: String

    @Option(help: ArgumentHelp("The contact's email address.", valueName: "email")) var contact: String

    @Option(help: ArgumentHelp("Enrollment time, RFC 3339 (default: the database's now()).", valueName: "time"))
    var start: String?

    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if let start, (try? Date(start, strategy: .iso8601)) == nil {
            throw ValidationError("--start '\(start)' is not an RFC 3339 time such as 2026-12-24T16:00:00Z")
        }
    }

    func run() async throws {
        let configuration = try await global.loadConfiguration()
        let given = try start.map { try Date($0, strategy: .iso8601) }
        let simulation = try await configuration.operations("simulate").simulationStart(sequence: sequence, contact: contact)
        let (stored, fields) = (simulation.sequence, simulation.contact)
        let startAt = given ?? Date(timeIntervalSince1970: simulation.now.timeIntervalSince1970.rounded(.down))
        let entries = Simulation.run(stored.definition, contact: fields, start: startAt)
        let report = SimulationReport(
            sequence: stored.name, version: stored.version, contact: fields, definition: stored.definition, start: startAt,
            entries: entries)
        if json { try printJSON(report) } else { print(report.rendered) }
    }
}

/// The printable (and `--json`) timeline.
struct SimulationReport: Encodable {
    struct Line: Encodable {
        let kind: String
        let step: String?
        let at: String
        let atLocal: String
        let until: String?
        let untilLocal: String?
        let reason: String?
        let target: String?
        let rule: Int?
        let subject: String?

        enum CodingKeys: String, CodingKey {
            case kind, step, at, until, reason, target, rule, subject
            case atLocal = "at_local"
            case untilLocal = "until_local"
        }
    }

    static let note = "sender daily limits are not predicted: a send may move to a later day when the sender's daily_limit is used up"

    let sequence: String
    let version: Int
    let contact: String
    let timeZone: String
    let start: String
    let startLocal: String
    let entries: [Line]
    let completed: Bool
    let note = Self.note

    enum CodingKeys: String, CodingKey {
        case sequence, version, contact, start, entries, completed, note
        case timeZone = "time_zone"
        case startLocal = "start_local"
    }

    init(sequence: String, version: Int, contact: ContactFields, definition: SequenceDefinition, start: Date, entries: [Simulation.Entry]) {
        let zone = definition.timeZone(for: contact)
        let utc = TimeZone(identifier: "UTC")!
        self.sequence = sequence
        self.version = version
        self.contact = contact.email
        self.timeZone = zone.identifier
        self.start = WallClock.rfc3339(start, in: utc)
        self.startLocal = WallClock.rfc3339(start, in: zone)
        self.entries = entries.map { entry in
            Line(
                kind: entry.kind.rawValue, step: entry.step, at: WallClock.rfc3339(entry.at, in: utc),
                atLocal: WallClock.rfc3339(entry.at, in: zone), until: entry.until.map { WallClock.rfc3339($0, in: utc) },
                untilLocal: entry.until.map { WallClock.rfc3339($0, in: zone) }, reason: entry.reason, target: entry.target,
                rule: entry.rule, subject: entry.subject)
        }
        self.completed = entries.last?.kind == .completed
    }

    var rendered: String {
        var table = TextTable("local time", "UTC", "step", "what")
        for line in entries {
            let what: String
            switch line.kind {
            case "email": what = "email \"\(line.subject ?? "")\""
            case "webhook": what = "webhook"
            case "wait": what = "wait until \(line.untilLocal ?? "?")"
            case "deferred": what = "deferred (\(line.reason ?? "?")) until \(line.untilLocal ?? "?")"
            case "branch": what = "branch → \(line.target ?? "?")" + (line.rule.map { " (rule \($0 + 1))" } ?? " (no rule matched)")
            case "completed": what = "completed"
            default: what = "failed: \(line.reason ?? "?")"
            }
            table.add(line.atLocal, line.at, line.step ?? "", what)
        }
        return [
            "Simulation of \(sequence) v\(version) for \(contact) (time zone \(timeZone)), enrolled \(startLocal)",
            "",
            table.rendered,
            "",
            "Note: \(Self.note).",
        ].joined(separator: "\n")
    }
}
