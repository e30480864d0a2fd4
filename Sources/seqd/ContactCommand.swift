import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

struct ContactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contact",
        abstract: "Add, import, export or erase contacts.",
        subcommands: [Add.self, Import.self, Export.self, Erase.self])

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print everything seqd holds about a contact as JSON (data-subject access).",
            discussion: "Example:\n  seqd contact export --contact ada@example.com > ada.json")

        @OptionGroup var global: GlobalOptions
        @Option(help: ArgumentHelp("The contact's email address.", valueName: "email")) var contact: String

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let email = contact
            print(try await configuration.operations("contact").exportContact(email: email))
        }
    }

    struct Erase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase a contact: end its enrollments, remove its personal data, keep a hashed suppression.",
            discussion: """
                The address is never mailed again (the suppression list keeps only its SHA-256), and the \
                audit trail stays consistent (enrollments and events remain, anonymised).

                Example:
                  seqd contact erase --contact ada@example.com --yes
                """)

        @OptionGroup var global: GlobalOptions
        @Option(help: ArgumentHelp("The contact's email address.", valueName: "email")) var contact: String
        @Flag(help: "Confirm: erasing cannot be undone.") var yes = false

        func validate() throws {
            if !yes { throw ValidationError("erasing cannot be undone: add --yes to confirm") }
        }

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let email = contact
            let id = try await configuration.operations("contact").eraseContact(email: email)
            print("contact \(id) erased; the address stays suppressed as a hash")
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a contact, or update the one with this address (any case).",
            discussion: """
                Given fields overwrite the stored ones; fields not given are kept, and attributes are merged \
                (a given key replaces its value). Attribute names are lower-cased, as CSV column names are, so \
                templates name them the same way whichever way they came in. An invalid address or time zone \
                exits 65.

                Examples:
                  seqd contact add --email ada@example.com --first-name Ada --time-zone UTC
                  seqd contact add --email ada@example.com --attr plan=pro --attr team=core
                """)

        @OptionGroup var global: GlobalOptions

        @Option(help: "The contact's address.")
        var email: String

        @Option(help: "Given name.")
        var firstName: String?

        @Option(help: "Family name.")
        var lastName: String?

        @Option(help: "IANA time zone, e.g. Europe/Berlin (the sequence's zone applies otherwise).")
        var timeZone: String?

        @Option(name: .customLong("attr"), help: ArgumentHelp("A custom attribute (repeatable).", valueName: "key=value"))
        var attributes: [String] = []

        func validate() throws { _ = try parsedAttributes() }

        /// `--attr` values as a map; a malformed one is a usage error (64).
        func parsedAttributes() throws -> [String: String] {
            var parsed = [String: String]()
            for attribute in attributes {
                guard let equals = attribute.firstIndex(of: "="), equals != attribute.startIndex else {
                    throw ValidationError("--attr expects key=value, got '\(attribute)'")
                }
                let key = attribute[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
                guard key.unicodeScalars.allSatisfy(Self.isFieldCharacter) else {
                    throw ValidationError("--attr '\(key)': attribute names use letters, digits, '_', '.', '-'")
                }
                guard !["email", "first_name", "last_name", "time_zone"].contains(key) else {
                    throw ValidationError("--attr '\(key)' is a built-in field: use --\(key.replacingOccurrences(of: "_", with: "-"))")
                }
                parsed[key] = String(attribute[attribute.index(after: equals)...])
            }
            return parsed
        }

        /// The characters a template may use in a field name (see `Template`).
        private static func isFieldCharacter(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_", ".", "-": true
            default: false
            }
        }

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let email = self.email.trimmingCharacters(in: .whitespaces)
            if let problem = EmailAddress.problem(email) { throw CommandFailure(status: .dataError, message: problem) }
            if let timeZone, !TimeZones.isValid(timeZone) {
                throw CommandFailure(
                    status: .dataError,
                    message: "unknown time zone '\(timeZone)' (use an IANA name such as Europe/Berlin)")
            }
            let contact = ContactFields(
                email: email, firstName: firstName, lastName: lastName, timeZone: timeZone,
                attributes: try parsedAttributes())
            let (summary, _) = try await configuration.operations("contact add").upsertContact(contact)
            print(summary.created > 0 ? "contact created" : summary.updated > 0 ? "contact updated" : "contact unchanged")
            for conversion in summary.converted {
                print("enrollment \(conversion.enrollmentID) (\(conversion.sequence)) converted: \(conversion.goal)")
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import contacts from a CSV file, adding new ones and updating existing ones.",
            discussion: """
                The header row names the columns: email (required), first_name, last_name, time_zone; any \
                other column becomes an attribute. A blank cell keeps what is stored. Bad rows are reported \
                on stderr as FILE:LINE: reason and the rest are imported; the command then exits 65. With \
                --strict, one bad row imports nothing. A missing file exits 66.

                Examples:
                  seqd contact import contacts.csv
                  seqd contact import contacts.csv --strict --json
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The CSV file (UTF-8, RFC 4180).", valueName: "file"))
        var file: String

        @Flag(help: "Import nothing if any row is bad.")
        var strict = false

        @Flag(help: "Print JSON: {file, rows, imported, created, updated, unchanged, rejected: [{line, reason}], strict}.")
        var json = false

        func run() async throws {
            let configuration = try await global.loadConfiguration()
            let csv = try ContactFile.read(file)
            let progress = ImportProgress(label: "importing", total: csv.contacts.count)
            let summary: ContactUpsertSummary
            do {
                summary = try await configuration.operations("contact import").importContacts(csv, strict: strict) { progress.update($0) }
                progress.finish()
            } catch {
                progress.finish()
                throw error
            }
            if json {
                try printJSON(ImportReport(file: file, csv: csv, summary: summary, strict: strict))
            } else {
                print(ContactFile.summaryLine(summary, rejected: csv.rejected.count, strict: strict))
            }
            if !csv.rejected.isEmpty { throw ExitCode(ExitStatus.dataError.rawValue) }
        }
    }
}

/// `contact import --json`.
private struct ImportReport: Encodable {
    struct Rejected: Encodable {
        let line: Int
        let reason: String
    }
    let file: String
    let rows: Int
    let imported: Int
    let created: Int
    let updated: Int
    let unchanged: Int
    let rejected: [Rejected]
    let strict: Bool

    init(file: String, csv: ContactCSV, summary: ContactUpsertSummary, strict: Bool) {
        self.file = file
        rows = csv.rowCount
        (imported, created, updated, unchanged) = (summary.total, summary.created, summary.updated, summary.unchanged)
        rejected = csv.rejected.map { Rejected(line: $0.line, reason: $0.reason) }
        self.strict = strict
    }
}

/// Reading contact files, shared by `contact import` and `enroll --csv` so both report the same way.
enum ContactFile {
    /// Reads and parses `path`, printing each rejected row on stderr as `FILE:LINE: reason`. A
    /// missing file exits 66, a file that is not a contact file at all 65.
    static func read(_ path: String) throws -> ContactCSV {
        let data = try CommandInput.read(path)
        let progress = ImportProgress(label: "reading \(path)", total: nil)
        let csv: ContactCSV
        do {
            csv = try ContactCSV.parse(data, fileName: path) { progress.update($0) }
            progress.finish()
        } catch {
            progress.finish()
            throw CommandFailure(status: .dataError, message: error.description)
        }
        for row in csv.rejected { CommandInput.printError("\(path):\(row.line): \(row.reason)") }
        return csv
    }

    static func summaryLine(_ summary: ContactUpsertSummary, rejected: Int, strict: Bool) -> String {
        let unchanged = summary.unchanged > 0 ? ", \(summary.unchanged) unchanged" : ""
        let line =
            "imported \(summary.total) contact\(summary.total == 1 ? "" : "s") (\(summary.created) new, \(summary.updated) updated\(unchanged)), "
            + "rejected \(rejected) row\(rejected == 1 ? "" : "s")"
        return strict && rejected > 0 ? line + " (--strict: nothing was imported)" : line
    }
}

/// A one-line counter on stderr for long work, shown only when stderr is a terminal and the work is
/// large enough to be worth watching; scripts and logs never see it.
fileprivate final class ImportProgress: Sendable {
    private let label: String
    private let total: Int?
    private let enabled: Bool
    /// Below this many rows the work ends before anyone would look at a counter.
    static let threshold = 10_000

    init(label: String, total: Int?) {
        self.label = label
        self.total = total
        enabled = isatty(2) == 1 && (total ?? Self.threshold) >= Self.threshold
    }

    func update(_ done: Int) {
        guard enabled, done > 0, total != nil || done >= Self.threshold else { return }
        let of = total.map { " of \($0)" } ?? " rows"
        FileHandle.standardError.write(Data("\r\u{1B}[K\(label): \(done)\(of)".utf8))
    }

    /// Clears the counter line so the next output starts clean.
    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
