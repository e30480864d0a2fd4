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

/// The send-time rule shared by every email step: the first instant at or after `now` whose wall
/// clock in the contact's zone lies inside the window (if any) on a date that is not a skip date.
///
/// "Inside" is decided on the wall clock, which settles both DST cases: a window that starts in a
/// spring-forward gap (02:30 on a day that jumps from 02:00 to 03:00) opens at the first instant
/// that exists (03:00); in a fall-back overlap the same wall time happens twice, and the answer
/// is the first instant at or after `now`, so one due step yields one send time, never two.
enum SendSchedule {
    /// Ten years of days: past that, the skip dates cover everything and we give up waiting.
    static let searchLimitDays = 3_660

    static func nextSendTime(atOrAfter now: Date, window: SendWindow?, skipDates: Set<LocalDate>, in zone: TimeZone) -> Date {
        guard window != nil || !skipDates.isEmpty else { return now }
        let from = window?.start.secondsOfDay ?? 0
        let to = window?.end.secondsOfDay ?? 86_400
        let instant = now.timeIntervalSince1970
        // Start a day early: where a zone falls back across midnight, `now` can belong to the
        // previous local date a second time.
        let today = WallClock.local(now, in: zone).date
        for offset in -1..<searchLimitDays {
            let date = today.adding(days: offset)
            guard !skipDates.contains(date), window?.days.contains(date.weekday) ?? true else { continue }
            for interval in WallClock.intervals(on: date, from: from, to: to, in: zone) where instant < interval.upperBound {
                return Date(timeIntervalSince1970: max(instant, interval.lowerBound))
            }
        }
        return now
    }
}

/// Why a step that came due was moved to a later instant (`enrollment_events.reason`).
public enum DeferralReason: String, Sendable, Codable, CaseIterable {
    /// Outside the send window in the contact's zone.
    case sendWindow = "send_window"
    /// The local date is one of the sequence's `skip_dates`.
    case skipDate = "skip_date"
    /// The sender's `daily_limit` for the day (in the sequence's zone) is used up.
    case senderDailyLimit = "sender_daily_limit"
}

/// A due step moved later: recorded as a `deferred` audit event, never skipped.
public struct Deferral: Sendable, Equatable {
    /// The step that came due.
    public let stepKey: String
    /// Why it cannot go out now.
    public let reason: DeferralReason
    /// When it came due (the database's `now`).
    public let due: Date
    /// The next allowed instant: the enrollment's new `next_run_at`.
    public let until: Date
    /// The zone the window was evaluated in (the contact's, else the sequence's).
    public let timeZone: TimeZone

    /// Creates a deferral (the machine makes these; tests may too).
    public init(stepKey: String, reason: DeferralReason, due: Date, until: Date, timeZone: TimeZone) {
        self.stepKey = stepKey
        self.reason = reason
        self.due = due
        self.until = until
        self.timeZone = timeZone
    }
}
