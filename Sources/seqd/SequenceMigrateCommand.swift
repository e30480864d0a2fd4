import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

extension SequenceCommand {
    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move live enrollments to another version of their sequence, by step key.",
            discussion: """
                Active, paused and failed enrollments on any other version move to --to-version: an enrollment \
                about to run step KEY is about to run KEY (or the key --map gives) in the new version; one past \
                the last step moves to just after that step's counterpart, so steps appended since are picked \
                up. --map OLD=end places at the end (it completes when next due). Waits in progress continue \
                (next_run_at and remaining_wait are kept). The target may be any stored version, older ones too \
                (a rollback); enrollments already on it are counted and left alone.

                Left where they are, and reported: enrollments with a delivery pending, sending or unknown; \
                those at a step the new version lacks and no --map names; and those the move would strand — \
                a failed delivery that cannot be retried as the new step, or a step key ahead of them they \
                already have a delivery for (it would never be sent). A failed enrollment whose failed delivery \
                moves to a renamed step keeps that delivery retryable under the new key (same Message-ID).

                --dry-run prints the same table and changes nothing. The real run commits in chunks of 5,000 \
                enrollments, each its own transaction, so the daemon keeps sending meanwhile; each moved \
                enrollment gets one `migrate` event. On a terminal it shows its progress on stderr. If it is \
                interrupted, run it again: what moved stays moved (counted as already on the version) and the \
                rest moves. Exit 0 when done, also when some were left in \
                place; 1 for an unknown sequence or version; 64 for a malformed --map or one naming a key that \
                no other version has (old) or the target lacks (new).

                Examples:
                  seqd sequence migrate onboarding --to-version 3 --dry-run
                  seqd sequence migrate onboarding --to-version 3 --map tips=tips-v2 --map x=end
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The sequence's name.")
        var name: String

        @Option(help: ArgumentHelp("The version to move enrollments to.", valueName: "n"))
        var toVersion: Int

        @Flag(help: "Print the impact and change nothing.")
        var dryRun = false

        @Option(
            name: .customLong("map"),
            help: ArgumentHelp("Old step key → new step key (or 'end'); repeatable.", valueName: "old=new"))
        var mappings: [String] = []

        @Flag(help: """
            Print JSON: {sequence, to_version, dry_run, moved, already_on_target, in_flight, needs_map, cannot_place, \
            groups: [{from_version, from_index, from_step, outcome, to_index, to_step, mapped, reason, count}]}.
            """)
        var json = false

        func validate() throws {
            if toVersion < 1 { throw ValidationError("--to-version must be 1 or more") }
            _ = try Self.parseMap(mappings)
        }

        /// `old=new` pairs; each old key at most once.
        static func parseMap(_ mappings: [String]) throws -> [String: String] {
            var map = [String: String]()
            for mapping in mappings {
                let parts = mapping.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw ValidationError("--map expects OLD_KEY=NEW_KEY, got '\(mapping)'")
                }
                if let earlier = map.updateValue(parts[1], forKey: parts[0]), earlier != parts[1] {
                    throw ValidationError("--map names '\(parts[0])' twice (=\(earlier) and =\(parts[1]))")
                }
            }
            return map
        }

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let map = try Self.parseMap(mappings)
            let report: SequenceMigrationReport
            let progress = ChunkProgress(noun: "enrollments")
            let show: (@Sendable (Int, Int) throws -> Void)? = progress.map { display in
                { @Sendable done, total in display.show(done: done, of: total) }
            }
            do {
                report = try await configuration.operations("sequence migrate").migrateSequence(
                    name, toVersion: toVersion, map: map, dryRun: dryRun, progress: show)
            } catch let error as VersionMigrationPlan.MapError {
                progress?.finish()
                throw CommandFailure(status: .usage, message: error.description)
            } catch {
                progress?.finish()
                throw error
            }
            progress?.finish()
            if json {
                try printJSON(report)
            } else {
                print(report.rendered)
            }
        }
    }
}

extension SequenceMigrationReport {
    var rendered: String {
        var lines = ["\(sequence) → version \(toVersion)" + (dryRun ? " (dry run: nothing was changed)" : "")]
        if groups.isEmpty {
            lines.append(
                alreadyOnTarget == 0
                    ? "no live enrollments to move"
                    : "nothing to move: all \(alreadyOnTarget) live enrollment\(alreadyOnTarget == 1 ? " is" : "s are") on version \(toVersion)")
            return lines.joined(separator: "\n")
        }
        var table = TextTable("FROM", "TO", "ENROLLMENTS", "RESULT")
        for group in groups {
            let result: String
            switch group.outcome {
            case .move: result = (dryRun ? "would move" : "moved") + (group.mapped ? " (--map)" : "")
            case .inFlight: result = "skipped: \(group.reason ?? "delivery in flight")"
            case .needsMap: result = "needs --map: \(group.reason ?? "")"
            case .cannotPlace: result = "cannot place: \(group.reason ?? "")"
            }
            table.add(
                "v\(group.fromVersion) \(group.fromStep)", group.toStep.map { "v\(toVersion) \($0)" } ?? "-",
                String(group.count), result)
        }
        lines.append(table.rendered)
        lines.append(
            "\(moved) \(dryRun ? "would move" : "moved"), \(needsMap) need\(needsMap == 1 ? "s" : "") a --map, "
                + "\(inFlight) skipped (delivery in flight), \(cannotPlace) cannot be placed, "
                + "\(alreadyOnTarget) already on version \(toVersion)")
        return lines.joined(separator: "\n")
    }
}
