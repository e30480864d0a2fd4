import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

struct SequenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sequence",
        abstract: "Apply, list, show, pause, resume, migrate and preview sequences.",
        subcommands: [Apply.self, List.self, Show.self, Pause.self, Resume.self, Migrate.self, Preview.self])

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate sequence files and store each changed one as a new version.",
            discussion: """
                Every file is validated before anything is stored; then all are stored in one transaction. \
                A file whose content equals the sequence's latest version changes nothing. Enrollments stay \
                pinned to the version they started on.

                A validation error prints every problem, one per line (file: field path: message), and exits \
                65; a missing file exits 66.

                Examples:
                  seqd sequence apply sequences/onboarding.yaml
                  seqd sequence apply sequences/*.yaml
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("Sequence files (YAML or JSON).", valueName: "file"))
        var files: [String]

        @Flag(help: "Print JSON: an array of {name, version, created}.")
        var json = false

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let definitions = try Self.validate(files)
            let results = try await configuration.operations("sequence apply").applySequences(definitions, sourceFiles: files)
            if json {
                try printJSON(results)
                return
            }
            for result in results {
                print(
                    result.created
                        ? "\(result.name): version \(result.version) created"
                        : "\(result.name): unchanged (version \(result.version))")
            }
        }

        /// Reads and validates every file; prints every issue of every file before failing.
        static func validate(_ files: [String]) throws -> [SequenceDefinition] {
            var definitions = [SequenceDefinition]()
            var issues = [SequenceValidationError.Issue]()
            var fileByName = [String: String]()
            for file in files {
                let data = try CommandInput.read(file)
                do {
                    let definition = try SequenceDefinition.parse(data, fileName: file)
                    if let earlier = fileByName.updateValue(file, forKey: definition.name) {
                        issues.append(
                            .init(file: file, path: "name", message: "'\(definition.name)' is also defined by \(earlier)"))
                    }
                    definitions.append(definition)
                } catch {
                    issues += error.issues
                }
            }
            guard issues.isEmpty else {
                CommandInput.printError(issues.map(\.description).joined(separator: "\n"))
                throw ExitCode(ExitStatus.dataError.rawValue)
            }
            return definitions
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List sequences with their latest version and enrollment counts.",
            discussion: """
                LIVE counts active, paused and failed enrollments; FINISHED the terminal ones.

                Examples:
                  seqd sequence list
                  seqd sequence list --json
                """)

        @OptionGroup var global: GlobalOptions

        @Flag(help: "Print JSON: an array of {name, latest_version, live, finished, paused_at}.")
        var json = false

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let sequences = try await configuration.operations("sequence list").sequences()
            if json {
                try printJSON(sequences)
                return
            }
            guard !sequences.isEmpty else {
                print("No sequences yet. Apply one with: seqd sequence apply FILE")
                return
            }
            var table = TextTable("NAME", "VERSION", "LIVE", "FINISHED", "STATE")
            for sequence in sequences {
                table.add(
                    sequence.name, sequence.latestVersion.map(String.init) ?? "-", String(sequence.live),
                    String(sequence.finished),
                    sequence.pausedAt.map { "paused since \($0.formatted(.iso8601))" } ?? "running")
            }
            print(table.rendered)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a sequence's definition: its latest version or the one asked for.",
            discussion: """
                Examples:
                  seqd sequence show onboarding
                  seqd sequence show onboarding --version 1
                  seqd sequence show onboarding --json   # definition and metadata
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The sequence's name.")
        var name: String

        @Option(help: "A stored version instead of the latest.")
        var version: Int?

        @Flag(help: "Print JSON: {name, version, latest_version, content_hash, created_at, created_by, source_file, paused_at, definition}.")
        var json = false

        func validate() throws {
            if let version, version < 1 { throw ValidationError("--version must be 1 or more") }
        }

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let stored = try await configuration.operations("sequence show").sequence(name, version: version)
            if json {
                try printJSON(ShownVersion(stored))
                return
            }
            print(stored.rendered)
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hold every enrollment of a sequence where it is.",
            discussion: """
                The daemon advances nothing in a paused sequence. Enrollments keep their step; `resume` \
                moves their due times forward by the time they were held, so no wait is cut short. Pausing \
                an already paused sequence exits 1.

                Examples:
                  seqd sequence pause onboarding
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The sequence's name.")
        var name: String

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let result = try await configuration.operations("sequence pause").pauseSequence(name)
            print("\(result.name): paused at \(result.pausedAt.formatted(.iso8601))")
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resume a paused sequence, preserving every remaining wait.",
            discussion: """
                Waiting enrollments are due later by the time the sequence was held (from when their wait \
                began, if that was during the pause). Resuming a sequence that is not paused exits 1.

                Examples:
                  seqd sequence resume onboarding
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The sequence's name.")
        var name: String

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let result = try await configuration.operations("sequence resume").resumeSequence(name)
            let held = (result.resumedAt ?? result.pausedAt).timeIntervalSince(result.pausedAt)
            print(
                "\(result.name): resumed after \(formatSeconds(held)); "
                    + "\(result.shiftedEnrollments) waiting enrollment\(result.shiftedEnrollments == 1 ? "" : "s") shifted")
        }
    }
}

/// `sequence show --json`: the metadata and the stored definition as one object.
private struct ShownVersion: Encodable {
    let name: String
    let version: Int
    let latestVersion: Int
    let contentHash: String
    let createdAt: Date
    let createdBy: String
    let sourceFile: String?
    let pausedAt: Date?
    let definition: SequenceDefinition

    init(_ stored: StoredSequenceVersion) {
        (name, version, latestVersion, contentHash) = (stored.name, stored.version, stored.latestVersion, stored.contentHash)
        (createdAt, createdBy, sourceFile, pausedAt) = (stored.createdAt, stored.createdBy, stored.sourceFile, stored.pausedAt)
        definition = stored.definition
    }

    enum CodingKeys: String, CodingKey {
        case name, version, definition
        case latestVersion = "latest_version"
        case contentHash = "content_hash"
        case createdAt = "created_at"
        case createdBy = "created_by"
        case sourceFile = "source_file"
        case pausedAt = "paused_at"
    }

    // Optional members are written as null rather than left out, so scripts see a fixed shape.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(version, forKey: .version)
        try container.encode(latestVersion, forKey: .latestVersion)
        try container.encode(contentHash, forKey: .contentHash)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(createdBy, forKey: .createdBy)
        try container.encode(sourceFile, forKey: .sourceFile)
        try container.encode(pausedAt, forKey: .pausedAt)
        try container.encode(definition, forKey: .definition)
    }
}

extension StoredSequenceVersion {
    var rendered: String {
        let definition = self.definition
        var lines = [
            "\(name) version \(version) of \(latestVersion)"
                + (pausedAt.map { " (sequence paused since \($0.formatted(.iso8601)))" } ?? ""),
            "created \(createdAt.formatted(.iso8601)) by \(createdBy)" + (sourceFile.map { " from \($0)" } ?? ""),
        ]
        if let description = definition.description { lines.append(description) }
        let sender = definition.sender
        lines.append(
            "sender: " + (sender.name.map { "\($0) <\(sender.address)>" } ?? sender.address)
                + (sender.dailyLimit.map { ", at most \($0) a day" } ?? ""))
        let hasWebhooks = definition.steps.contains { $0.typeName == "webhook" }
        lines.append(
            "time zone: \(definition.timeZone), exit on reply: \(definition.exitOnReply ? "yes" : "no")"
                + (hasWebhooks ? ", on webhook failure: \(definition.onFailure.rawValue)" : ""))
        if let window = definition.sendWindow {
            lines.append("send window: \(window.days.map(\.rawValue).joined(separator: ",")) \(window.start)–\(window.end)")
        }
        if !definition.skipDates.isEmpty {
            lines.append("skip dates: " + definition.skipDates.map { "\($0)" }.joined(separator: ", "))
        }
        if let trigger = definition.trigger {
            lines.append("trigger: event \(trigger.event)" + (trigger.condition.map { " if \($0.summary)" } ?? ""))
        }
        if !definition.exitWhen.isEmpty {
            lines.append("exit when (converted): " + definition.exitWhen.map { goal in
                switch goal {
                case .event(let name): "event \(name)"
                case .condition(let condition): condition.summary
                }
            }.joined(separator: "; "))
        }
        var table = TextTable("#", "KEY", "TYPE", "SUMMARY")
        for (index, step) in definition.steps.enumerated() {
            table.add(String(index), step.key, step.typeName, step.summary)
        }
        return lines.joined(separator: "\n") + "\n\n" + table.rendered
    }
}

extension SequenceDefinition.Step {
    /// One line a person can scan: what the step sends, waits or decides.
    var summary: String {
        switch kind {
        case .email(let email):
            guard email.variants.isEmpty else {
                return (email.thread ? "(in thread) " : "") + "variants: "
                    + email.variants.map { "\($0.key) (weight \($0.weight)) \"\($0.subject)\"" }.joined(separator: ", ")
            }
            return (email.thread ? "(in thread) " : "") + "subject: \(email.subject)"
                + (email.html == nil ? "" : " [+html]")
        case .wait(let duration):
            return "wait \(duration)"
        case .branch(let rules):
            return rules.map { "if \($0.condition.summary) goto \($0.target)" }.joined(separator: "; ")
                + "; else next step"
        case .webhook(let webhook):
            return "\(webhook.method) \(webhook.url)" + (webhook.save.isEmpty ? "" : " (save \(webhook.save.joined(separator: ", ")))")
        }
    }
}

extension BranchCondition {
    var summary: String {
        switch self {
        case .equals(let field, let value): "\(field.summary) = \(value)"
        case .oneOf(let field, let values): "\(field.summary) in [\(values.joined(separator: ", "))]"
        case .exists(let field, let present): present ? "\(field.summary) present" : "\(field.summary) absent"
        case .greaterThan(let field, let bound): "\(field.summary) > \(bound.formatted())"
        case .lessThan(let field, let bound): "\(field.summary) < \(bound.formatted())"
        case .not(let condition): "not (\(condition.summary))"
        }
    }
}

/// Input files and stderr for the input-side commands (sequence, contact, enroll).
enum CommandInput {
    /// Reads an input file named on the command line; a missing or unreadable one exits 66.
    static func read(_ path: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            throw CommandFailure(
                status: .noInput,
                message: "\(path): " + (!exists ? "no such file" : isDirectory.boolValue ? "is a directory" : "cannot be read"))
        }
        return data
    }

    /// Writes a line (or lines) to stderr.
    static func printError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// `3h12m5s`, `42s`: a held time as an operator reads it.
private func formatSeconds(_ seconds: Double) -> String {
    var rest = Int(seconds.rounded())
    var parts = [String]()
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] where rest >= size {
        parts.append("\(rest / size)\(unit)")
        rest %= size
    }
    if rest > 0 || parts.isEmpty { parts.append("\(rest)s") }
    return parts.joined()
}

extension BranchCondition.Field {
    var summary: String {
        switch self {
        case .attribute(let name): name
        case .stepData(let name): "step_data.\(name)"
        case .property(let name): "event.\(name)"
        }
    }
}
