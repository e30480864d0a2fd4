import Foundation
import Postgres
import Testing
import TestSupport

/// `seqd simulate` as an operator runs it: the real binary against a real database.
@Suite("seqd simulate")
struct SimulateCommandTests {
    static let sequence = """
        name: onboarding
        sender: { address: hello@example.com, daily_limit: 50 }
        time_zone: America/New_York
        send_window: { days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00" }
        skip_dates: [2026-12-25]
        steps:
          - { key: welcome, type: email, subject: "Welcome, {{first_name|there}}", body: Hi }
          - { type: wait, duration: 2 business days }
          - { key: route, type: branch, when: [{ if: { attribute: plan, equals: free }, goto: end }] }
          - { key: tips, type: email, subject: Tips, body: Hi }
        """

    static func counts(_ connection: Connection) throws -> [Int] {
        let row = try connection.query(
            """
            SELECT (SELECT count(*) FROM seqd.enrollments) AS e, (SELECT count(*) FROM seqd.enrollment_events) AS v,
                   (SELECT count(*) FROM seqd.deliveries) AS d, (SELECT count(*) FROM seqd.sender_daily_counts) AS s
            """)[0]
        return [try row.decode("e"), try row.decode("v"), try row.decode("d"), try row.decode("s")]
    }

    @Test("prints the timeline in the contact's zone and UTC, as stable JSON, and writes nothing")
    func timeline() async throws {
        let scenario = try await Scenario.prepare(prefix: "simulate", sequence: Self.sequence, name: "onboarding", contacts: ["ada@example.com"])
        let connection = try scenario.connect()
        try connection.execute("UPDATE seqd.contacts SET time_zone = 'Asia/Kolkata', attributes = '{\"plan\": \"pro\"}'")
        let before = try Self.counts(connection)

        let human = try await scenario.seqd.run("simulate", "--sequence", "onboarding", "--contact", "ADA@example.com", "--start", "2026-12-24T16:00:00Z")
        #expect(human.status == 0, "\(human)")
        #expect(human.stdout.contains("2026-12-24T21:30:00+05:30  2026-12-24T16:00:00Z  welcome  deferred (send_window) until 2026-12-28T09:00:00+05:30"), "\(human.stdout)")
        #expect(human.stdout.contains("branch → tips (no rule matched)"), "\(human.stdout)")
        #expect(human.stdout.contains("sender daily limits are not predicted"), "\(human.stdout)")

        let json = try await scenario.seqd.run("simulate", "--sequence", "onboarding", "--contact", "ada@example.com", "--start", "2026-12-24T16:00:00Z", "--json")
        #expect(json.status == 0, "\(json)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["time_zone"] as? String == "Asia/Kolkata")
        #expect(object["completed"] as? Bool == true)
        let entries = try #require(object["entries"] as? [[String: Any]])
        #expect(entries.map { $0["kind"] as? String } == ["deferred", "email", "wait", "branch", "email", "completed"])
        #expect(entries[0]["reason"] as? String == "send_window")
        #expect(entries[1]["at"] as? String == "2026-12-28T03:30:00Z")
        #expect(entries[1]["at_local"] as? String == "2026-12-28T09:00:00+05:30")

        // Without --start the database's clock is the start.
        #expect(try await scenario.seqd.run("simulate", "--sequence", "onboarding", "--contact", "ada@example.com").status == 0)
        #expect(try Self.counts(connection) == before, "simulate wrote something")
    }

    @Test("an unknown contact or sequence exits 1 naming it; a bad --start is a usage error")
    func refusals() async throws {
        let scenario = try await Scenario.prepare(prefix: "simulate_bad", sequence: Self.sequence, name: "onboarding", contacts: ["ada@example.com"])
        let contact = try await scenario.seqd.run("simulate", "--sequence", "onboarding", "--contact", "nobody@example.com")
        #expect(contact.status == 1 && contact.stderr.contains("no contact with address nobody@example.com"), "\(contact)")
        let sequence = try await scenario.seqd.run("simulate", "--sequence", "nope", "--contact", "ada@example.com")
        #expect(sequence.status == 1 && sequence.stderr.contains("no sequence named 'nope'"), "\(sequence)")
        let start = try await scenario.seqd.run("simulate", "--sequence", "onboarding", "--contact", "ada@example.com", "--start", "tomorrow")
        #expect(start.status == 64 && start.stderr.contains("--start 'tomorrow' is not an RFC 3339 time"), "\(start)")
    }
}
