import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

struct EnrollCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll",
        abstract: "Enroll contacts in a sequence, pinned to its latest version.",
        discussion: """
            Choose the contacts with exactly one of --contact (repeatable), --csv or --all. --csv first imports \
            the file exactly like `seqd contact import` (bad rows on stderr, exit 65 after enrolling the good \
            ones), then enrolls the file's contacts.

            Contacts are skipped and counted when they are already live in the sequence, went through it \
            before (unless --allow-reenroll), are suppressed, or lack a template field that has no fallback. \
            Addresses given that match no contact are counted as unknown; if nothing was enrolled and some \
            were unknown, the command exits 1. An unknown sequence exits 1.

            Examples:
              seqd enroll --sequence welcome --contact a@example.com --contact b@example.com
              seqd enroll --sequence onboarding --csv signups.csv --dry-run
              seqd enroll --sequence onboarding --all --json
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "The sequence's name.")
    var sequence: String

    @Option(name: .customLong("contact"), help: ArgumentHelp("A contact's address (repeatable).", valueName: "email"))
    var contacts: [String] = []

    @Option(help: ArgumentHelp("Import this CSV file, then enroll its contacts.", valueName: "file"))
    var csv: String?

    @Flag(help: "Enroll every contact.")
    var all = false

    @Flag(help: "Count what would happen and write nothing (not even the --csv contacts).")
    var dryRun = false

    @Flag(help: "Also enroll contacts who went through the sequence before.")
    var allowReenroll = false

    @Flag(help: "Print JSON: {sequence, version, dry_run, enrolled, already_live, enrolled_before, suppressed, missing_template_fields, missing_fields, unknown_contacts, imported}.")
    var json = false

    func validate() throws {
        let chosen = [!contacts.isEmpty, csv != nil, all].filter { $0 }.count
        guard chosen == 1 else {
            throw ValidationError(
                chosen == 0
                    ? "choose the contacts: --contact EMAIL, --csv FILE or --all"
                    : "use only one of --contact, --csv and --all")
        }
    }

    func run() async throws {
        let configuration = try await global.loadConfiguration()
        var rejectedRows = 0
        let selection: EnrollmentSelection
        if let csv {
            let file = try ContactFile.read(csv)
            rejectedRows = file.rejected.count
            selection = .imported(file.contacts)
        } else if all {
            selection = .all
        } else {
            selection = .emails(contacts)
        }
        let summary = try await configuration.operations("enroll").enroll(
            sequence: sequence, selection: selection, allowReenroll: allowReenroll, dryRun: dryRun)
        if json {
            try printJSON(summary)
        } else {
            print(summary.rendered)
            if let imported = summary.imported {
                print(ContactFile.summaryLine(imported, rejected: rejectedRows, strict: false))
            }
        }
        if rejectedRows > 0 { throw ExitCode(ExitStatus.dataError.rawValue) }
        if summary.enrolled == 0 && summary.unknownContacts > 0 {
            throw CommandFailure(
                status: .refused,
                message: "nothing enrolled: \(summary.unknownContacts) address\(summary.unknownContacts == 1 ? " is" : "es are") not a known contact")
        }
    }
}

extension EnrollmentSummary {
    var rendered: String {
        var table = TextTable("RESULT", "CONTACTS")
        table.add(dryRun ? "would enroll" : "enrolled", String(enrolled))
        table.add("already live", String(alreadyLive))
        table.add("enrolled before", String(enrolledBefore))
        table.add("suppressed", String(suppressed))
        table.add("missing template fields", String(missingTemplateFields))
        table.add("unknown contacts", String(unknownContacts))
        var lines = ["\(sequence) version \(version)" + (dryRun ? " (dry run)" : ""), table.rendered]
        if !missingFields.isEmpty {
            lines.append(
                "missing fields: "
                    + missingFields.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", "))
        }
        if dryRun { lines.append("dry run: nothing was written") }
        return lines.joined(separator: "\n")
    }
}
