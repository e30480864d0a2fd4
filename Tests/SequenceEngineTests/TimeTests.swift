import Foundation
import Testing
@testable import SequenceEngine

@Suite struct LocalDateTests {
    @Test(arguments: ["2026-12-25", "2024-02-29", "1970-01-01", "2000-02-29"])
    func roundTrips(_ text: String) throws {
        let date = try #require(LocalDate(text))
        #expect(date.description == text)
        #expect(LocalDate(dayNumber: date.dayNumber) == date)
    }

    @Test(arguments: ["2026-02-29", "2026-13-01", "2026-1-01", "26-01-01", "2026-01-32", "2026/01/01", "", "2026-01-01T00:00"])
    func rejectsInvalid(_ text: String) {
        #expect(LocalDate(text) == nil)
    }

    @Test func weekdays() throws {
        #expect(try #require(LocalDate("1970-01-01")).weekday == .thu)
        #expect(try #require(LocalDate("2026-03-09")).weekday == .mon)
        #expect(try #require(LocalDate("2026-03-08")).weekday == .sun)
    }

    @Test func clockTimes() {
        #expect(ClockTime("09:00")?.secondsOfDay == 32_400)
        #expect(ClockTime("24:00") != nil)
        for bad in ["9:00", "24:01", "12:60", "noon", "12:00:00"] { #expect(ClockTime(bad) == nil, "\(bad)") }
    }
}

@Suite struct WallClockTests {
    let newYork = zone("America/New_York")

    @Test func ordinaryTime() throws {
        let date = try #require(LocalDate("2026-03-10"))
        #expect(WallClock.instant(date, secondsOfDay: 10 * 3_600, in: newYork) == at("2026-03-10T14:00:00Z"))
    }

    @Test func gapMovesToFirstValidInstant() throws {
        // 2026-03-08 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
        let date = try #require(LocalDate("2026-03-08"))
        #expect(WallClock.instant(date, secondsOfDay: 2.5 * 3_600, in: newYork) == at("2026-03-08T07:00:00Z"))
    }

    @Test func repeatedHourTakesEarlierInstant() throws {
        // 2026-11-01 01:30 happens twice (EDT then EST).
        let date = try #require(LocalDate("2026-11-01"))
        #expect(WallClock.instant(date, secondsOfDay: 1.5 * 3_600, in: newYork) == at("2026-11-01T05:30:00Z"))
    }

    @Test func localOfInstant() {
        let (date, seconds) = WallClock.local(at("2026-03-08T07:00:00Z"), in: newYork)
        #expect(date.description == "2026-03-08")
        #expect(seconds == 3 * 3_600)
    }
}

@Suite struct BusinessDaysTests {
    let newYork = zone("America/New_York")

    @Test func fridayPlusOneIsMonday() {
        // Friday 2026-03-06 10:00 EST.
        let end = BusinessDays.add(1, to: at("2026-03-06T15:00:00Z"), in: newYork, skipping: [])
        #expect(end == at("2026-03-09T14:00:00Z"), "Monday 10:00 EDT, across the DST change")
    }

    @Test func dstWeekKeepsWallClockTime() {
        // Thursday 2026-03-05 09:30 EST + 3 business days = Tuesday 2026-03-10 09:30 EDT.
        let end = BusinessDays.add(3, to: at("2026-03-05T14:30:00Z"), in: newYork, skipping: [])
        #expect(end == at("2026-03-10T13:30:00Z"))
        // Elapsed time is not 5 × 24 h: the week lost an hour.
        #expect(end.timeIntervalSince(at("2026-03-05T14:30:00Z")) == 5 * 86_400 - 3_600)
    }

    @Test func fallBackWeek() {
        // Friday 2026-10-30 17:00 EDT + 1 = Monday 2026-11-02 17:00 EST.
        let end = BusinessDays.add(1, to: at("2026-10-30T21:00:00Z"), in: newYork, skipping: [])
        #expect(end == at("2026-11-02T22:00:00Z"))
    }

    @Test func weekendStartCountsFromMonday() {
        // Saturday 2026-03-07 12:00 EST + 1 = Monday 12:00 EDT.
        #expect(BusinessDays.add(1, to: at("2026-03-07T17:00:00Z"), in: newYork, skipping: []) == at("2026-03-09T16:00:00Z"))
    }

    @Test func skipDatesAreNotCounted() throws {
        let christmas = try #require(LocalDate("2026-12-25"))
        let boxing = try #require(LocalDate("2026-12-28"))
        // Thursday 2026-12-24 09:00 UTC + 1, skipping Fri 25th and Mon 28th → Tuesday 29th.
        let end = BusinessDays.add(1, to: at("2026-12-24T09:00:00Z"), in: zone("UTC"), skipping: [christmas, boxing])
        #expect(end == at("2026-12-29T09:00:00Z"))
    }

    @Test func skipDatesAreInTheContactsZone() throws {
        // 2026-12-24 23:30 in New York is already the 25th in UTC: the zone decides the local day.
        let christmas = try #require(LocalDate("2026-12-25"))
        let end = BusinessDays.add(1, to: at("2026-12-25T04:30:00Z"), in: newYork, skipping: [christmas])
        #expect(end == at("2026-12-29T04:30:00Z"), "Thu 24th 23:30 → skip Fri 25th → Mon 28th 23:30 EST")
    }

    @Test func zeroDaysIsStart() {
        let start = at("2026-03-07T17:00:00Z")
        #expect(BusinessDays.add(0, to: start, in: newYork, skipping: []) == start)
    }

    @Test func waitDurationEnd() {
        let start = at("2026-03-06T15:00:00Z")
        #expect(WaitDuration.elapsed(seconds: 90).end(after: start, in: newYork, skipping: []) == start.addingTimeInterval(90))
        #expect(WaitDuration.businessDays(1).end(after: start, in: newYork, skipping: []) == at("2026-03-09T14:00:00Z"))
    }
}

@Suite struct SendScheduleTests {
    let london = zone("Europe/London")
    let weekdays = SendWindow(days: [.mon, .tue, .wed, .thu, .fri], start: ClockTime("09:00")!, end: ClockTime("17:00")!)

    @Test func insideWindowIsNow() {
        let now = at("2026-06-10T10:00:00Z") // Wednesday 11:00 BST
        #expect(SendSchedule.nextSendTime(atOrAfter: now, window: weekdays, skipDates: [], in: london) == now)
    }

    @Test func beforeOpeningWaitsForIt() {
        #expect(SendSchedule.nextSendTime(atOrAfter: at("2026-06-10T05:00:00Z"), window: weekdays, skipDates: [], in: london)
            == at("2026-06-10T08:00:00Z"))
    }

    @Test func afterClosingOnFridayWaitsForMonday() {
        #expect(SendSchedule.nextSendTime(atOrAfter: at("2026-06-12T16:00:00Z"), window: weekdays, skipDates: [], in: london)
            == at("2026-06-15T08:00:00Z"))
    }

    @Test func endIsExclusive() {
        #expect(SendSchedule.nextSendTime(atOrAfter: at("2026-06-10T16:00:00Z"), window: weekdays, skipDates: [], in: london)
            == at("2026-06-11T08:00:00Z"))
    }

    @Test func skipDateWithoutWindowWaitsForNextDay() throws {
        let christmas = try #require(LocalDate("2026-12-25"))
        #expect(SendSchedule.nextSendTime(atOrAfter: at("2026-12-25T12:00:00Z"), window: nil, skipDates: [christmas], in: london)
            == at("2026-12-26T00:00:00Z"))
    }

    @Test func noWindowNoSkipIsNow() {
        let now = at("2026-12-25T12:00:00Z")
        #expect(SendSchedule.nextSendTime(atOrAfter: now, window: nil, skipDates: [], in: london) == now)
    }
}

@Suite struct WaitDurationTests {
    @Test(arguments: [("90s", WaitDuration.elapsed(seconds: 90)), ("36h", .elapsed(seconds: 129_600)), ("2d", .elapsed(seconds: 172_800)),
                      ("1w", .elapsed(seconds: 604_800)), ("3 business days", .businessDays(3)), ("1 business day", .businessDays(1))])
    func parsesAndPrintsBack(_ text: String, _ expected: WaitDuration) throws {
        let parsed = try WaitDuration.parse(text)
        #expect(parsed == expected)
        #expect(try WaitDuration.parse(parsed.description) == parsed)
    }

    @Test(arguments: ["2x", "-1d", "1.5h", "d", "", "10"])
    func rejects(_ text: String) {
        #expect(throws: WaitDuration.ParseError.self) { try WaitDuration.parse(text) }
    }

    @Test func configDurationsAcceptBareSeconds() throws {
        #expect(try WaitDuration.parseConfigDuration("30") == 30)
        #expect(try WaitDuration.parseConfigDuration("1h") == 3_600)
        #expect(throws: WaitDuration.ParseError.self) { try WaitDuration.parseConfigDuration("2 business days") }
    }
}

@Suite("time zone names")
struct TimeZoneNameTests {
    @Test("canonical IANA names are valid even where Foundation lists only the old ICU name",
          arguments: ["Asia/Kolkata", "Asia/Calcutta", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
                      "America/Argentina/Buenos_Aires", "UTC", "Etc/GMT+5"])
    func valid(_ name: String) {
        #expect(TimeZones.isValid(name))
    }

    @Test("POSIX spellings, abbreviations and unknown names are rejected",
          arguments: ["GMT+5", "EST5EDT", "EST", "PST", "utc", "Europe/Atlantis", "Europe/", "/Berlin", "europe/berlin", ""])
    func invalid(_ name: String) {
        #expect(!TimeZones.isValid(name))
    }
}
