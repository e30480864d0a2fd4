import Foundation

/// Reads contact files: a header row naming `email`, `first_name`, `last_name`, `time_zone`, and any
/// other columns, which become attributes. Every bad row is reported with its line number and the
/// good rows are kept, so the caller can import the rest or (`--strict`) nothing.
public struct ContactCSV: Sendable {
    /// A row that was rejected, with the line it starts on (1-based, counting the header).
    public struct RejectedRow: Sendable, Equatable, CustomStringConvertible {
        public let line: Int
        public let reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    /// A problem with the file as a whole (no header, no email column).
    public struct FileError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// The valid contacts, last occurrence winning when an address repeats.
    public let contacts: [ContactFields]
    /// The data rows read, valid or not.
    public let rowCount: Int
    public let rejected: [RejectedRow]

    /// Parses `data` (UTF-8, optional BOM, LF or CRLF, RFC 4180 quoting). `progress` is called with
    /// the number of rows read so far, every 10,000 rows.
    public static func parse(_ data: Data, fileName: String, progress: (Int) -> Void = { _ in }) throws(FileError)
        -> ContactCSV
    {
        guard var text = String(data: data, encoding: .utf8) else {
            throw FileError(description: "\(fileName): not UTF-8 text")
        }
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        var records = CSVRecords(text)
        guard let header = records.next() else { throw FileError(description: "\(fileName): the file is empty") }
        if let problem = header.problem { throw FileError(description: "\(fileName): line 1: \(problem)") }
        let columns = header.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard let emailColumn = columns.firstIndex(of: "email") else {
            throw FileError(description: "\(fileName): line 1: the header has no 'email' column (found: \(columns.joined(separator: ", ")))")
        }
        if let duplicate = columns.first(where: { name in columns.filter { $0 == name }.count > 1 }) {
            throw FileError(description: "\(fileName): line 1: column '\(duplicate)' appears twice")
        }
        var byEmail = [String: Int]()
        var contacts = [ContactFields]()
        var rejected = [RejectedRow]()
        var rowCount = 0
        while let record = records.next() {
            if record.fields == [""] { continue }  // blank line
            rowCount += 1
            if rowCount % 10_000 == 0 { progress(rowCount) }
            if let problem = record.problem {
                rejected.append(RejectedRow(line: record.line, reason: problem))
                continue
            }
            guard record.fields.count == columns.count else {
                rejected.append(
                    RejectedRow(line: record.line, reason: "expected \(columns.count) columns, found \(record.fields.count)"))
                continue
            }
            var contact = ContactFields(email: record.fields[emailColumn].trimmingCharacters(in: .whitespaces))
            if let problem = EmailAddress.problem(contact.email) {
                rejected.append(RejectedRow(line: record.line, reason: problem))
                continue
            }
            var zoneProblem: String?
            for (name, value) in zip(columns, record.fields) where name != "email" {
                let value = value.trimmingCharacters(in: .whitespaces)
                switch name {
                case "first_name": contact.firstName = value.isEmpty ? nil : value
                case "last_name": contact.lastName = value.isEmpty ? nil : value
                case "time_zone":
                    if !value.isEmpty, !TimeZones.isValid(value) {
                        zoneProblem = "unknown time zone '\(value)' (use an IANA name such as Europe/Berlin)"
                    }
                    contact.timeZone = value.isEmpty ? nil : value
                default:
                    if !value.isEmpty { contact.attributes[name] = value }
                }
            }
            if let zoneProblem {
                rejected.append(RejectedRow(line: record.line, reason: zoneProblem))
                continue
            }
            let key = contact.email.lowercased()
            if let existing = byEmail[key] {
                contacts[existing] = contact
            } else {
                byEmail[key] = contacts.count
                contacts.append(contact)
            }
        }
        progress(rowCount)
        return ContactCSV(contacts: contacts, rowCount: rowCount, rejected: rejected)
    }
}

/// The shape checks seqd applies to addresses before storing them. Deliberately permissive: the
/// mail server is the judge of deliverability; this only catches what is certainly not an address.
public enum EmailAddress {
    /// Why `address` is not acceptable, or nil when it is.
    public static func problem(_ address: String) -> String? {
        // A control character (NUL, CR, LF, DEL, C1) would be cut or reinterpreted on the way to
        // a header or an SMTP command: refused here, before it is stored.
        if let control = address.unicodeScalars.first(where: { $0.properties.generalCategory == .control }) {
            let shown = address.unicodeScalars.map { $0.properties.generalCategory == .control ? "\\u{\(String($0.value, radix: 16))}" : String($0) }
                .joined()
            return "invalid email address '\(shown)': it contains the control character U+\(String(format: "%04X", control.value))"
        }
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard address.utf8.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64,
            parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
            !address.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" || $0 == "," || $0 == ";" })
        else { return "invalid email address '\(address)'" }
        return nil
    }
}

/// RFC 4180 records with the line each starts on; a quoted field may span lines.
struct CSVRecords: IteratorProtocol {
    struct Record {
        var fields: [String]
        var line: Int
        /// Set when the record is malformed (an unterminated quote, text after a closing quote).
        var problem: String?
    }

    private let scalars: [Unicode.Scalar]
    private var index = 0
    private var line = 1

    init(_ text: String) { scalars = Array(text.unicodeScalars) }

    mutating func next() -> Record? {
        guard index < scalars.count else { return nil }
        var record = Record(fields: [], line: line)
        var field = String.UnicodeScalarView()
        var quoted = false
        var afterQuote = false
        while index < scalars.count {
            let scalar = scalars[index]
            index += 1
            if quoted {
                if scalar == "\"" {
                    if index < scalars.count, scalars[index] == "\"" {
                        field.append("\"")
                        index += 1
                    } else {
                        quoted = false
                        afterQuote = true
                    }
                } else {
                    if scalar == "\n" { line += 1 }
                    field.append(scalar)
                }
                continue
            }
            switch scalar {
            case ",":
                record.fields.append(String(field))
                field = String.UnicodeScalarView()
                afterQuote = false
            case "\r" where index < scalars.count && scalars[index] == "\n":
                continue
            case "\n":
                line += 1
                record.fields.append(String(field))
                return record
            case "\"" where field.isEmpty && !afterQuote:
                quoted = true
            default:
                if afterQuote, record.problem == nil {
                    record.problem = "unexpected text after a closing quote"
                }
                field.append(scalar)
            }
        }
        if quoted { record.problem = "a quoted field is not closed before the end of the file" }
        record.fields.append(String(field))
        return record
    }
}
