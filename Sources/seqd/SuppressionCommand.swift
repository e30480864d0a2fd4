import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

/// `seqd suppression remove`: lifts an address's suppression. The owner's job only — the runtime
/// role cannot delete suppressions (migration 0006) — and audited in `seqd.signals`.
struct SuppressionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suppression",
        abstract: "Operate on the suppression list (the owner role only).",
        subcommands: [Remove.self])

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lift the suppression of an address, recording who and why (run as the owner role).",
            discussion: """
                The address may be mailed again by enrollments made from now on; enrollments the suppression \
                ended stay ended. The removal is recorded in seqd.signals (kind unsuppress) with the database \
                user, the actor and the reason. The runtime role is refused (exit 1).

                Example:
                  seqd suppression remove --contact ada@example.com --reason "ticket 4711: opted in again" \\
                       --database-url postgresql://seqd_owner@db/seqd
                """)

        @OptionGroup var global: GlobalOptions
        @Option(help: ArgumentHelp("The suppressed address.", valueName: "email")) var contact: String
        @Option(help: ArgumentHelp("Why (recorded in the audit row).", valueName: "text")) var reason: String
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if let problem = EmailAddress.problem(contact) { throw ValidationError(problem) }
            guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason must say why") }
        }

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let removed = try await configuration.operations("suppression").removeSuppression(address: contact, reason: reason)
            if json {
                try printJSON(["removed": removed])
            } else {
                print(removed > 0 ? "removed the suppression (recorded in seqd.signals)" : "not suppressed: nothing removed")
            }
            if removed == 0 { throw ExitCode(ExitStatus.refused.rawValue) }
        }
    }
}
