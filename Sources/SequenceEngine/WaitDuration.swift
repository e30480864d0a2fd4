import Foundation

/// A wait in the sequence grammar of design.md §5: `<n><unit>` with unit `s`, `m`, `h`, `d`, `w`
/// (`90s`, `36h`, `2d`), or `<n> business day(s)`. Configuration durations use the same grammar
/// and additionally accept a bare number of seconds (`parseConfigDuration`).
public enum WaitDuration: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Elapsed time in whole seconds.
    case elapsed(seconds: Int)
    /// Weekdays in the contact's zone, skipping the sequence's `skip_dates`.
    case businessDays(Int)

    /// Why a duration text was rejected; the message is meant for an operator.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The text that was rejected.
        public let text: String
        public var description: String {
            "'\(text)' is not a duration (use <n>s|m|h|d|w such as 90s, 36h, 2d, or '<n> business days')"
        }
    }

    /// Parses the sequence grammar. Rejects signs, fractions and unknown units.
    public static func parse(_ text: String) throws(ParseError) -> WaitDuration {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let digits = trimmed.prefix(while: \.isNumber)
        guard !digits.isEmpty, digits.count <= 9, let count = Int(digits) else { throw ParseError(text: text) }
        let rest = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        switch rest {
        case "s": return .elapsed(seconds: count)
        case "m": return .elapsed(seconds: count * 60)
        case "h": return .elapsed(seconds: count * 3_600)
        case "d": return .elapsed(seconds: count * 86_400)
        case "w": return .elapsed(seconds: count * 604_800)
        case "business day", "business days": return .businessDays(count)
        default: throw ParseError(text: text)
        }
    }

    /// Parses a configuration duration: the sequence grammar for elapsed time, or a bare number of
    /// seconds. Business days make no sense for timers and are rejected.
    public static func parseConfigDuration(_ text: String) throws(ParseError) -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if !trimmed.isEmpty, trimmed.count <= 9, trimmed.allSatisfy(\.isNumber), let seconds = Int(trimmed) {
            return seconds
        }
        guard case .elapsed(let seconds) = try parse(trimmed) else { throw ParseError(text: text) }
        return seconds
    }

    public var description: String {
        switch self {
        case .elapsed(let seconds):
            for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)]
            where seconds > 0 && seconds % size == 0 {
                return "\(seconds / size)\(unit)"
            }
            return "\(seconds)s"
        case .businessDays(let days):
            return days == 1 ? "1 business day" : "\(days) business days"
        }
    }
}
