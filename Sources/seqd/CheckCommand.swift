import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Verify seqd's invariants on a live database (read-only) and print every violation.",
        discussion: """
            Checks: one delivery per step; status and step equal the end of the audit trail; contiguous \
            history; no attempt after its address's suppression; terminal is terminal; one live enrollment \
            per contact and sequence; deferrals keep status and step; every active enrollment has a way forward; \
            expired leases get rescued.
            Exit 0 when clean, 1 when anything is violated.

            Examples:
              seqd check
              seqd check --json | jq '.[] | select(.violations | length > 0)'
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("A lease may stay expired this long before it counts (default: 2 × delivery.lease_timeout).", valueName: "duration"))
    var leaseGrace: String?

    @Option(help: "List at most this many violations per check.") var limit = 100

    @Flag(help: "Print JSON: one object per check with its violations.") var json = false

    func run() async throws {
        let configuration = try await global.loadConfiguration()
        let grace: Int
        if let leaseGrace {
            guard let seconds = try? WaitDuration.parseConfigDuration(leaseGrace) else {
                throw ValidationError("--lease-grace '\(leaseGrace)' is not a duration such as 60s or 5m")
            }
            grace = seconds
        } else {
            grace = 2 * configuration.seconds("delivery.lease_timeout")
        }
        let results = try await configuration.operations("check").check(leaseGraceSeconds: grace, limit: limit)
        let failing = results.filter { !$0.violations.isEmpty }
        if json {
            try printJSON(results)
        } else {
            for result in results {
                print("\(result.violations.isEmpty ? "ok  " : "FAIL") \(result.check): \(result.description)")
                for violation in result.violations {
                    let subject = [violation.enrollmentID.map { "enrollment \($0)" }, violation.deliveryID.map { "delivery \($0)" }]
                        .compactMap { $0 }.joined(separator: ", ")
                    print("       \(subject): \(violation.problem)")
                }
                if result.truncated { print("       … more (raise --limit)") }
            }
            print(failing.isEmpty ? "\nall \(results.count) checks passed" : "\n\(failing.count) of \(results.count) checks failed")
        }
        if !failing.isEmpty { throw ExitCode(ExitStatus.refused.rawValue) }
    }
}
