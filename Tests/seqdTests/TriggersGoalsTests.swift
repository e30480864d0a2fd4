import Foundation
import Postgres
import Testing
import TestSupport

/// Issue 19 end to end: events that enroll (`seqd event send`), event properties in the email,
/// and goals (`exit_when`) that end an enrollment `converted` before the next email, whether the
/// contact changes through seqd, behind its back in psql, or sends an event.
@Suite("triggers and goals end to end")
struct TriggersGoalsTests {
    static let sequence = """
        name: trial
        sender: { address: team@example.com }
        trigger: { event: trial_started, if: { property: plan, in: [pro, team] } }
        exit_when:
          - { event: meeting_booked }
          - { attribute: plan, equals: paid }
        steps:
          - { key: welcome, type: email, subject: "Your {{event.plan}} trial", body: "Hi {{first_name|there}}, enjoy {{event.plan}}." }
          - { type: wait, duration: 1h }
          - { key: nudge, type: email, subject: "Still there?", body: "Book a call?" }
        """

    func prepare(_ prefix: String) async throws -> (Scenario, Connection) {
        let scenario = try await Scenario.prepare(prefix: prefix, sequence: Self.sequence, name: "trial", contacts: [])
        return (scenario, try scenario.connect())
    }

    func send(_ scenario: Scenario, _ arguments: String...) async throws -> SeqdProcess.Result {
        try await scenario.seqd.run(["event", "send"] + arguments)
    }

    func enrollment(_ connection: Connection, _ email: String) throws -> (id: Int64, status: String, step: Int) {
        let row = try connection.query(
            """
            SELECT e.id, e.status::text AS status, e.current_step_index AS step
            FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = $1
            """, [email])[0]
        return (try row.decode("id"), try row.decode("status"), try row.decode("step"))
    }

    func count(_ connection: Connection, _ sql: String) throws -> Int {
        try connection.query(sql)[0].decode("n")
    }

    @Test("the same event sent twice enrolls once and says so; the trigger's condition is honoured")
    func onceperKey() async throws {
        let (scenario, connection) = try await prepare("trig_once")
        let first = try await send(scenario, "--contact", "ada@example.com", "--name", "trial_started", "--key", "signup-1", "--property", "plan=pro")
        #expect(first.status == 0, "\(first)")
        #expect(first.stdout.contains("(new contact)"), "\(first)")
        #expect(first.stdout.contains("enrolled in trial v1: enrollment"), "\(first)")
        let again = try await send(scenario, "--contact", "ada@example.com", "--name", "trial_started", "--key", "signup-1", "--property", "plan=pro", "--json")
        #expect(again.status == 0, "\(again)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])
        #expect(json["duplicate"] as? Bool == true)
        #expect((json["enrolled"] as? [Any])?.isEmpty == true)
        let human = try await send(scenario, "--contact", "ada@example.com", "--name", "trial_started", "--key", "signup-1")
        #expect(human.stdout.contains("was already recorded"), "\(human)")
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.enrollments") == 1)
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.events") == 1)
        let shown = try await scenario.seqd.run("sequence", "show", "trial")
        #expect(shown.stdout.contains("trigger: event trial_started if event.plan in [pro, team]"), "\(shown)")
        #expect(shown.stdout.contains("exit when (converted): event meeting_booked; plan = paid"), "\(shown)")
        // A new key for the same contact follows the enroll rules: already live.
        let live = try await send(scenario, "--contact", "ada@example.com", "--name", "trial_started", "--key", "signup-2", "--property", "plan=pro")
        #expect(live.stdout.contains("not enrolled in trial: already live"), "\(live)")
        // The trigger's condition: a free plan does not start the trial sequence.
        let free = try await send(scenario, "--contact", "bob@example.com", "--name", "trial_started", "--key", "signup-3", "--property", "plan=free")
        #expect(free.stdout.contains("not enrolled in trial: condition not met"), "\(free)")
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.enrollments") == 1)
        // Hostile input is refused with its field, and nothing is written.
        let bad = try await send(scenario, "--contact", "cy@example.com", "--name", "trial_started", "--key", "k", "--property", "a-b=1")
        #expect(bad.status == 65, "\(bad)")
        #expect(bad.stderr.contains("is not a property name"), "\(bad)")
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.contacts WHERE email = 'cy@example.com'") == 0)
    }

    @Test("an event-triggered enrollment renders the event's property in its email")
    func rendersEventProperty() async throws {
        let (scenario, connection) = try await prepare("trig_render")
        #expect(try await scenario.seqd.run("contact", "add", "--email", "ada@example.com", "--first-name", "Ada").status == 0)
        let sent = try await send(scenario, "--contact", "ada@example.com", "--name", "trial_started", "--key", "signup-1", "--property", "plan=team")
        #expect(sent.status == 0, "\(sent)")
        // The preview of the live enrollment renders with its event, as the daemon will.
        let preview = try await scenario.seqd.run("sequence", "preview", "trial", "--contact", "ada@example.com", "--step", "welcome")
        #expect(preview.status == 0 && preview.stdout.contains("Subject: Your team trial"), "\(preview)")
        try await scenario.runOnce()
        let row = try connection.query(
            "SELECT message ->> 'subject' AS subject, message ->> 'text' AS text, status::text AS status FROM seqd.deliveries")[0]
        #expect(try row.decode("subject", as: String.self) == "Your team trial")
        #expect(try row.decode("text", as: String.self) == "Hi Ada, enjoy team.")
        #expect(try row.decode("status", as: String.self) == "sent")
        // An operator's enrollment has no event: the contact lacks event.plan and is skipped, not mailed with a hole.
        #expect(try await scenario.seqd.run("contact", "add", "--email", "bob@example.com").status == 0)
        let enrolled = try await scenario.seqd.run("enroll", "--sequence", "trial", "--contact", "bob@example.com")
        #expect(enrolled.stdout.contains("missing template fields  1"), "\(enrolled)")
    }

    @Test("a contact updated to meet the goal mid-wait ends converted before the next email; guard and check know the status")
    func contactUpdateConverts() async throws {
        let (scenario, connection) = try await prepare("goal_update")
        #expect(try await send(scenario, "--contact", "ada@example.com", "--name", "trial_started", "--key", "s1", "--property", "plan=pro").status == 0)
        try await scenario.runOnce()
        var ada = try enrollment(connection, "ada@example.com")
        #expect(ada.status == "active" && ada.step == 2, "waiting before the nudge: \(ada)")

        // Event webhooks on (as `seqd run` would write the row): the conversion is posted like any outcome.
        try connection.execute(
            "INSERT INTO seqd.settings (name, value) VALUES ('event_webhook.types', 'converted') ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value")
        let updated = try await scenario.seqd.run("contact", "add", "--email", "ada@example.com", "--attr", "plan=paid")
        #expect(updated.status == 0, "\(updated)")
        #expect(updated.stdout.contains("enrollment \(ada.id) (trial) converted: exit_when[1]"), "\(updated)")
        ada = try enrollment(connection, "ada@example.com")
        #expect(ada.status == "converted" && ada.step == 2)
        let audit = try connection.query(
            "SELECT event, from_status::text AS f, reason FROM seqd.enrollment_events WHERE enrollment_id = $1 ORDER BY id DESC LIMIT 1", [ada.id])[0]
        #expect(try audit.decode("event", as: String.self) == "goal_met")
        #expect(try audit.decode("f", as: String.self) == "active")
        #expect(try audit.decode("reason", as: String?.self) == #"exit_when[1] {"attribute":"plan","equals":"paid"}"#)
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.event_webhook_outbox WHERE type = 'converted' AND enrollment_id = \(ada.id)") == 1)

        // Even when the wait would be over, the daemon never sends the nudge.
        try await scenario.runOnce()
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.deliveries") == 1)
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.step_funnel WHERE step_key = 'nudge' AND converted = 1") == 1)
        #expect(try count(connection, "SELECT sum(converted)::int AS n FROM seqd.step_funnel") == 1)

        // The database guard treats converted as terminal: no way out, no change of step.
        for statement in [
            "UPDATE seqd.enrollments SET status = 'active' WHERE id = \(ada.id)",
            "UPDATE seqd.enrollments SET current_step_index = 0 WHERE id = \(ada.id)",
        ] {
            let error = #expect(throws: PostgresError.self, "\(statement)") { try connection.execute(statement) }
            #expect(error?.sqlState == "SQ001", "\(statement): \(String(describing: error))")
        }
        let check = try await scenario.seqd.run("check")
        #expect(check.status == 0, "\(check)")
        let status = try await scenario.seqd.run("status", "--sequence", "trial")
        #expect(status.stdout.contains("converted"), "\(status)")
    }

    @Test("a goal met behind seqd's back (psql) is caught by the advance before the next step")
    func advanceChecksGoals() async throws {
        let (scenario, connection) = try await prepare("goal_advance")
        #expect(try await send(scenario, "--contact", "ada@example.com", "--name", "trial_started", "--key", "s1", "--property", "plan=pro").status == 0)
        try await scenario.runOnce()
        try connection.execute(
            """
            UPDATE seqd.contacts SET attributes = attributes || '{"plan": "paid"}' WHERE email = 'ada@example.com';
            UPDATE seqd.enrollments SET next_run_at = now() - interval '1 second';
            """)
        try await scenario.runOnce()
        let ada = try enrollment(connection, "ada@example.com")
        #expect(ada.status == "converted", "\(ada)")
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.deliveries") == 1, "the nudge was never queued")
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.enrollment_events WHERE event = 'goal_met' AND actor LIKE 'daemon:%'") == 1)
    }

    @Test("an event that meets exit_when converts at once and cancels what was queued")
    func eventConverts() async throws {
        let (scenario, connection) = try await prepare("goal_event")
        #expect(try await send(scenario, "--contact", "ada@example.com", "--name", "trial_started", "--key", "s1", "--property", "plan=pro").status == 0)
        // The welcome email is queued (pending) but not sent yet: the event must cancel it.
        let ada0 = try enrollment(connection, "ada@example.com")
        let booked = try await send(scenario, "--contact", "ada@example.com", "--name", "meeting_booked", "--key", "cal-1")
        #expect(booked.status == 0, "\(booked)")
        #expect(booked.stdout.contains(#"enrollment \#(ada0.id) (trial) converted: exit_when[0] {"event":"meeting_booked"}"#), "\(booked)")
        #expect(try enrollment(connection, "ada@example.com").status == "converted")
        try await scenario.runOnce()
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'") == 0)
        // A retry of the same event changes nothing more.
        let again = try await send(scenario, "--contact", "ada@example.com", "--name", "meeting_booked", "--key", "cal-1")
        #expect(again.stdout.contains("was already recorded"), "\(again)")
        #expect(try count(connection, "SELECT count(*) AS n FROM seqd.enrollment_events WHERE event = 'goal_met'") == 1)
        // The trigger event itself never counts as a goal event of the enrollment it started.
        #expect(try await send(scenario, "--contact", "bob@example.com", "--name", "trial_started", "--key", "s2", "--property", "plan=pro").status == 0)
        #expect(try enrollment(connection, "bob@example.com").status == "active")
        // Events are pruned with the rest (as the owner), and stay append-only for the runtime role.
        let denied = #expect(throws: PostgresError.self) { try Connection(scenario.runtimeURL).execute("DELETE FROM seqd.events") }
        #expect(denied?.sqlState == "42501")
        let pruned = try await scenario.seqd.run("prune", "--older-than", "0", "--database-url", scenario.databaseURL)
        #expect(pruned.status == 0, "\(pruned)")
        #expect(pruned.stdout.contains("3 contact events"), "\(pruned)")
    }
}
