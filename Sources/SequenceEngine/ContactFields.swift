import Foundation

/// What the engine knows about a contact: the fields templates and branch conditions can name.
/// `email`, `first_name`, `last_name` and `time_zone` are built in; anything else is looked up in
/// `attributes` (a built-in name always wins over an attribute of the same name). `event.NAME`
/// names a property of the event that started the enrollment (a sequence's `trigger`).
public struct ContactFields: Sendable, Equatable {
    /// The address mail goes to.
    public var email: String
    /// Optional given name.
    public var firstName: String?
    /// Optional family name.
    public var lastName: String?
    /// The contact's IANA zone, if known; the sequence's `time_zone` applies otherwise.
    public var timeZone: String?
    /// Custom attributes, e.g. `plan` or `company`.
    public var attributes: [String: String]
    /// The properties of the event that enrolled the contact (`{{event.plan}}`); empty for an
    /// enrollment an operator made.
    public var event: [String: String]

    /// The prefix of a template or condition field that names an event property.
    public static let eventPrefix = "event."

    /// Creates contact fields.
    public init(
        email: String, firstName: String? = nil, lastName: String? = nil, timeZone: String? = nil, attributes: [String: String] = [:],
        event: [String: String] = [:]
    ) {
        self.email = email
        self.firstName = firstName
        self.lastName = lastName
        self.timeZone = timeZone
        self.attributes = attributes
        self.event = event
    }

    /// Empty or only whitespace, line breaks and zero-width spaces (what Foundation's
    /// `trimmingCharacters(in: .whitespacesAndNewlines)` removes on Linux, U+200B included). A
    /// visible ASCII byte answers at once: templates ask this of every field of every email, and
    /// Foundation's trimming bridges through NSString.
    static func isBlank(_ text: String) -> Bool {
        if text.utf8.contains(where: { $0 > 0x20 && $0 < 0x7F }) { return false }
        return text.unicodeScalars.allSatisfy { $0.properties.isWhitespace || $0 == "\u{200B}" }
    }

    /// The value of a field by its template/condition name; nil when absent or blank, because an
    /// empty value must not slip into an email as a hole.
    public func value(of field: String) -> String? {
        let raw: String?
        switch field {
        case "email": raw = email
        case "first_name": raw = firstName
        case "last_name": raw = lastName
        case "time_zone": raw = timeZone
        case _ where field.hasPrefix(Self.eventPrefix): raw = event[String(field.dropFirst(Self.eventPrefix.count))]
        default: raw = attributes[field]
        }
        guard let raw, !Self.isBlank(raw) else { return nil }
        return raw
    }
}

/// Time zone identifiers the engine accepts: IANA `Area/Location` names that Foundation resolves,
/// plus `UTC`.
///
/// Foundation on Linux lists ICU's names in `knownTimeZoneIdentifiers`, which leaves out current
/// canonical IANA names such as `Asia/Kolkata` (it lists `Asia/Calcutta`) although
/// `TimeZone(identifier:)` resolves them from tzdata. So a name is valid when it is listed, or when
/// it has the IANA `Area/Location` shape and resolves. That still rejects what design.md warns
/// about: POSIX-style spellings such as `GMT+5` or `EST5EDT`, which Foundation accepts but
/// PostgreSQL reads with the opposite sign or another meaning.
public enum TimeZones {
    static let known: Set<String> = Set(TimeZone.knownTimeZoneIdentifiers).union(["UTC"])

    public static func isValid(_ identifier: String) -> Bool {
        if known.contains(identifier) { return true }
        let parts = identifier.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts.allSatisfy({ part in
            !part.isEmpty && part.first!.isUppercase
                && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_+-".contains($0)) }
        }) else { return false }
        return TimeZone(identifier: identifier) != nil
    }

    /// The zone for scheduling a contact: theirs when valid, else the sequence's, else UTC.
    static func zone(contact: String?, sequence: String) -> TimeZone {
        for identifier in [contact, sequence].compactMap({ $0 }) where isValid(identifier) {
            if let zone = TimeZone(identifier: identifier) { return zone }
        }
        return TimeZone(identifier: "UTC") ?? TimeZone(secondsFromGMT: 0)!
    }
}
