import Foundation
import Postgres
import SequenceEngine
import SequenceStore
import Testing
import TestSupport

/// Deferrals, sender daily limits and stop_company_on_reply against a real database (issue 7).
@Suite("scheduling in the store")
struct SchedulingStoreTests {
    static func database(_ prefix: String, sequence yaml: String, contacts: [String]) async throws -> (Connection, String) {
        let url = try await TestDatabase.shared.makeMigratedDatabase(prefix: prefix)
        let connection = try Connection(url)
        try SequenceCatalog.apply(connection, [try SequenceDefinition.parse(yaml, fileName: "\(prefix).yaml")])
        _ = try ContactStore.upsert(connection, contacts.map { ContactFields(email: $0) })
        return (connection, url)
    }

    static func expectCheckClean(_ connection: Connection, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let failing = try InvariantCheck.run(connection, leaseGraceSeconds: 60).filter { !$0.violations.isEmpty }
        #expect(failing.isEmpty, "seqd check: \(failing.map { "\($0.check): \($0.violations.map(\.problem))" })",
                sourceLocation: sourceLocation)
    }

    @Test("a due email outside its window is deferred to the window's opening, with a deferred event in the same transaction")
    func windowDeferral() async throws {
        // The window is open every day except today (UTC, by the database clock): the step is
        // due now and must wait for tomorrow 00:00 UTC.
        let probe = try await TestDatabase.shared.makeMigratedDatabase(prefix: "probe")
        let today = try Connection(probe).query(
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'dy') AS d, to_char((now() AT TIME ZONE 'UTC')::date + 1, 'YYYY-MM-DD') AS t")[0]
        let weekday = try today.decode("d", as: String.self)
        let tomorrow = try today.decode("t", as: String.self)
        let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].filter { $0 != weekday }.joined(separator: ", ")
        let (connection, _) = try await Self.database("deferral", sequence: """
            name: windowed
            sender: { address: team@example.com }
            send_window: { days: [\(days)], start: "00:00", end: "24:00" }
            steps: [{ key: hello, type: email, subject: Hi, body: Hello }]
            """, contacts: ["ada@example.com", "bob@example.com"])
        _ = try Enroller.enroll(connection, sequence: "windowed", selection: .all, actor: "test")
        let summary = try Advancer(actor: "worker:test", installationID: "t1").advanceBatch(connection, limit: 10)
        #expect(summary.claimed == 2 && summary.deferred == 2 && summary.deliveriesCreated == 0, "\(summary)")
        let rows = try connection.query(
            """
            SELECT e.next_run_at = ($1::date)::timestamp AT TIME ZONE 'UTC' AS at_opening, v.event, v.reason, v.actor,
                   v.from_status::text = v.to_status::text AND v.to_status = 'active' AS same_status,
                   v.from_step = 0 AND v.to_step = 0 AS same_step, v.detail ->> 'step' AS step,
                   v.detail ->> 'until' AS until, v.detail ->> 'until_local' AS until_local
            FROM seqd.enrollments e
            JOIN LATERAL (SELECT * FROM seqd.enrollment_events x WHERE x.enrollment_id = e.id ORDER BY x.id DESC LIMIT 1) v ON true
            """, [tomorrow])
        #expect(rows.count == 2)
        for row in rows.rows {
            #expect(try row.decode("at_opening", as: Bool.self))
            #expect(try row.decode("event", as: String.self) == "deferred")
            #expect(try row.decode("reason", as: String.self) == "send_window")
            #expect(try row.decode("actor", as: String.self) == "worker:test")
            #expect(try row.decode("same_status", as: Bool.self) && row.decode("same_step", as: Bool.self))
            #expect(try row.decode("step", as: String.self) == "hello")
            #expect(try row.decode("until", as: String.self) == "\(tomorrow)T00:00:00Z")
            #expect(try row.decode("until_local", as: String.self) == "\(tomorrow)T00:00:00Z")
        }
        // Deferred, not due again today: the next batch claims nothing.
        #expect(try Advancer(actor: "worker:test", installationID: "t1").advanceBatch(connection, limit: 10).claimed == 0)
        try Self.expectCheckClean(connection)
    }

    @Test("four concurrent advancers never queue more than the sender's daily limit; every enrollment over it is deferred with its reason")
    func senderLimitAcrossWorkers() async throws {
        let count = 120, limit = 37
        // Kiritimati is UTC+14: the limit's day is the sequence's, not UTC's.
        let (connection, url) = try await Self.database("senderlimit", sequence: """
            name: limited
            sender: { address: Sales@Example.com, daily_limit: \(limit) }
            time_zone: Pacific/Kiritimati
            steps: [{ key: pitch, type: email, subject: Hi, body: Hello }]
            """, contacts: (0..<count).map { "lead\($0)@example.org" })
        _ = try Enroller.enroll(connection, sequence: "limited", selection: .all, actor: "test")

        let failures = Failures()
        let group = DispatchGroup()
        for worker in 0..<4 {
            DispatchQueue.global().async(group: group) {
                do {
                    let own = try Connection(url)
                    let advancer = Advancer(actor: "worker:\(worker)", installationID: "t1")
                    while try advancer.advanceBatch(own, limit: 7).claimed > 0 {}
                } catch {
                    failures.add("worker \(worker): \(error)")
                }
            }
        }
        group.wait()
        #expect(failures.all.isEmpty, "\(failures.all)")

        let outcome = try connection.query(
            """
            SELECT (SELECT count(*) FROM seqd.deliveries) AS queued,
                   (SELECT reserved FROM seqd.sender_daily_counts
                    WHERE sender = 'sales@example.com' AND day = (now() AT TIME ZONE 'Pacific/Kiritimati')::date) AS reserved,
                   (SELECT count(*) FROM seqd.sender_daily_counts) AS counters,
                   (SELECT count(*) FROM seqd.enrollments e
                    WHERE NOT EXISTS (SELECT 1 FROM seqd.deliveries d WHERE d.enrollment_id = e.id)) AS without_delivery,
                   (SELECT count(*) FROM seqd.enrollments e
                    WHERE NOT EXISTS (SELECT 1 FROM seqd.deliveries d WHERE d.enrollment_id = e.id)
                      AND e.status = 'active'
                      AND e.next_run_at = ((now() AT TIME ZONE 'Pacific/Kiritimati')::date + 1)::timestamp AT TIME ZONE 'Pacific/Kiritimati'
                      AND EXISTS (SELECT 1 FROM seqd.enrollment_events v WHERE v.enrollment_id = e.id AND v.event = 'deferred'
                                    AND v.reason = 'sender_daily_limit' AND v.detail ->> 'step' = 'pitch')) AS deferred_properly,
                   (SELECT count(*) FROM seqd.enrollment_events v JOIN seqd.deliveries d ON d.enrollment_id = v.enrollment_id
                    WHERE v.event = 'deferred') AS deferred_but_queued
            """)[0]
        #expect(try outcome.decode("queued", as: Int.self) == limit)
        #expect(try outcome.decode("reserved", as: Int.self) == limit)
        #expect(try outcome.decode("counters", as: Int.self) == 1)
        #expect(try outcome.decode("without_delivery", as: Int.self) == count - limit)
        #expect(try outcome.decode("deferred_properly", as: Int.self) == count - limit)
        #expect(try outcome.decode("deferred_but_queued", as: Int.self) == 0)
        try Self.expectCheckClean(connection)
    }

    @Test("a reply under stop_company_on_reply stops the colleagues in the same sequence, never free-mail neighbours")
    func stopCompanyOnReply() async throws {
        let contacts = ["ada@acme.com", "bob@ACME.com", "cy@acme.com", "dan@gmail.com", "eve@gmail.com", "fay@other.com"]
        let (connection, _) = try await Self.database("company", sequence: """
            name: outreach
            sender: { address: team@example.com }
            stop_company_on_reply: true
            steps:
              - { key: first, type: email, subject: Hi, body: Hello }
              - { type: wait, duration: 2d }
              - { key: second, type: email, subject: Again, body: Hello again }
            """, contacts: contacts)
        try SequenceCatalog.apply(connection, [try SequenceDefinition.parse(
            "name: other\nsender: { address: team@example.com }\nsteps: [{ type: wait, duration: 3d }]", fileName: "other.yaml")])
        _ = try Enroller.enroll(connection, sequence: "outreach", selection: .all, actor: "test")
        _ = try Enroller.enroll(connection, sequence: "other", selection: .emails(["cy@acme.com"]), actor: "test")
        _ = try Advancer(actor: "worker:test", installationID: "t1").advanceBatch(connection, limit: 10)

        let actions = OperatorActions(actor: "cli:tester", source: "cli", installationID: "t1")
        let outcome = try actions.apply(.reply, to: .contacts(["ada@acme.com"], sequence: "outreach"), using: connection)
        let result = try #require(outcome.first?.results.first)
        #expect(result.to == .replied)
        #expect(result.companyStops.map(\.to) == [.stopped, .stopped])

        let ada = try connection.query("SELECT id, contact_id FROM seqd.enrollments WHERE contact_id = (SELECT id FROM seqd.contacts WHERE email = 'ada@acme.com')")[0]
        let statuses = try connection.query(
            """
            SELECT c.email, s.name, e.status::text AS status,
                   (SELECT count(*) FROM seqd.deliveries d WHERE d.enrollment_id = e.id AND d.status = 'pending') AS pending
            FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id JOIN seqd.sequences s ON s.id = e.sequence_id
            """).rows.reduce(into: [String: (String, Int)]()) {
                $0["\(try $1.decode("email", as: String.self))/\(try $1.decode("name", as: String.self))"] =
                    (try $1.decode("status"), try $1.decode("pending"))
            }
        #expect(statuses["ada@acme.com/outreach"]?.0 == "replied")
        #expect(statuses["bob@ACME.com/outreach"]?.0 == "stopped" && statuses["bob@ACME.com/outreach"]?.1 == 0)
        #expect(statuses["cy@acme.com/outreach"]?.0 == "stopped")
        #expect(statuses["cy@acme.com/other"]?.0 == "active", "another sequence is not touched")
        #expect(statuses["dan@gmail.com/outreach"]?.0 == "active")
        #expect(statuses["fay@other.com/outreach"]?.0 == "active")
        let stops = try connection.query(
            "SELECT actor, reason FROM seqd.enrollment_events WHERE event = 'stop' ORDER BY id")
        #expect(stops.count == 2)
        let expectedReason = "stop_company_on_reply: contact \(try ada.decode("contact_id", as: Int64.self)) replied (enrollment \(try ada.decode("id", as: Int64.self)))"
        for row in stops.rows {
            #expect(try row.decode("actor", as: String.self) == "cli:tester")
            #expect(try row.decode("reason", as: String.self) == expectedReason)
        }

        // A free-mail reply stops nobody else.
        let free = try actions.apply(.reply, to: .contacts(["dan@gmail.com"], sequence: "outreach"), using: connection)
        #expect(free.first?.results.first?.to == .replied)
        #expect(free.first?.results.first?.companyStops.isEmpty == true)
        let eve = try connection.query(
            "SELECT e.status::text AS s FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = 'eve@gmail.com'")
        #expect(try eve[0].decode("s", as: String.self) == "active")
        try Self.expectCheckClean(connection)
    }
}

/// Errors collected from worker threads.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items = [String]()
    func add(_ item: String) { lock.withLock { items.append(item) } }
    var all: [String] { lock.withLock { items } }
}
