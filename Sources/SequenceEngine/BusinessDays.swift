import Foundation

/// Business-day arithmetic for `<n> business days` waits (design.md §5): weekdays in the
/// contact's zone, skipping the sequence's `skip_dates`.
public enum BusinessDays {
    /// The instant `days` business days after `start`, at the same local time of day.
    ///
    /// Counting starts with the day after `start`'s local date, so Friday 10:00 + 1 is Monday
    /// 10:00 and Saturday 10:00 + 1 is also Monday 10:00. The time of day is kept on the wall
    /// clock (not in elapsed hours), so a DST change in between does not shift it; a time that
    /// does not exist on the target day (DST gap) becomes the first instant after the gap.
    public static func add(_ days: Int, to start: Date, in zone: TimeZone, skipping skipDates: Set<LocalDate>) -> Date {
        guard days > 0 else { return start }
        let (startDate, secondsOfDay) = WallClock.local(start, in: zone)
        var date = startDate
        var counted = 0
        while counted < days {
            date = date.adding(days: 1)
            if date.weekday.isBusinessDay && !skipDates.contains(date) { counted += 1 }
        }
        return WallClock.instant(date, secondsOfDay: secondsOfDay, in: zone)
    }
}

extension WaitDuration {
    /// When a wait of this duration that starts at `start` ends, for a contact in `zone`.
    public func end(after start: Date, in zone: TimeZone, skipping skipDates: Set<LocalDate>) -> Date {
        switch self {
        case .elapsed(let seconds):
            return start.addingTimeInterval(TimeInterval(seconds))
        case .businessDays(let days):
            return BusinessDays.add(days, to: start, in: zone, skipping: skipDates)
        }
    }
}
