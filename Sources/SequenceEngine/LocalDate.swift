import Foundation

/// A calendar date without a zone (`YYYY-MM-DD`), as in `skip_dates`. The arithmetic is done on
/// day numbers rather than through `Calendar`, so no DST rule can move a date.
public struct LocalDate: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The proleptic Gregorian year.
    public let year: Int
    /// 1...12.
    public let month: Int
    /// 1...31, valid for the month.
    public let day: Int

    /// Parses exactly `YYYY-MM-DD`; nil for anything else or a date that does not exist.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
              (1...12).contains(month), (1...Self.daysIn(month: month, year: year)).contains(day)
        else { return nil }
        self.init(year: year, month: month, day: day)
    }

    init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    var dayNumber: Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    init(dayNumber: Int) {
        let z = dayNumber + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        self.init(year: yoe + era * 400 + (month <= 2 ? 1 : 0), month: month, day: day)
    }

    func adding(days: Int) -> LocalDate { LocalDate(dayNumber: dayNumber + days) }

    /// The first instant of this day in `zone` (after a spring-forward gap at midnight, the
    /// first one that exists).
    public func start(in zone: TimeZone) -> Date {
        let first = WallClock.intervals(on: self, from: 0, to: 86_400, in: zone).first?.lowerBound
        return Date(timeIntervalSince1970: first ?? TimeInterval(dayNumber) * 86_400)
    }

    var weekday: Weekday {
        // 1970-01-01 was a Thursday.
        let index = ((dayNumber % 7) + 7 + 3) % 7
        return Weekday.allCases[index]
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    public static func < (lhs: LocalDate, rhs: LocalDate) -> Bool { lhs.dayNumber < rhs.dayNumber }

    public var description: String {
        let y = String(year), m = String(month), d = String(day)
        return String(repeating: "0", count: max(0, 4 - y.count)) + y + "-"
            + (m.count < 2 ? "0" : "") + m + "-" + (d.count < 2 ? "0" : "") + d
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let date = LocalDate(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not YYYY-MM-DD"))
        }
        self = date
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A day of the week as written in `send_window.days`.
public enum Weekday: String, CaseIterable, Sendable, Codable, Comparable {
    case mon, tue, wed, thu, fri, sat, sun

    var isBusinessDay: Bool { self != .sat && self != .sun }

    public static func < (lhs: Weekday, rhs: Weekday) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// A wall-clock time of day, `HH:MM` (24-hour), as in `send_window.start`.
public struct ClockTime: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// 0...23.
    public let hour: Int
    /// 0...59.
    public let minute: Int

    /// Parses exactly `HH:MM`; `24:00` is accepted as the end of the day.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let hour = Int(parts[0]), let minute = Int(parts[1]),
              (0...59).contains(minute), (0...23).contains(hour) || (hour == 24 && minute == 0)
        else { return nil }
        self.hour = hour
        self.minute = minute
    }

    var secondsOfDay: TimeInterval { TimeInterval(hour * 3_600 + minute * 60) }

    public static func < (lhs: ClockTime, rhs: ClockTime) -> Bool { lhs.secondsOfDay < rhs.secondsOfDay }

    public var description: String {
        (hour < 10 ? "0" : "") + String(hour) + ":" + (minute < 10 ? "0" : "") + String(minute)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let time = ClockTime(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not HH:MM"))
        }
        self = time
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Conversions between instants and wall-clock time in a zone, done with offsets only.
/// `Calendar.date(from:)` on Linux moves a time inside a DST gap forward by the gap (02:30 →
/// 03:30); we want the first valid instant (03:00), and the earlier instant of a repeated hour.
package enum WallClock {
    /// The local date and seconds since local midnight of `instant` in `zone`.
    static func local(_ instant: Date, in zone: TimeZone) -> (date: LocalDate, secondsOfDay: TimeInterval) {
        let shifted = instant.timeIntervalSince1970 + TimeInterval(zone.secondsFromGMT(for: instant))
        let dayNumber = Int((shifted / 86_400).rounded(.down))
        return (LocalDate(dayNumber: dayNumber), shifted - TimeInterval(dayNumber) * 86_400)
    }

    /// The instants at which the wall clock in `zone` shows `date` with a time of day in
    /// [`from`, `to`) (seconds since midnight; `to` may be 86 400), sorted. One interval per UTC
    /// offset in force that day: a spring-forward gap shortens or removes one (a window starting
    /// in the gap opens at the first instant after it), a fall-back overlap yields two.
    static func intervals(on date: LocalDate, from: TimeInterval, to: TimeInterval, in zone: TimeZone) -> [Range<TimeInterval>] {
        let midnight = TimeInterval(date.dayNumber) * 86_400
        var result = [Range<TimeInterval>]()
        for segment in offsetSegments(around: midnight, in: zone) {
            let lower = max(midnight + from - segment.offset, segment.span.lowerBound)
            let upper = min(midnight + to - segment.offset, segment.span.upperBound)
            if lower < upper { result.append(lower..<upper) }
        }
        return result
    }

    /// Spans of constant UTC offset covering every instant whose local date could be the day that
    /// starts at the naive `midnight` (offsets lie within ±14 h, so 14 h either side covers it).
    /// Offset changes are found by sampling every six hours and bisecting to the second; zones
    /// never change offset twice within six hours.
    private static func offsetSegments(around midnight: TimeInterval, in zone: TimeZone) -> [(span: Range<TimeInterval>, offset: TimeInterval)] {
        func offset(_ t: TimeInterval) -> TimeInterval {
            TimeInterval(zone.secondsFromGMT(for: Date(timeIntervalSince1970: t)))
        }
        let begin = midnight - 14 * 3_600, end = midnight + 38 * 3_600
        var segments = [(span: Range<TimeInterval>, offset: TimeInterval)]()
        var segmentStart = begin
        var current = offset(begin)
        var sample = begin
        while sample < end {
            let next = min(sample + 6 * 3_600, end)
            let nextOffset = offset(next)
            if nextOffset != current {
                var low = sample, high = next
                while high - low > 1 {
                    let middle = ((low + high) / 2).rounded(.down)
                    if offset(middle) == current { low = middle } else { high = middle }
                }
                segments.append((segmentStart..<high, current))
                segmentStart = high
                current = nextOffset
            }
            sample = next
        }
        segments.append((segmentStart..<end, current))
        return segments
    }

    /// RFC 3339 text of `instant` as the wall clock in `zone` shows it, with the offset in force
    /// (`2026-03-08T03:00:00-04:00`, `2026-03-08T12:30:00+05:30`), or `Z` for the UTC zone.
    /// Whole seconds: every time seqd computes is.
    package static func rfc3339(_ instant: Date, in zone: TimeZone) -> String {
        let (date, seconds) = local(instant, in: zone)
        let whole = Int(seconds.rounded(.down))
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : String(n) }
        let time = "\(two(whole / 3_600)):\(two(whole / 60 % 60)):\(two(whole % 60))"
        let offset = zone.secondsFromGMT(for: instant)
        let suffix: String
        if offset == 0 && ["UTC", "GMT", "Etc/UTC", "Etc/GMT"].contains(zone.identifier) {
            suffix = "Z"
        } else {
            let minutes = abs(offset) / 60
            suffix = (offset < 0 ? "-" : "+") + two(minutes / 60) + ":" + two(minutes % 60)
        }
        return "\(date)T\(time)\(suffix)"
    }

    /// The instant at which the wall clock in `zone` shows `date` + `secondsOfDay`.
    static func instant(_ date: LocalDate, secondsOfDay: TimeInterval, in zone: TimeZone) -> Date {
        let naive = TimeInterval(date.dayNumber) * 86_400 + secondsOfDay
        func offset(_ t: TimeInterval) -> TimeInterval {
            TimeInterval(zone.secondsFromGMT(for: Date(timeIntervalSince1970: t)))
        }
        // Offsets in force a day either side bracket any transition near this wall time.
        let candidates = Set([naive - offset(naive - 86_400), naive - offset(naive + 86_400)]).sorted()
        if let valid = candidates.first(where: { $0 + offset($0) == naive }) {
            return Date(timeIntervalSince1970: valid)
        }
        // In a gap: the earlier candidate uses the old offset, the later one the new; the
        // transition between them is the first instant that exists.
        // Transitions fall on whole seconds, so search those.
        guard let first = candidates.first, let last = candidates.last, first < last else {
            return Date(timeIntervalSince1970: candidates[0])
        }
        var low = first.rounded(.down), high = last.rounded(.up)
        let before = offset(low)
        while high - low > 1 {
            let middle = ((low + high) / 2).rounded(.down)
            if offset(middle) == before { low = middle } else { high = middle }
        }
        return Date(timeIntervalSince1970: high)
    }
}
