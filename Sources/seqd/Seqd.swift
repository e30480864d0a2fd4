// seqd: the executable. Argument parsing and wiring only: every command loads the configuration,
// calls into the store or the daemon, prints the result for a person (or `--json` for a script),
// and maps failures to the documented exit codes.
import ArgumentParser
import Foundation

@main
struct Seqd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seqd",
        abstract: "A self-hosted sequence engine: multi-step outreach with explicit state in PostgreSQL.",
        discussion: """
            Exit codes: 0 done, 1 refused (invalid transition, nothing matched), 64 usage, 65 bad input \
            data, 66 input file missing, 69 database unreachable, 70 internal error.

            Configuration: flags > environment (SEQD_<KEY>, DATABASE_URL) > --config FILE \
            (default Config/seqd.yaml when present) > defaults. See `seqd config check`.
            """,
        subcommands: [
            MigrateCommand.self, SequenceCommand.self, ContactCommand.self, EnrollCommand.self, RunCommand.self,
            ServeCommand.self, SendingCommand.self, DeliveriesCommand.self, EventWebhookCommand.self, StatusCommand.self, ReportCommand.self, InspectCommand.self, SimulateCommand.self, CheckCommand.self, PruneCommand.self, ConfigCommand.self,
            InboundCommand.self, SuppressionCommand.self, EventCommand.self,
        ] + OperatorCommands.all
    )

    /// Runs the command line, mapping every failure to its documented exit code and a one-line
    /// message on stderr (never a stack trace).
    static func main() async {
        let command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)  // help, version and usage errors (64) as ArgumentParser prints them
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var syncCommand = command
                try syncCommand.run()
            }
        } catch let exitCode as ExitCode {
            Foundation.exit(exitCode.rawValue)
        } catch where [ExitCode.success, .validationFailure].contains(exitCode(for: error)) {
            exit(withError: error)  // help, and usage errors raised while running (ValidationError)
        } catch {
            let failure = Failure(error)
            FileHandle.standardError.write(Data("seqd: \(failure.message)\n".utf8))
            Foundation.exit(failure.status.rawValue)
        }
    }
}
