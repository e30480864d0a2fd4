/// A condition on a contact field, as written under a branch rule's `if`. Exactly one form:
///
/// ```yaml
/// { attribute: plan, equals: pro }          # the field's value is exactly "pro"
/// { attribute: plan, in: [pro, team] }      # the value is one of these
/// { attribute: company, exists: true }      # the field is present and not blank (false: absent)
/// { not: { attribute: plan, equals: pro } } # negation of any condition
/// ```
///
/// `attribute` may name `email`, `first_name`, `last_name`, `time_zone` or any custom attribute.
/// Comparisons are exact and case-sensitive; a missing field equals nothing.
public indirect enum BranchCondition: Sendable, Hashable, Codable {
    /// The field equals the value.
    case equals(attribute: String, value: String)
    /// The field equals one of the values.
    case oneOf(attribute: String, values: [String])
    /// The field is present (true) or absent (false).
    case exists(attribute: String, present: Bool)
    /// The condition does not hold.
    case not(BranchCondition)

    /// Evaluates against a contact.
    public func matches(_ contact: ContactFields) -> Bool {
        switch self {
        case .equals(let attribute, let value): return contact.value(of: attribute) == value
        case .oneOf(let attribute, let values): return contact.value(of: attribute).map(values.contains) ?? false
        case .exists(let attribute, let present): return (contact.value(of: attribute) != nil) == present
        case .not(let condition): return !condition.matches(contact)
        }
    }

    // Stored in the same shape as it is authored, so the canonical JSON reads like the YAML.
    private enum CodingKeys: String, CodingKey {
        case attribute, equals, `in`, exists, not
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let inner = try container.decodeIfPresent(BranchCondition.self, forKey: .not) {
            self = .not(inner)
            return
        }
        let attribute = try container.decode(String.self, forKey: .attribute)
        if let value = try container.decodeIfPresent(String.self, forKey: .equals) {
            self = .equals(attribute: attribute, value: value)
        } else if let values = try container.decodeIfPresent([String].self, forKey: .in) {
            self = .oneOf(attribute: attribute, values: values)
        } else if let present = try container.decodeIfPresent(Bool.self, forKey: .exists) {
            self = .exists(attribute: attribute, present: present)
        } else {
            throw DecodingError.dataCorruptedError(forKey: .attribute, in: container, debugDescription: "condition needs equals, in or exists")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .equals(let attribute, let value):
            try container.encode(attribute, forKey: .attribute)
            try container.encode(value, forKey: .equals)
        case .oneOf(let attribute, let values):
            try container.encode(attribute, forKey: .attribute)
            try container.encode(values, forKey: .in)
        case .exists(let attribute, let present):
            try container.encode(attribute, forKey: .attribute)
            try container.encode(present, forKey: .exists)
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
