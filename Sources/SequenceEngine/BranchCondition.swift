/// A condition on a contact field or on data a webhook step saved, as written under a branch
/// rule's `if`. Exactly one form:
///
/// ```yaml
/// { attribute: plan, equals: pro }          # the field's value is exactly "pro"
/// { attribute: plan, in: [pro, team] }      # the value is one of these
/// { attribute: company, exists: true }      # the field is present and not blank (false: absent)
/// { step_data: score, greater_than: 50 }    # a saved response field, compared as a number
/// { property: plan, equals: pro }           # a property of the event that started the enrollment
/// { attribute: seats, less_than: 10 }
/// { not: { attribute: plan, equals: pro } } # negation of any condition
/// ```
///
/// `attribute` may name `email`, `first_name`, `last_name`, `time_zone` or any custom attribute;
/// `step_data` names a field a webhook step's `save` stored on the enrollment; `property` names a
/// property of the triggering event (a sequence's `trigger`, or the event being matched against
/// the trigger's own condition). Comparisons are
/// exact and case-sensitive; a missing field equals nothing, and a value that is not a number is
/// neither greater nor less than anything.
public indirect enum BranchCondition: Sendable, Hashable, Codable {
    /// What a condition looks at.
    public enum Field: Sendable, Hashable {
        case attribute(String)
        case stepData(String)
        /// A property of the event that enrolled the contact (`ContactFields.event`).
        case property(String)
    }

    /// The field equals the value.
    case equals(Field, value: String)
    /// The field equals one of the values.
    case oneOf(Field, values: [String])
    /// The field is present (true) or absent (false).
    case exists(Field, present: Bool)
    /// The field is a number above the value.
    case greaterThan(Field, Double)
    /// The field is a number below the value.
    case lessThan(Field, Double)
    /// The condition does not hold.
    case not(BranchCondition)

    /// Evaluates against a contact and the enrollment's saved step data (field → value as text).
    public func matches(_ contact: ContactFields, stepData: [String: String] = [:]) -> Bool {
        func value(_ field: Field) -> String? {
            switch field {
            case .attribute(let name): return contact.value(of: name)
            case .stepData(let name): return stepData[name].flatMap { ContactFields.isBlank($0) ? nil : $0 }
            case .property(let name): return contact.value(of: ContactFields.eventPrefix + name)
            }
        }
        switch self {
        case .equals(let field, let expected): return value(field) == expected
        case .oneOf(let field, let values): return value(field).map(values.contains) ?? false
        case .exists(let field, let present): return (value(field) != nil) == present
        case .greaterThan(let field, let bound): return value(field).flatMap(Double.init).map { $0 > bound } ?? false
        case .lessThan(let field, let bound): return value(field).flatMap(Double.init).map { $0 < bound } ?? false
        case .not(let condition): return !condition.matches(contact, stepData: stepData)
        }
    }

    /// Every step-data field the condition reads.
    public var stepDataFields: [String] {
        switch self {
        case .equals(let field, _), .oneOf(let field, _), .exists(let field, _), .greaterThan(let field, _), .lessThan(let field, _):
            if case .stepData(let name) = field { return [name] }
            return []
        case .not(let condition): return condition.stepDataFields
        }
    }

    // Stored in the same shape as it is authored, so the canonical JSON reads like the YAML.
    private enum CodingKeys: String, CodingKey {
        case attribute, equals, `in`, exists, not, property
        case stepData = "step_data"
        case greaterThan = "greater_than"
        case lessThan = "less_than"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let inner = try container.decodeIfPresent(BranchCondition.self, forKey: .not) {
            self = .not(inner)
            return
        }
        let field: Field
        if let name = try container.decodeIfPresent(String.self, forKey: .stepData) {
            field = .stepData(name)
        } else if let name = try container.decodeIfPresent(String.self, forKey: .property) {
            field = .property(name)
        } else {
            field = .attribute(try container.decode(String.self, forKey: .attribute))
        }
        if let value = try container.decodeIfPresent(String.self, forKey: .equals) {
            self = .equals(field, value: value)
        } else if let values = try container.decodeIfPresent([String].self, forKey: .in) {
            self = .oneOf(field, values: values)
        } else if let present = try container.decodeIfPresent(Bool.self, forKey: .exists) {
            self = .exists(field, present: present)
        } else if let bound = try container.decodeIfPresent(Double.self, forKey: .greaterThan) {
            self = .greaterThan(field, bound)
        } else if let bound = try container.decodeIfPresent(Double.self, forKey: .lessThan) {
            self = .lessThan(field, bound)
        } else {
            throw DecodingError.dataCorruptedError(
                forKey: .attribute, in: container, debugDescription: "condition needs equals, in, exists, greater_than or less_than")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        func encodeField(_ field: Field) throws {
            switch field {
            case .attribute(let name): try container.encode(name, forKey: .attribute)
            case .stepData(let name): try container.encode(name, forKey: .stepData)
            case .property(let name): try container.encode(name, forKey: .property)
            }
        }
        switch self {
        case .equals(let field, let value):
            try encodeField(field)
            try container.encode(value, forKey: .equals)
        case .oneOf(let field, let values):
            try encodeField(field)
            try container.encode(values, forKey: .in)
        case .exists(let field, let present):
            try encodeField(field)
            try container.encode(present, forKey: .exists)
        case .greaterThan(let field, let bound):
            try encodeField(field)
            try container.encode(bound, forKey: .greaterThan)
        case .lessThan(let field, let bound):
            try encodeField(field)
            try container.encode(bound, forKey: .lessThan)
        case .not(let condition):
            try container.encode(condition, forKey: .not)
        }
    }
}

/// One rule of a branch: `{ if: <condition>, goto: <later step key or "end"> }`.
public struct BranchRule: Sendable, Hashable, Codable {
    /// When the rule applies.
    public let condition: BranchCondition
    /// A later step's key, or `end` (``SequenceDefinition/endTarget``).
    public let target: String

    init(condition: BranchCondition, target: String) {
        self.condition = condition
        self.target = target
    }

    private enum CodingKeys: String, CodingKey {
        case condition = "if"
        case target = "goto"
    }
}
