import Foundation
import Postgres
import SequenceEngine
import SequenceStore
import Testing
import TestSupport

/// `sequence apply` versions and whole-sequence pause/resume, against a real database.
@Suite("sequences: apply, pause, resume")
struct SequenceStoreInputTests {
    let url: String
    let connection: Connection

    init() async throws {
        url = try await TestDatabase.shared.makeMigratedDatabase(prefix: "sequences")
        connection = try Connection(url)
    }

    static func onboarding(subject: String = "Welcome") throws -> SequenceDefinition {
        try SequenceDefinition.parse(
            """
            name: onboarding
            sender: { address: hello@example.com }
            steps:
              - key: intro
                type: email
                subject: "\(subject)"
                body: "Hi {{first_name|there}}"
              - type: wait
                duration: 2d
              - key: followup
                type: email
                subject: "Still there?"
                body: "Checking in."
            """, fileName: "onboarding.yaml")
    }

    func versions() throws -> [(version: Int, hash: String, definition: String)] {
        try connection.query(
            """
            SELECT v.version, v.content_hash, v.definition::text AS definition
            FROM seqd.sequence_versions v JOIN seqd.sequences s ON s.id = v.sequence_id
            WHERE s.name = 'onboarding' ORDER BY v.version
            """
        ).rows.map { (try $0.decode("version"), try $0.decode("content_hash"), try $0.decode("definition")) }
    }

    @Test("the first apply creates version 1; the same content again changes nothing; new content is version 2")
    func applyVersions() throws {
        let first = try SequenceCatalog.apply(connection, [try Self.onboarding()], sourceFiles: ["onboarding.yaml"])
        #expect(first == [AppliedSequence(name: "onboarding", version: 1, created: true)])
        let again = try SequenceCatalog.apply(connection, [try Self.onboarding()])
        #expect(again == [AppliedSequence(name: "onboarding", version: 1, created: false)])
        let changed = try SequenceCatalog.apply(connection, [try Self.onboarding(subject: "Hello")])
        #expect(changed == [AppliedSequence(name: "onboarding", version: 2, created: true)])

        let stored = try versions()
        #expect(stored.map(\.version) == [1, 2])
        // content_hash is SHA-256 of the canonical JSON; the server computes it independently here.
        let canonical = String(decoding: try Self.onboarding(subject: "Hello").canonicalJSON(), as: UTF8.self)
        let expectedHash = try connection.query(
            "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex') AS h", [canonical])[0].decode("h", as: String.self)
        #expect(stored[1].hash == expectedHash)
        // The stored definition decodes back to the very definition that was applied.
        #expect(try SequenceDefinition.decodeStored(Data(stored[1].definition.utf8)) == (try Self.onboarding(subject: "Hello")))
        let source = try connection.query("SELECT source_file FROM seqd.sequence_versions WHERE version = 1")[0]
        #expect(try source.decode("source_file", as: String?.self) == "onboarding.yaml")

        let shown = try SequenceCatalog.show(connection, name: "onboarding")
        #expect(shown.version == 2 && shown.latestVersion == 2)
        #expect(try SequenceCatalog.show(connection, name: "onboarding", version: 1).definition == (try Self.onboarding()))
        #expect(throws: StoreError.self) { try SequenceCatalog.show(connection, name: "onboarding", version: 3) }
        #expect(throws: StoreError.self) { try SequenceCatalog.show(connection, name: "nope") }
    }

    @Test("concurrent applies of the same new content create exactly one version")
    func concurrentApply() async throws {
        let definition = try Self.onboarding()
        let url = self.url
        let results = try await withThrowingTaskGroup(of: AppliedSequence.self) { group in
            for index in 0..<6 {
                let database = ConfinedConnection(url, label: "apply-\(index)")
                group.addTask { try await database.run { try SequenceCatalog.apply($0, [definition])[0] } }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter(\.created).count == 1)
        #expect(results.allSatisfy { $0.version == 1 })
        #expect(try versions().count == 1)
        let sequences = try connection.query("SELECT count(*) AS n FROM seqd.sequences")[0]
        #expect(try sequences.decode("n", as: Int.self) == 1)
    }

    @Test("list shows the latest version, live and finished counts and the pause")
    func list() throws {
        try SequenceCatalog.apply(connection, [try Self.onboarding()])
        try SequenceCatalog.apply(connection, [try Self.onboarding(subject: "v2")])
        try connection.execute("INSERT INTO seqd.contacts (email) VALUES ('a@example.com'), ('b@example.com')")
        _ = try Enroller.enroll(connection, sequence: "onboarding", selection: .all, actor: "test")
        try connection.execute(
            "UPDATE seqd.enrollments SET status = 'completed' WHERE contact_id = (SELECT id FROM seqd.contacts WHERE email = 'b@example.com')")
        _ = try SequencePause.pause(connection, name: "onboarding")
        let listed = try SequenceCatalog.list(connection)
        #expect(listed.count == 1)
        #expect(listed[0].name == "onboarding" && listed[0].latestVersion == 2)
        #expect(listed[0].live == 1 && listed[0].finished == 1)
        #expect(listed[0].pausedAt != nil)
    }

    @Test("resume moves waits forward by the time held, from when each wait began, and audits nothing")
    func pauseAndResume() throws {
        try SequenceCatalog.apply(connection, [try Self.onboarding()])
        try connection.execute(
            """
            INSERT INTO seqd.contacts (email) VALUES
                ('waiting@example.com'), ('late@example.com'), ('sending@example.com'), ('held@example.com');
            """)
        _ = try Enroller.enroll(connection, sequence: "onboarding", selection: .all, actor: "test")
        // waiting: its wait began an hour ago, before the pause, and runs another hour.
        // late: enrolled five minutes ago, during the pause, due at once back then.
        // sending: awaiting delivery (NULL). held: individually paused with a remaining wait.
        try connection.execute(
            """
            UPDATE seqd.enrollments e SET next_run_at = now() + interval '1 hour', updated_at = now() - interval '1 hour'
            FROM seqd.contacts c WHERE c.id = e.contact_id AND c.email = 'waiting@example.com';
            UPDATE seqd.enrollments e SET next_run_at = now() - interval '5 minutes', updated_at = now() - interval '5 minutes'
            FROM seqd.contacts c WHERE c.id = e.contact_id AND c.email = 'late@example.com';
            UPDATE seqd.enrollments e SET next_run_at = NULL
            FROM seqd.contacts c WHERE c.id = e.contact_id AND c.email = 'sending@example.com';
            UPDATE seqd.enrollments e SET status = 'paused', next_run_at = NULL, remaining_wait = interval '3 hours'
            FROM seqd.contacts c WHERE c.id = e.contact_id AND c.email = 'held@example.com';
            """)
        let eventsBefore = try count("seqd.enrollment_events")

        _ = try SequencePause.pause(connection, name: "onboarding")
        #expect(throws: StoreError.self) { try SequencePause.pause(connection, name: "onboarding") }
        // Pretend the pause began ten minutes ago.
        try connection.execute("UPDATE seqd.sequences SET paused_at = now() - interval '10 minutes'")
        let before = try nextRuns()
        let result = try SequencePause.resume(connection, name: "onboarding")
        let after = try nextRuns()
        let resumedAt = try #require(result.resumedAt)

        #expect(result.shiftedEnrollments == 2)
        let held = resumedAt.timeIntervalSince(result.pausedAt)
        #expect(abs(held - 600) < 60)
        let waiting = try #require(after["waiting@example.com"] ?? nil)
        let waitingBefore = try #require(before["waiting@example.com"] ?? nil)
        #expect(abs(waiting.timeIntervalSince(waitingBefore) - held) < 0.001)
        // Enrolled during the pause: due at resume, not a whole pause later.
        let late = try #require(after["late@example.com"] ?? nil)
        #expect(abs(late.timeIntervalSince(resumedAt)) < 0.001)
        #expect(after["sending@example.com"] == .some(nil))
        #expect(after["held@example.com"] == .some(nil))
        let remaining = try connection.query(
            """
            SELECT extract(epoch FROM e.remaining_wait)::float8 AS s FROM seqd.enrollments e
            JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = 'held@example.com'
            """)[0]
        #expect(try remaining.decode("s", as: Double.self) == 10_800)

        #expect(try count("seqd.enrollment_events") == eventsBefore)
        let paused = try connection.query("SELECT paused_at FROM seqd.sequences")[0]
        #expect(try paused.decode("paused_at", as: Date?.self) == nil)
        #expect(throws: StoreError.self) { try SequencePause.resume(connection, name: "onboarding") }
        let unknown = #expect(throws: StoreError.self) { try SequencePause.pause(connection, name: "nope") }
        #expect(unknown?.kind == .notFound)
    }

    func nextRuns() throws -> [String: Date?] {
        var runs = [String: Date?]()
        for row in try connection.query(
            "SELECT c.email, e.next_run_at FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id"
        ).rows {
            runs[try row.decode("email", as: String.self)] = .some(try row.decode("next_run_at", as: Date?.self))
        }
        return runs
    }

    func count(_ table: String) throws -> Int {
        try connection.query("SELECT count(*) AS n FROM \(table)")[0].decode("n")
    }
}
