import Foundation
import Postgres
import SequenceEngine
import SequenceStore
import Synchronization
import Testing
import TestSupport

/// `seqd sequence migrate` against a real database: the dry run writes nothing, the real run moves
/// by key, honours --map, leaves in-flight and strandable enrollments where they are, audits each
/// move once, and leaves `seqd check` clean.
@Suite("sequence migrate")
struct SequenceMigrationTests {
    let url: String
    let connection: Connection

    /// v1: intro → wait-2 → tips → wait-4 → promo → wait-6
    static let v1 = """
        name: onboarding
        sender: { address: hello@example.com }
        steps:
          - { key: intro, type: email, subject: Hi, body: Hi }
          - { type: wait, duration: 2d }
          - { key: tips, type: email, subject: Tips, body: Tips }
          - { type: wait, duration: 2d }
          - { key: promo, type: email, subject: Promo, body: Promo }
          - { type: wait, duration: 1d }
        """

    /// v2: tips renamed to tips-v2, promo deleted, a closing email appended after wait-6.
    static let v2 = """
        name: onboarding
        sender: { address: hello@example.com }
        steps:
          - { key: intro, type: email, subject: Hi, body: Hi }
          - { type: wait, duration: 2d }
          - { key: tips-v2, type: email, subject: Tips, body: Tips }
          - { type: wait, duration: 2d }
          - { key: wait-6, type: wait, duration: 1d }
          - { key: closing, type: email, subject: Bye, body: Bye }
        """

    init() async throws {
        url = try await TestDatabase.shared.makeMigratedDatabase(prefix: "seqmigrate")
        connection = try Connection(url)
        try SequenceCatalog.apply(connection, [try SequenceDefinition.parse(Self.v1, fileName: "v1.yaml")])
        _ = try ContactStore.upsert(
            connection, ["ada", "bob", "cy", "dee", "eve", "fay"].map { ContactFields(email: "\($0)@example.com") })
        _ = try Enroller.enroll(connection, sequence: "onboarding", selection: .all, actor: "cli:test")
        // Put each enrollment where a real run would have left it (as an operator in psql would).
        try connection.execute(
            """
            INSERT INTO seqd.deliveries (enrollment_id, contact_id, step_key, idempotency_key, status)
            SELECT e.id, e.contact_id, d.step_key, 'k-' || e.id || '-' || d.step_key, d.status::seqd.delivery_status
            FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id
            JOIN (VALUES ('bob', 'intro', 'sent'), ('cy', 'intro', 'pending'), ('dee', 'intro', 'sent'),
                         ('dee', 'tips', 'failed'), ('eve', 'intro', 'sent'), ('eve', 'tips', 'sent'),
                         ('eve', 'promo', 'sent'), ('fay', 'intro', 'sent'), ('fay', 'tips', 'sent'))
                 AS d(who, step_key, status) ON c.email = d.who || '@example.com';
            UPDATE seqd.enrollments e SET current_step_index = s.idx, status = s.status::seqd.enrollment_status,
                   next_run_at = CASE WHEN s.status = 'paused' OR s.unscheduled THEN NULL ELSE now() + interval '1 day' END,
                   remaining_wait = CASE WHEN s.status = 'paused' THEN interval '5 hours' END
            FROM seqd.contacts c, (VALUES ('bob', 2, 'active', false), ('cy', 0, 'active', true),
                                          ('dee', 2, 'failed', true), ('eve', 6, 'active', false),
                                          ('fay', 4, 'paused', false))
                 AS s(who, idx, status, unscheduled)
            WHERE c.id = e.contact_id AND c.email = s.who || '@example.com';
            """)
        try SequenceCatalog.apply(connection, [try SequenceDefinition.parse(Self.v2, fileName: "v2.yaml")])
        // A contact enrolled after the edit is pinned to version 2 already.
        _ = try ContactStore.upsert(connection, [ContactFields(email: "gus@example.com")])
        _ = try Enroller.enroll(connection, sequence: "onboarding", selection: .emails(["gus@example.com"]), actor: "cli:test")
    }

    func migrate(_ map: [String: String] = [:], dryRun: Bool = false, to version: Int = 2) throws -> SequenceMigrationReport {
        try SequenceMigration.migrate(
            connection, sequence: "onboarding", toVersion: version, map: map, dryRun: dryRun, actor: "cli:alice")
    }

    /// Every enrollment's and delivery's full row, to prove nothing changed.
    func snapshot() throws -> String {
        try connection.query(
            """
            SELECT (SELECT string_agg(e::text, ';' ORDER BY e.id) FROM seqd.enrollments e)
                || '|' || (SELECT string_agg(d::text, ';' ORDER BY d.id) FROM seqd.deliveries d)
                || '|' || (SELECT count(*) FROM seqd.enrollment_events) AS s
            """)[0].decode("s")
    }

    /// version, index, status, next_run_at and remaining_wait of the contact's enrollment.
    func state(_ who: String) throws -> (version: Int, index: Int, status: String, due: Date?, remaining: Double?) {
        let row = try connection.query(
            """
            SELECT e.sequence_version, e.current_step_index, e.status::text AS status, e.next_run_at,
                   extract(epoch FROM e.remaining_wait)::float8 AS remaining
            FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = $1
            """, ["\(who)@example.com"])[0]
        return (
            try row.decode("sequence_version"), try row.decode("current_step_index"), try row.decode("status"),
            try row.decode("next_run_at", as: Date?.self), try row.decode("remaining", as: Double?.self)
        )
    }

    @Test("the dry run reports the impact and changes no row and no event")
    func dryRun() throws {
        let before = try snapshot()
        let report = try migrate(dryRun: true)
        #expect(try snapshot() == before)
        #expect(report.dryRun)
        // ada (intro) and eve (end after wait-6 → closing) move; bob (tips) and fay (promo) need a
        // map; cy's intro is pending; dee's tips is gone too.
        #expect(report.moved == 2 && report.needsMap == 3 && report.inFlight == 1 && report.cannotPlace == 0)
        #expect(report.alreadyOnTarget == 1)
        let eve = report.groups.first { $0.fromStep == "(end, after wait-6)" }
        #expect(eve?.outcome == .move && eve?.toStep == "closing" && eve?.toIndex == 5)
        let cy = report.groups.first { $0.outcome == .inFlight }
        #expect(cy?.reason == "delivery of 'intro' is pending" && cy?.count == 1)
        #expect(report.groups.filter { $0.outcome == .needsMap }.map(\.fromStep).sorted() == ["promo", "tips"])
    }

    @Test("the real run moves by key, honours --map, keeps waits, carries the failed delivery, audits each move once")
    func realRun() throws {
        let before = try ["ada", "bob", "cy", "dee", "eve", "fay"].map { try state($0) }
        let dry = try migrate(["tips": "tips-v2", "promo": "end"], dryRun: true)
        let report = try migrate(["tips": "tips-v2", "promo": "end"])
        #expect(report.moved == 5 && report.inFlight == 1 && report.needsMap == 0 && report.cannotPlace == 0)
        #expect(report.groups.map(\.count) == dry.groups.map(\.count) && report.moved == dry.moved)

        let after = try ["ada", "bob", "cy", "dee", "eve", "fay"].map { try state($0) }
        #expect(after.map(\.version) == [2, 2, 1, 2, 2, 2])
        // ada intro → 0; bob tips → tips-v2 (2); cy stays; dee tips → 2; eve end → closing (5);
        // fay promo → end (6).
        #expect(after.map(\.index) == [0, 2, 0, 2, 5, 6])
        #expect(after.map(\.status) == before.map(\.status))
        #expect(after.map(\.due) == before.map(\.due))
        #expect(after.map(\.remaining) == before.map(\.remaining))

        // dee's failed delivery now carries the new key, so retry finds it.
        let keys = try connection.query(
            """
            SELECT string_agg(d.step_key || ':' || d.status, ',' ORDER BY d.step_key) AS k
            FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id WHERE c.email = 'dee@example.com'
            """)[0].decode("k", as: String.self)
        #expect(keys == "intro:sent,tips-v2:failed")

        let events = try connection.query(
            """
            SELECT c.email, v.actor, v.from_step, v.to_step, v.detail ->> 'from_version' AS from_version,
                   v.detail ->> 'to_version' AS to_version, v.detail ->> 'from_step' AS from_key,
                   v.detail ->> 'to_step' AS to_key
            FROM seqd.enrollment_events v JOIN seqd.enrollments e ON e.id = v.enrollment_id
            JOIN seqd.contacts c ON c.id = e.contact_id
            WHERE v.event = 'migrate' ORDER BY c.email
            """)
        #expect(events.count == 5)
        #expect(try events.rows.map { try $0.decode("email", as: String.self) }
            == ["ada@example.com", "bob@example.com", "dee@example.com", "eve@example.com", "fay@example.com"])
        for row in events.rows {
            #expect(try row.decode("actor", as: String.self) == "cli:alice")
            #expect(try row.decode("from_version", as: String.self) == "1" && row.decode("to_version", as: String.self) == "2")
        }
        #expect(try events[1].decode("from_key", as: String.self) == "tips" && events[1].decode("to_key", as: String.self) == "tips-v2")
        #expect(try events[3].decode("from_key", as: String.self) == "(end, after wait-6)")
        #expect(try events[3].decode("to_key", as: String.self) == "closing")

        let violations = try InvariantCheck.run(connection, leaseGraceSeconds: 60).flatMap(\.violations)
        #expect(violations.isEmpty, "\(violations)")

        // Again: nothing left to move but cy, whose delivery is still pending; no new events.
        let again = try migrate(["tips": "tips-v2", "promo": "end"])
        #expect(again.moved == 0 && again.inFlight == 1 && again.alreadyOnTarget == 6)
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.enrollment_events WHERE event = 'migrate'")[0]
            .decode("n", as: Int.self) == 5)

        // Retry resets the carried delivery under its new key.
        let outcome = try OperatorActions(actor: "cli:test", source: "cli", installationID: "test").apply(
            .retry, to: .contacts(["dee@example.com"], sequence: "onboarding"), using: connection)
        #expect(outcome.first?.results.first?.to == .active)
        #expect(try connection.query(
            "SELECT status::text AS s FROM seqd.deliveries WHERE step_key = 'tips-v2'")[0].decode("s", as: String.self) == "pending")
        #expect(try InvariantCheck.run(connection, leaseGraceSeconds: 60).flatMap(\.violations).isEmpty)
    }

    @Test("in chunks of two (each its own transaction) the real run reports and moves exactly what one chunk would")
    func chunked() throws {
        let map = ["tips": "tips-v2", "promo": "end"]
        let dry = try migrate(map, dryRun: true)
        let steps = Mutex<[(Int, Int)]>([])
        let report = try SequenceMigration.migrate(
            connection, sequence: "onboarding", toVersion: 2, map: map, dryRun: false, actor: "cli:alice", chunkSize: 2,
            progress: { done, total in steps.withLock { $0.append((done, total)) } })
        #expect(steps.withLock { $0.map(\.0) } == [2, 4, 6] && steps.withLock { $0.allSatisfy { $0.1 == 6 } })
        #expect(report.groups == dry.groups && report.moved == dry.moved)
        #expect(report.moved == 5 && report.inFlight == 1 && report.alreadyOnTarget == 1)
        #expect(try ["ada", "bob", "cy", "dee", "eve", "fay"].map { try state($0).index } == [0, 2, 0, 2, 5, 6])
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.enrollment_events WHERE event = 'migrate'")[0]
            .decode("n", as: Int.self) == 5)
        #expect(try InvariantCheck.run(connection, leaseGraceSeconds: 60).flatMap(\.violations).isEmpty)
    }

    @Test("a run interrupted after its first chunk leaves that chunk moved, and running it again moves the rest")
    func interruptedAndRerun() throws {
        let map = ["tips": "tips-v2", "promo": "end"]
        struct Interrupted: Error {}
        // Progress is reported after each commit: throwing there interrupts the run between chunks.
        #expect(throws: Interrupted.self) {
            _ = try SequenceMigration.migrate(
                connection, sequence: "onboarding", toVersion: 2, map: map, dryRun: false, actor: "cli:alice",
                chunkSize: 2, progress: { _, _ in throw Interrupted() })
        }
        let migrateEvents = {
            try connection.query("SELECT count(*) AS n FROM seqd.enrollment_events WHERE event = 'migrate'")[0]
                .decode("n", as: Int.self)
        }
        #expect(try migrateEvents() == 2)  // ada and bob, the first chunk
        let rerun = try migrate(map)
        #expect(rerun.moved == 3 && rerun.inFlight == 1 && rerun.alreadyOnTarget == 3)
        #expect(try migrateEvents() == 5)
        #expect(try ["ada", "bob", "cy", "dee", "eve", "fay"].map { try state($0).index } == [0, 2, 0, 2, 5, 6])
    }

    @Test("the real run waits for a row the daemon holds, then sees the delivery it committed and skips it")
    func serialisesWithTheDaemon() async throws {
        // Plays the daemon: ada's row is claimed (locked) while her first email is queued.
        let daemon = try Connection(url)
        try daemon.execute("BEGIN")
        let ada = try daemon.query(
            """
            SELECT e.id FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id
            WHERE c.email = 'ada@example.com' FOR UPDATE OF e
            """)[0].decode("id", as: Int64.self)
        let migrating = ConfinedConnection(url, options: SessionOptions(applicationName: "migrate-under-test"))
        let task = Task {
            try await migrating.run {
                try SequenceMigration.migrate($0, sequence: "onboarding", toVersion: 2, dryRun: false, actor: "cli:alice")
            }
        }
        try await waitUntil("migrate waiting for ada's row lock") {
            try connection.query(
                """
                SELECT count(*) AS n FROM pg_stat_activity
                WHERE application_name = 'migrate-under-test' AND wait_event_type = 'Lock'
                """)[0].decode("n", as: Int.self) == 1
        }
        try daemon.query(
            """
            INSERT INTO seqd.deliveries (enrollment_id, contact_id, step_key, idempotency_key)
            SELECT id, contact_id, 'intro', 'k-ada-intro' FROM seqd.enrollments WHERE id = $1
            """, [ada])
        try daemon.query("UPDATE seqd.enrollments SET next_run_at = NULL WHERE id = $1", [ada])
        try daemon.execute("COMMIT")
        let report = try await task.value
        #expect(report.groups.first { $0.fromStep == "intro" }?.outcome == .inFlight, "\(report.groups)")
        #expect(try state("ada").version == 1)
        #expect(report.moved == 1)  // eve only
    }

    @Test("a step key ahead that already has a delivery cannot be placed, and stays on its version")
    func wouldRepeat() throws {
        // Sending bob (at tips, intro sent) back to intro would wait forever for a send that exists.
        let report = try migrate(["tips": "intro", "promo": "end"])
        let bob = report.groups.first { $0.fromStep == "tips" && $0.outcome == .cannotPlace }
        #expect(bob?.reason?.contains("'intro' again") == true)
        // dee (failed at tips) is in the same group.
        #expect(bob?.count == 2)
        #expect(try state("bob").version == 1 && state("dee").version == 1)
    }

    @Test("enrollments on every older version move to the target; the target may be older (a rollback)")
    func severalVersions() throws {
        _ = try migrate(["tips": "tips-v2", "promo": "end"])
        let v3 = Self.v2.replacingOccurrences(of: "subject: Bye", with: "subject: Goodbye")
        try SequenceCatalog.apply(connection, [try SequenceDefinition.parse(v3, fileName: "v3.yaml")])
        // cy's intro went out and it now waits before tips, still on version 1.
        try connection.execute(
            """
            UPDATE seqd.deliveries SET status = 'sent' WHERE status = 'pending';
            UPDATE seqd.enrollments SET current_step_index = 2, next_run_at = now() + interval '2 days'
            WHERE sequence_version = 1;
            """)
        let report = try migrate(["tips": "tips-v2"], to: 3)
        // cy from version 1 and the six on version 2.
        #expect(report.moved == 7 && report.alreadyOnTarget == 0 && report.leftInPlace == 0, "\(report)")
        #expect(Set(report.groups.map(\.fromVersion)) == [1, 2])
        #expect(try connection.query(
            "SELECT count(*) AS n FROM seqd.enrollments WHERE sequence_version = 3")[0].decode("n", as: Int.self) == 7)
        // Back to 2: the same keys exist there.
        #expect(try migrate(to: 2).moved == 7)
    }

    @Test("an unknown sequence or version is refused; a map naming unknown keys is the caller's error")
    func badInput() throws {
        let unknown = #expect(throws: StoreError.self) {
            try SequenceMigration.migrate(connection, sequence: "nope", toVersion: 1, dryRun: true, actor: "cli:test")
        }
        #expect(unknown?.kind == .notFound && unknown?.description == "no sequence named 'nope'")
        let version = #expect(throws: StoreError.self) { try migrate(to: 9) }
        #expect(version?.kind == .notFound && version?.description.contains("has no version 9 (versions 1–2)") == true)
        #expect(throws: VersionMigrationPlan.MapError.self) { try migrate(["tipz": "tips-v2"]) }
        #expect(throws: VersionMigrationPlan.MapError.self) { try migrate(["tips": "tipz"], dryRun: true) }
    }
}
