import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceStore

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Enrollment counts per sequence, step and status, and the due backlog.",
        discussion: """
            Examples:
              seqd status
              seqd status --sequence onboarding --json
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "Only this sequence.")
    var sequence: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let configuration = try await global.loadConfiguration()
        let report = try await configuration.operations("status").status(
            sequence: sequence, longTransactionWarning: Double(configuration.seconds("worker.long_transaction_warning")))
        if json {
            try printJSON(report)
            return
        }
        print(report.rendered)
    }
}

extension StatusReport {
    var rendered: String {
        let warning = heldTransaction.map { "\n\nwarning: \($0.warning)" } ?? ""
        guard !lines.isEmpty else {
            return "No enrollments yet. Apply a sequence (seqd sequence apply FILE) and enroll contacts (seqd enroll)."
                + warning
        }
        var table = TextTable("SEQUENCE", "VERSION", "STEP", "STATUS", "COUNT")
        for line in lines { table.add(line.sequence, String(line.version), line.step, line.status, String(line.count)) }
        let oldest = oldestDueSeconds > 0 ? String(format: ", oldest due %.1fs ago", oldestDueSeconds) : ""
        return table.rendered + "\n\ndue now: \(dueBacklog)\(oldest)" + warning
    }
}
