import Foundation
import Postgres
import Synchronization
import SequenceEngine
import SequenceStore
import Testing
import TestSupport

/// `seqd enroll` in the store: who is enrolled, who is skipped and why, and the audit trail.
@Suite("enroll")
struct EnrollerTests {
    let url: String
    let connection: Connection

    /// The first email needs `company` (no fallback); first_name has one.
    static let sequence = """
        name: welcome
        sender: { address: hello@example.com }
        steps:
          - key: intro
            type: email
            subject: "Hello {{first_name|there}} at {{company}}"
            body: "{{company}} is a fine place. {{team}}"
        """

    init() async throws {
        url = try await TestDatabase.shared.makeMigratedDatabase(prefix: "enroll")
        connection = try Connection(url)
        try SequenceCatalog.apply(connection, [try SequenceDefinition.parse(Self.sequence, fileName: "welcome.yaml")])
        _ = try ContactStore.upsert(
            connection,
            ["ada", "bob", "dee", "eve"].map { ContactFields(email: "\($0)@example.com", attributes: ["company": "ACME", "team": "A"]) }
                + [ContactFields(email: "cy@example.com", attributes: ["team": " "])])
        try connection.execute("INSERT INTO seqd.suppressions (email, reason, source) VALUES ('bob@example.com', 'opt_out', 'test')")
    }

    func enroll(
        _ emails: [String], allowReenroll: Bool = false, dryRun: Bool = false
    ) throws -> EnrollmentSummary {
        try Enroller.enroll(
            connection, sequence: "welcome", selection: .emails(emails), allowReenroll: allowReenroll, dryRun: dryRun,
            actor: "cli:test")
    }

    func count(_ sql: String) throws -> Int {
        try connection.query("SELECT count(*) AS n FROM \(sql)")[0].decode("n")
    }

    /// dee is live, eve went through the sequence already.
    func prepareHistory() throws {
        #expect(try enroll(["dee@example.com", "eve@example.com"]).enrolled == 2)
        try connection.execute(
            """
            UPDATE seqd.enrollments SET status = 'completed', current_step_index = 1
            WHERE contact_id = (SELECT id FROM seqd.contacts WHERE email = 'eve@example.com')
            """)
    }

    @Test("each skip class is counted once, and missing fields are named")
    func skipClasses() throws {
        try prepareHistory()
        let summary = try enroll([
            "ADA@example.com", "bob@example.com", "cy@example.com", "dee@example.com", "eve@example.com",
            "nobody@example.com", "ada@example.com",
        ])
        #expect(summary.enrolled == 1)
        #expect(summary.alreadyLive == 1)
        #expect(summary.enrolledBefore == 1)
        #expect(summary.suppressed == 1)
        #expect(summary.missingTemplateFields == 1)
        #expect(summary.missingFields == ["company": 1, "team": 1])
        #expect(summary.unknownContacts == 1)
        #expect(summary.version == 1 && !summary.dryRun)

        let row = try connection.query(
            """
            SELECT e.sequence_version, e.status::text AS status, e.current_step_index, e.next_run_at <= now() AS due
            FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = 'ada@example.com'
            """)
        #expect(row.count == 1)
        #expect(try row[0].decode("sequence_version", as: Int.self) == 1)
        #expect(try row[0].decode("status", as: String.self) == "active")
        #expect(try row[0].decode("current_step_index", as: Int.self) == 0)
        #expect(try row[0].decode("due", as: Bool.self))
    }

    @Test("new enrollments pin the latest version")
    func pinsLatest() throws {
        try SequenceCatalog.apply(
            connection,
            [try SequenceDefinition.parse(Self.sequence.replacingOccurrences(of: "Hello", with: "Hi"), fileName: "w.yaml")])
        let summary = try enroll(["ada@example.com"])
        #expect(summary.version == 2)
        #expect(try count("seqd.enrollments WHERE sequence_version = 2") == 1)
    }

    @Test("a dry run reports the same counts and writes nothing, not even imported contacts")
    func dryRun() throws {
        try prepareHistory()
        let enrollments = try count("seqd.enrollments")
        let events = try count("seqd.enrollment_events")
        let emails = ["ada@example.com", "bob@example.com", "cy@example.com", "dee@example.com", "nobody@example.com"]
        let dry = try enroll(emails, dryRun: true)
        #expect(dry.dryRun && dry.enrolled == 1 && dry.suppressed == 1 && dry.alreadyLive == 1)
        #expect(try count("seqd.enrollments") == enrollments)
        #expect(try count("seqd.enrollment_events") == events)

        let imported = try Enroller.enroll(
            connection, sequence: "welcome",
            selection: .imported([ContactFields(email: "new@example.com", attributes: ["company": "X", "team": "B"])]),
            dryRun: true, actor: "cli:test")
        #expect(imported.enrolled == 1 && imported.imported?.created == 1)
        #expect(try count("seqd.contacts WHERE email = 'new@example.com'") == 0)

        var real = try enroll(emails)
        real.imported = nil
        #expect(real.enrolled == dry.enrolled && real.suppressed == dry.suppressed && real.alreadyLive == dry.alreadyLive)
        #expect(real.missingFields == dry.missingFields && real.unknownContacts == dry.unknownContacts)
    }

    @Test("a contact who went through the sequence is enrolled again only with allowReenroll")
    func reenroll() throws {
        try prepareHistory()
        #expect(try enroll(["eve@example.com"]).enrolledBefore == 1)
        let again = try enroll(["eve@example.com"], allowReenroll: true)
        #expect(again.enrolled == 1 && again.enrolledBefore == 0)
        #expect(try count("seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = 'eve@example.com'") == 2)
        // Live now: allowReenroll never makes a second live enrollment.
        #expect(try enroll(["eve@example.com"], allowReenroll: true).alreadyLive == 1)
    }

    @Test("every new enrollment has exactly one audit row: event enroll, the caller as actor")
    func audit() throws {
        let summary = try Enroller.enroll(connection, sequence: "welcome", selection: .all, actor: "cli:alice")
        #expect(summary.enrolled == 3)  // ada, dee, eve; bob suppressed, cy missing fields
        let rows = try connection.query(
            """
            SELECT e.id, count(v.id) AS events, min(v.event) AS event, min(v.actor) AS actor,
                   bool_and(v.from_status IS NULL AND v.to_status = 'active' AND v.to_step = 0) AS shape
            FROM seqd.enrollments e LEFT JOIN seqd.enrollment_events v ON v.enrollment_id = e.id
            GROUP BY e.id
            """)
        #expect(rows.count == 3)
        for row in rows.rows {
            #expect(try row.decode("events", as: Int.self) == 1)
            #expect(try row.decode("event", as: String.self) == "enroll")
            #expect(try row.decode("actor", as: String.self) == "cli:alice")
            #expect(try row.decode("shape", as: Bool.self))
        }
    }

    @Test("an unknown sequence is not found")
    func unknownSequence() throws {
        let error = #expect(throws: StoreError.self) {
            try Enroller.enroll(connection, sequence: "nope", selection: .all, actor: "cli:test")
        }
        #expect(error?.kind == .notFound)
    }

    @Test("concurrent enrolls of the same contacts enroll each exactly once")
    func concurrentEnroll() async throws {
        _ = try ContactStore.upsert(
            connection, (0..<200).map { ContactFields(email: "c\($0)@example.com", attributes: ["company": "C", "team": "T"]) })
        let url = self.url
        let summaries = try await withThrowingTaskGroup(of: EnrollmentSummary.self) { group in
            for index in 0..<4 {
                let database = ConfinedConnection(url, label: "enroll-\(index)")
                group.addTask {
                    try await database.run { try Enroller.enroll($0, sequence: "welcome", selection: .all, actor: "cli:test") }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        // 203 eligible: the 200 plus ada, dee, eve.
        #expect(summaries.map(\.enrolled).reduce(0, +) == 203)
        #expect(summaries.allSatisfy { $0.enrolled + $0.alreadyLive == 203 })
        #expect(try count("seqd.enrollments") == 203)
        #expect(try count("seqd.enrollment_events") == 203)
    }

    @Test("overlapping address lists in opposite orders enroll concurrently without deadlock")
    func concurrentOpposingOrders() async throws {
        let emails = (0..<300).map { "o\($0)@example.com" }
        _ = try ContactStore.upsert(connection, emails.map { ContactFields(email: $0, attributes: ["company": "C", "team": "T"]) })
        let url = self.url
        let summaries = try await withThrowingTaskGroup(of: EnrollmentSummary.self) { group in
            for index in 0..<4 {
                let database = ConfinedConnection(url, label: "opposing-\(index)")
                let list = index.isMultiple(of: 2) ? emails : emails.reversed()
                group.addTask {
                    try await database.run {
                        try Enroller.enroll($0, sequence: "welcome", selection: .emails(list), actor: "cli:test")
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(summaries.map(\.enrolled).reduce(0, +) == 300)
        #expect(try count("seqd.enrollments") == 300)
    }

    @Test("a real enroll wakes daemons with one NOTIFY; a dry run sends none")
    func wakesDaemons() async throws {
        let received = Mutex(0)
        let listener = try NotificationListener(connectionString: url, channels: ["seqd_wakeup"]) { event in
            if case .notification = event { received.withLock { $0 += 1 } }
        }
        defer { listener.stop() }
        _ = try enroll(["ada@example.com"], dryRun: true)
        _ = try enroll(["ada@example.com"])
        // Notifications arrive in commit order: had the dry run sent one, it would be counted first.
        try await waitUntil("the wake-up") { received.withLock { $0 } >= 1 }
        #expect(received.withLock { $0 } == 1)
    }
}
