import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove message bodies, attempt rows and audit events of finished work, old sender daily counts, delivered event webhooks and received contact events, past a horizon.",
        discussion: """
            Works in chunks of 5,000 deliveries, then enrollments, each its own transaction, with progress on \
            a terminal; an interrupted run can be repeated. Keeps every enrollment and delivery row, each finished enrollment's last audit event, failed \
            deliveries' messages (so they can be retried) and the whole suppression list. Run it as the \
            owner role (the runtime role may not delete audit rows).

            Examples:
              seqd prune --dry-run
              seqd prune --older-than 90d
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Horizon (default: retention.older_than, 180d).", valueName: "duration")) var olderThan: String?
    @Flag(help: "Count what would be removed and change nothing.") var dryRun = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let configuration = try await global.loadConfiguration()
        let horizon: Int
        if let olderThan {
            guard let seconds = try? WaitDuration.parseConfigDuration(olderThan) else {
                throw ValidationError("--older-than '\(olderThan)' is not a duration such as 180d")
            }
            horizon = seconds
        } else {
            horizon = configuration.seconds("retention.older_than")
        }
        let dryRun = self.dryRun
        let progress = dryRun ? nil : ChunkProgress(noun: "rows scanned (by id)")
        let show: (@Sendable (Int64, Int64) throws -> Void)? = progress.map { display in
            { @Sendable done, total in display.show(done: Int(done), of: Int(total)) }
        }
        let summary: Retention.Summary
        do {
            summary = try await configuration.operations("prune").prune(olderThanSeconds: horizon, dryRun: dryRun, progress: show)
        } catch {
            progress?.finish()
            throw error
        }
        progress?.finish()
        if json { return try printJSON(summary) }
        print("""
            \(dryRun ? "would remove" : "removed"): \(summary.bodiesRemoved) message bodies, \(summary.attemptsDeleted) attempt rows, \
            \(summary.eventsDeleted) audit events, \(summary.senderDaysDeleted) sender daily counts, \
            \(summary.eventWebhooksDeleted) delivered event webhooks, \(summary.contactEventsDeleted) contact events \
            (older than \(WaitDuration.elapsed(seconds: horizon)))
            """)
    }
}
