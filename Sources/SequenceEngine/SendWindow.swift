import Foundation

/// When emails may go out, in the contact's local time: `{ days: [mon, …], start: "09:00",
/// end: "17:00" }`. `start` is inclusive and `end` exclusive; windows do not cross midnight
/// (`end` must be after `start`; `24:00` means the end of the day). `days` defaults to all seven.
public struct SendWindow: Hashable, Sendable, Codable {
    /// The weekdays on which the window opens, sorted, without duplicates.
    public let days: [Weekday]
    /// Local opening time (inclusive).
    public let start: ClockTime
    /// Local closing time (exclusive), after `start`.
    public let end: ClockTime

    /// The caller (the parser) has checked `start < end` and that `days` is not empty.
    init(days: [Weekday], start: ClockTime, end: ClockTime) {
        self.days = Array(Set(days)).sorted()
        self.start = start
        self.end = end
    }
}

/// The send-time rule shared by every email step: the first instant at or after `now` that lies
/// inside the window (if any) on a date that is not a skip date, in the contact's zone.
enum SendSchedule {
    /// Ten years of days: past that, the skip dates cover everything and we give up waiting.
    static let searchLimitDays = 3_660

    static func nextSendTime(atOrAfter now: Date, window: SendWindow?, skipDates: Set<LocalDate>, in zone: TimeZone) -> Date {
        guard window != nil || !skipDates.isEmpty else { return now }
        let today = WallClock.local(now, in: zone).date
        for offset in 0..<searchLimitDays {
            let date = today.adding(days: offset)
            guard !skipDates.contains(date) else { continue }
            let opening: Date
            let closing: Date
            if let window {
                guard window.days.contains(date.weekday) else { continue }
                opening = WallClock.instant(date, secondsOfDay: window.start.secondsOfDay, in: zone)
                closing = WallClock.instant(date, secondsOfDay: window.end.secondsOfDay, in: zone)
            } else {
                opening = WallClock.instant(date, secondsOfDay: 0, in: zone)
                closing = WallClock.instant(date.adding(days: 1), secondsOfDay: 0, in: zone)
            }
            if now < closing { return max(now, opening) }
        }
        return now
    }
}
