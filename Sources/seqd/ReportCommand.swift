import ArgumentParser
import Foundation
import SeqdApplication
import SequenceEngine
import SequenceStore

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Results per email step and A/B variant: sent, replied, bounced, opted out, converted, clicked.",
        discussion: """
            Counts the sequence's emails sent (since --since, a day read as its midnight in the \
            sequence's time_zone) per step and variant, and what became of them. An enrollment that \
            ended replied, bounced, opted out or converted counts for the last email it was sent before \
            it ended. CLICKED counts emails a person clicked at least once (sequences with \
            tracking.clicks); SCANNER counts emails whose links a scanner hit (a HEAD, a click seconds \
            after delivery, or the invisible decoy link), kept apart and out of the click rate. Rates \
            are of SENT. The same figures are in the view seqd.step_results (all time).

            Examples:
              seqd report --sequence onboarding
              seqd report --sequence onboarding --since 2026-12-01 --json
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "The sequence's name.")
    var sequence: String

    @Option(help: ArgumentHelp("Only emails sent from this day on (YYYY-MM-DD, in the sequence's time zone).", valueName: "date"))
    var since: String?

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        if let since, LocalDate(since) == nil {
            throw ValidationError("--since '\(since)' is not a date (YYYY-MM-DD)")
        }
    }

    func run() async throws {
        let configuration = try await global.loadConfiguration()
        let results = try await configuration.operations("report").stepResults(
            sequence: sequence, since: since.flatMap(LocalDate.init))
        if json {
            try printJSON(results)
            return
        }
        print(results.rendered(sinceText: since))
    }
}

extension StepResults {
    func rendered(sinceText: String?) -> String {
        let period = sinceText.map { "emails sent since \($0) (\(timeZone))" } ?? "all emails sent"
        guard !lines.isEmpty else { return "\(sequence): no email sent yet (\(period))." }
        var table = TextTable("STEP", "VARIANT", "SENT", "REPLIED", "BOUNCED", "OPTED OUT", "CONVERTED", "CLICKED", "SCANNER")
        for line in lines {
            func counted(_ count: Int, _ rate: Double?) -> String {
                rate.map { String(format: "%d (%.1f%%)", count, $0 * 100) } ?? String(count)
            }
            table.add(
                line.step, line.variant ?? "-", String(line.sent), counted(line.replied, line.replyRate),
                counted(line.bounced, line.bounceRate), counted(line.optedOut, line.optOutRate),
                counted(line.converted, line.conversionRate), counted(line.clicked, line.clickRate), String(line.scannerClicked))
        }
        return "\(sequence): \(period)\n\n" + table.rendered
    }
}
