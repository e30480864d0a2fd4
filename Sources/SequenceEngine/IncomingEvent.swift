import Foundation

/// Something a contact did, reported by another system (`POST /v1/events`, `seqd event send`): it
/// may enroll the contact in sequences whose `trigger` names it, and meet goals (`exit_when`) of
/// its live enrollments. Event bodies come from outside, so every part is bounded here, once, for
/// both front ends: a value that passes can be stored and rendered into an email as it is.
public struct IncomingEvent: Sendable, Equatable {
    /// Longest event name; names are `[A-Za-z0-9][A-Za-z0-9_.:-]*`.
    public static let maxNameLength = 100
    /// Longest idempotency key.
    public static let maxKeyLength = 200
    /// Most properties one event may carry.
    public static let maxProperties = 50
    /// Longest property name; names are letters, digits and `_` (what `{{event.NAME}}` can name).
    public static let maxPropertyNameLength = 64
    /// Longest property value, in characters.
    public static let maxValueLength = 1_000
    /// The event name pattern, as the OpenAPI document declares it.
    public static let namePattern = "^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
    /// The property name pattern, as the OpenAPI document declares it.
    public static let propertyNamePattern = "^[A-Za-z_][A-Za-z0-9_]*$"

    /// Why an event was refused: the field at fault (`name`, `key`, `properties.plan`) and the problem.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public let field: String
        public let message: String
        public var description: String { "\(field): \(message)" }
    }

    /// The contact's address (the contact is created when it does not exist).
    public let email: String
    /// What happened, e.g. `trial_started`.
    public let name: String
    /// The sender's idempotency key: an event whose key was seen before changes nothing.
    public let key: String
    /// Flat text properties, available to templates as `{{event.NAME}}`.
    public let properties: [String: String]
    /// When it happened, by the sender's clock (informational; seqd orders by arrival).
    public let occurredAt: Date?

    /// Validates every part; throws the first problem, naming its field.
    public init(email: String, name: String, key: String, properties: [String: String], occurredAt: Date?) throws(Problem) {
        if let problem = Self.nameProblem(name) { throw Problem(field: "name", message: problem) }
        if key.isEmpty || ContactFields.isBlank(key) { throw Problem(field: "key", message: "must not be empty") }
        if key.count > Self.maxKeyLength { throw Problem(field: "key", message: "is longer than \(Self.maxKeyLength) characters") }
        if key.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw Problem(field: "key", message: "contains a control character")
        }
        if properties.count > Self.maxProperties {
            throw Problem(field: "properties", message: "has \(properties.count) properties; at most \(Self.maxProperties) are accepted")
        }
        for (property, value) in properties.sorted(by: { $0.key < $1.key }) {
            if !Self.isPropertyName(property) {
                throw Problem(
                    field: "properties", message: "'\(property.prefix(80))' is not a property name (letters, digits and _, at most \(Self.maxPropertyNameLength), not starting with a digit)")
            }
            if value.count > Self.maxValueLength {
                throw Problem(field: "properties.\(property)", message: "is longer than \(Self.maxValueLength) characters")
            }
            if value.unicodeScalars.contains("\0") {
                throw Problem(field: "properties.\(property)", message: "contains a NUL character")
            }
        }
        self.email = email
        self.name = name
        self.key = key
        self.properties = properties
        self.occurredAt = occurredAt
    }

    /// What is wrong with an event name (for events and for `trigger`/`exit_when` in sequences).
    public static func nameProblem(_ name: String) -> String? {
        guard let first = name.unicodeScalars.first else { return "must not be empty" }
        if name.unicodeScalars.count > maxNameLength { return "is longer than \(maxNameLength) characters" }
        func allowed(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "_", ".", ":", "-": true
            default: false
            }
        }
        guard first.properties.isAlphabetic || ("0"..."9").contains(first), first.isASCII,
              name.unicodeScalars.allSatisfy(allowed)
        else { return "'\(name.prefix(80))' is not an event name (letters, digits, '_', '.', ':', '-'; starting with a letter or digit)" }
        return nil
    }

    /// The rule of a step-data field, which is also what `{{event.NAME}}` and `property:` can name.
    static func isPropertyName(_ name: String) -> Bool { SequenceParser.isFieldName(name) }
}
