import Foundation
import Synchronization

/// A parsed template: literal text with `{{field}}` and `{{field|fallback}}` placeholders
/// (whitespace inside the braces is ignored; the fallback is trimmed). Field names are
/// `[A-Za-z0-9_.-]+`. A field that is missing or blank and has no fallback makes rendering fail,
/// naming the field — an email is never sent with a hole in it. A lone `}}` is literal text (CSS
/// in `html` has them); an unclosed `{{` is an error.
public struct Template: Sendable, Equatable {
    enum Part: Sendable, Equatable {
        case text(String)
        case field(name: String, fallback: String?)
    }

    /// Why a template text was rejected at validation time.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong, for an operator.
        public let message: String
        public var description: String { message }
    }

    /// Fields that were missing (or blank) without a fallback when rendering.
    public struct MissingFields: Error, Sendable, Equatable, CustomStringConvertible {
        /// Sorted, without duplicates.
        public let fields: [String]
        public var description: String {
            "missing contact field\(fields.count == 1 ? "" : "s") without fallback: \(fields.joined(separator: ", "))"
        }
    }

    let parts: [Part]

    /// Parsed templates by their text. The daemon renders every email it queues, from the few
    /// texts of the steps it runs, and parsing each time was a tenth of its CPU. Bounded: when
    /// full it starts over, so texts of retired sequence versions do not stay for good.
    private static let parsedTexts = Mutex<[String: Template]>([:])
    private static let parsedTextsBound = 512

    /// The template of `source`, parsed once per process.
    public static func parsed(_ source: String) throws(SyntaxError) -> Template {
        if let known = parsedTexts.withLock({ $0[source] }) { return known }
        let template = try Template(parsing: source)
        parsedTexts.withLock {
            if $0.count >= parsedTextsBound { $0.removeAll(keepingCapacity: true) }
            $0[source] = template
        }
        return template
    }

    /// Parses a template, rejecting unclosed or empty placeholders and invalid field names.
    public init(parsing source: String) throws(SyntaxError) {
        var parts: [Part] = []
        var rest = Substring(source)
        while let open = Self.firstPair(UInt8(ascii: "{"), in: rest) {
            if open.lowerBound > rest.startIndex { parts.append(.text(String(rest[..<open.lowerBound]))) }
            let inside = rest[open.upperBound...]
            guard let close = Self.firstPair(UInt8(ascii: "}"), in: inside) else {
                throw SyntaxError(message: "'{{' at offset \(source.distance(from: source.startIndex, to: open.lowerBound)) is never closed with '}}'")
            }
            let content = inside[..<close.lowerBound]
            let pieces = content.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false)
            let name = pieces[0].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty else { throw SyntaxError(message: "'{{\(content)}}' names no field") }
            guard name.unicodeScalars.allSatisfy(Self.isFieldCharacter) else {
                throw SyntaxError(message: "'{{\(content)}}': '\(name)' is not a field name (letters, digits, '_', '.', '-')")
            }
            let fallback = pieces.count == 2 ? pieces[1].trimmingCharacters(in: .whitespaces) : nil
            parts.append(.field(name: name, fallback: fallback))
            rest = inside[close.upperBound...]
        }
        if !rest.isEmpty { parts.append(.text(String(rest))) }
        self.parts = parts
    }

    /// Where `byte` first occurs twice in a row (`{{` or `}}`), found on the UTF-8 bytes: the
    /// daemon renders every email it queues, and Foundation's `range(of:)` made parsing a tenth of
    /// its CPU time. An ASCII byte never occurs inside another scalar's UTF-8 encoding, so the
    /// range falls on scalar boundaries, where a Substring may be sliced.
    private static func firstPair(_ byte: UInt8, in text: Substring) -> Range<String.Index>? {
        let bytes = text.utf8
        var index = bytes.startIndex
        var previousMatched = false
        while index < bytes.endIndex {
            let matches = bytes[index] == byte
            if matches && previousMatched { return bytes.index(before: index)..<bytes.index(after: index) }
            previousMatched = matches
            index = bytes.index(after: index)
        }
        return nil
    }

    private static func isFieldCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "_", ".", "-": return true
        default: return false
        }
    }

    /// Every field the template names, sorted.
    public var fields: [String] {
        Array(Set(parts.compactMap { part -> String? in
            if case .field(let name, _) = part { return name }
            return nil
        })).sorted()
    }

    /// Fields that must be present because they have no fallback, sorted.
    public var requiredFields: [String] {
        Array(Set(parts.compactMap { part -> String? in
            if case .field(let name, nil) = part { return name }
            return nil
        })).sorted()
    }

    /// Required fields the contact lacks (or has blank), sorted.
    public func missingFields(for contact: ContactFields) -> [String] {
        requiredFields.filter { contact.value(of: $0) == nil }
    }

    /// How substituted values are escaped: `html` for an email's `html` part, `json` for a webhook
    /// body (as JSON string content, so a value can never end the string it sits in).
    public enum Escaping: Sendable {
        case none, html, json
    }

    /// Renders with the contact's fields; `escapeHTML` is for the `html` part only.
    public func render(_ contact: ContactFields, escapeHTML: Bool = false) throws(MissingFields) -> String {
        try render(contact, escaping: escapeHTML ? .html : .none)
    }

    /// Renders with the contact's fields, escaping substituted values as `escaping` says.
    public func render(_ contact: ContactFields, escaping: Escaping) throws(MissingFields) -> String {
        let missing = missingFields(for: contact)
        guard missing.isEmpty else { throw MissingFields(fields: missing) }
        var output = ""
        for part in parts {
            switch part {
            case .text(let text):
                output += text
            case .field(let name, let fallback):
                let value = contact.value(of: name) ?? fallback ?? ""
                switch escaping {
                case .none: output += value
                case .html: output += Self.escape(value)
                case .json: output += Self.escapeJSON(value)
                }
            }
        }
        return output
    }

    /// JSON string content (RFC 8259 §7): quote, backslash and control characters escaped.
    static func escapeJSON(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029:
                escaped += String(format: "\\u%04x", scalar.value)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
