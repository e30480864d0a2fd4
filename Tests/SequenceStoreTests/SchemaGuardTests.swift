import Foundation
import Postgres
import SequenceEngine
import Testing
import TestSupport

/// The database's own guards, exercised the way an operator would meet them in psql: plain SQL.
@Suite("schema guards")
struct SchemaGuardTests {
    let connection: Connection

    init() async throws {
        connection = try Connection(try await TestDatabase.shared.makeMigratedDatabase(prefix: "guards"))
        try connection.execute(
            """
            INSERT INTO seqd.contacts (email) VALUES ('ada@example.com'), ('bob@example.com');
            INSERT INTO seqd.sequences (name) VALUES ('onboarding');
            INSERT INTO seqd.sequence_versions (sequence_id, version, definition, content_hash)
                SELECT id, 1, '{"steps": []}', 'h1' FROM seqd.sequences;
            """)
    }

    @Test("the attempt outcomes the database accepts are exactly AttemptOutcome's cases")
    func attemptOutcomesMatch() throws {
        let definition = try connection.query(
            """
            SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
            WHERE conname = 'delivery_attempts_outcome_check' AND conrelid = 'seqd.delivery_attempts'::regclass
            """)[0].decode("def", as: String.self)
        let quoted = Set(definition.split(separator: "'").enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) })
        #expect(quoted == Set(AttemptOutcome.allCases.map(\.rawValue)), "\(definition)")
    }

    /// Inserts an enrollment for `email` in `status` and returns its id.
    func enroll(_ email: String, status: String = "active") throws -> Int {
        try connection.query(
            """
            INSERT INTO seqd.enrollments (contact_id, sequence_id, sequence_version, status, next_run_at)
            SELECT c.id, s.id, 1, $2::seqd.enrollment_status, now()
            FROM seqd.contacts c, seqd.sequences s WHERE c.email = $1
            RETURNING id
            """, [email, status])[0].decode("id", as: Int.self)
    }

    func events(_ enrollment: Int) throws -> [(event: String, from: String?, to: String, actor: String)] {
        try connection.query(
            "SELECT event, from_status, to_status, actor FROM seqd.enrollment_events WHERE enrollment_id = $1 ORDER BY id",
            [enrollment]
        ).rows.map {
            (try $0.decode("event"), try $0.decode("from_status", as: String?.self), try $0.decode("to_status"),
             try $0.decode("actor"))
        }
    }

    @Test("reopening a completed enrollment by hand fails with a message naming both statuses")
    func terminalIsTerminal() throws {
        let id = try enroll("ada@example.com", status: "completed")
        let error = #expect(throws: PostgresError.self) {
            try connection.execute("UPDATE seqd.enrollments SET status = 'active' WHERE status = 'completed'")
        }
        #expect(error?.sqlState == "SQ001")
        #expect(error?.message == "invalid enrollment transition: enrollment \(id) cannot go from completed to active")
        #expect(error?.hint?.contains("seqd.enrollment_transitions") == true)
        let status = try connection.query("SELECT status FROM seqd.enrollments WHERE id = $1", [id])[0]
        #expect(try status.decode("status", as: String.self) == "completed")
    }

    @Test("a terminal enrollment cannot change step either")
    func terminalStepIsFrozen() throws {
        let id = try enroll("ada@example.com", status: "stopped")
        let error = #expect(throws: PostgresError.self) {
            try connection.query("UPDATE seqd.enrollments SET current_step_index = 2 WHERE id = $1", [id])
        }
        #expect(error?.sqlState == "SQ001")
        #expect(error?.message.contains("is stopped") == true)
    }

    @Test("a valid manual change writes exactly one audit row whose actor is the database user")
    func manualChangeIsAudited() throws {
        let id = try enroll("ada@example.com")
        let user = try connection.query("SELECT session_user AS u")[0].decode("u", as: String.self)
        try connection.query("UPDATE seqd.enrollments SET status = 'paused' WHERE id = $1", [id])
        let history = try events(id)
        #expect(history.count == 2)
        #expect(history[0].event == "enroll" && history[0].from == nil && history[0].to == "active")
        #expect(history[1].event == "manual_update")
        #expect(history[1].from == "active" && history[1].to == "paused")
        #expect(history[1].actor == user)
    }

    @Test("the writer's event, actor and reason are recorded; unrelated updates write no event")
    func writerNamesTheEvent() throws {
        let id = try enroll("ada@example.com")
        try connection.transaction { connection in
            try connection.query(
                "SELECT set_config('seqd.event', 'pause', true), set_config('seqd.actor', 'cli:test', true), set_config('seqd.reason', 'holiday', true)"
            )
            try connection.query("UPDATE seqd.enrollments SET status = 'paused' WHERE id = $1", [id])
        }
        try connection.query("UPDATE seqd.enrollments SET last_error = 'noise', updated_at = now() WHERE id = $1", [id])
        let row = try connection.query(
            "SELECT event, actor, reason FROM seqd.enrollment_events WHERE enrollment_id = $1 ORDER BY id DESC LIMIT 1",
            [id])[0]
        #expect(try row.decode("event", as: String.self) == "pause")
        #expect(try row.decode("actor", as: String.self) == "cli:test")
        #expect(try row.decode("reason", as: String.self) == "holiday")
        #expect(try events(id).count == 2)
        // After the transaction, the settings read as empty: a later manual change is attributed again.
        try connection.query("UPDATE seqd.enrollments SET status = 'active' WHERE id = $1", [id])
        #expect(try events(id).last?.event == "manual_update")
    }

    @Test("a set-based update writes one event per changed row in one statement")
    func batchUpdateAudit() throws {
        let ada = try enroll("ada@example.com")
        let bob = try enroll("bob@example.com")
        try connection.query(
            "UPDATE seqd.enrollments SET current_step_index = current_step_index + 1 WHERE id = ANY($1::bigint[])",
            [[ada, bob]])
        #expect(try events(ada).count == 2)
        #expect(try events(bob).count == 2)
        let steps = try connection.query(
            "SELECT from_step, to_step FROM seqd.enrollment_events WHERE enrollment_id = $1 ORDER BY id DESC LIMIT 1", [ada])[0]
        #expect(try steps.decode("from_step", as: Int.self) == 0)
        #expect(try steps.decode("to_step", as: Int.self) == 1)
    }

    @Test("one live enrollment per contact and sequence")
    func oneLiveEnrollment() throws {
        _ = try enroll("ada@example.com")
        let error = #expect(throws: PostgresError.self) { try enroll("ada@example.com") }
        #expect(error?.constraint == "enrollments_one_live")
        // A finished enrollment does not block a new one (re-enrollment is the CLI's decision).
        try connection.execute("UPDATE seqd.enrollments SET status = 'completed'")
        _ = try enroll("ada@example.com")
    }

    @Test("at most one delivery per enrollment and step key")
    func oneDeliveryPerStep() throws {
        let id = try enroll("ada@example.com")
        let insert = """
            INSERT INTO seqd.deliveries (enrollment_id, contact_id, step_key, idempotency_key)
            SELECT id, contact_id, 'intro', $2 FROM seqd.enrollments WHERE id = $1
            """
        try connection.query(insert, [id, "k1"])
        let error = #expect(throws: PostgresError.self) { try connection.query(insert, [id, "k2"]) }
        #expect(error?.constraint == "deliveries_one_per_step")
    }

    @Test("sequence versions are immutable")
    func versionsImmutable() throws {
        let error = #expect(throws: PostgresError.self) {
            try connection.execute("UPDATE seqd.sequence_versions SET definition = '{}'")
        }
        #expect(error?.message.contains("immutable") == true)
    }

    @Test("contacts are unique by address whatever the case")
    func emailUniqueCaseInsensitively() throws {
        let error = #expect(throws: PostgresError.self) {
            try connection.query("INSERT INTO seqd.contacts (email) VALUES ($1)", ["ADA@Example.com"])
        }
        #expect(error?.constraint == "contacts_email_key")
    }
}

@Suite("state machine tables")
struct TransitionTableTests {
    @Test("the database's transition table equals the Swift state machine's, pair for pair")
    func enrollmentTransitionsMatch() async throws {
        let connection = try Connection(try await TestDatabase.shared.makeMigratedDatabase(prefix: "transitions"))
        let stored = try connection.query("SELECT from_status::text AS f, to_status::text AS t FROM seqd.enrollment_transitions")
            .rows.map { "\(try $0.decode("f", as: String.self))->\(try $0.decode("t", as: String.self))" }
        let swift = EnrollmentMachine.allowedTransitions.map { "\($0.from.rawValue)->\($0.to.rawValue)" }
        #expect(Set(stored) == Set(swift))
        #expect(stored.count == swift.count)
    }

    @Test("the database enums hold exactly the statuses of the Swift machines")
    func enumsMatch() async throws {
        let connection = try Connection(try await TestDatabase.shared.makeMigratedDatabase(prefix: "enums"))
        func labels(_ type: String) throws -> [String] {
            try connection.query("SELECT unnest(enum_range(NULL::\(type)))::text AS label").rows.map { try $0.decode("label") }
        }
        #expect(try labels("seqd.enrollment_status") == EnrollmentStatus.allCases.map(\.rawValue))
        #expect(try labels("seqd.delivery_status") == DeliveryStatus.allCases.map(\.rawValue))
    }
}
