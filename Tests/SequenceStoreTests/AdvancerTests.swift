import Foundation
import Postgres
import SequenceEngine
import SequenceStore
import Testing
import TestSupport

/// The advance transaction against a real database, one batch at a time.
@Suite("advancing due enrollments")
struct AdvancerTests {
    let connection: Connection
    let advancer: Advancer

    init() async throws {
        connection = try Connection(try await TestDatabase.shared.makeMigratedDatabase(prefix: "advancer"))
        let definition = try SequenceDefinition.parse(
            """
            name: two
            sender: { address: team@example.com }
            steps:
              - { key: hello, type: email, subject: "Hi {{first_name}}", body: "Hello" }
              - { type: wait, duration: 2d }
              - { key: bye, type: email, subject: "Bye", body: "Bye" }
            """, fileName: "two.yaml")
        try SequenceCatalog.apply(connection, [definition])
        _ = try ContactStore.upsert(
            connection, ["ada", "bob", "cy"].map { ContactFields(email: "\($0)@example.com", firstName: $0.capitalized) })
        _ = try Enroller.enroll(connection, sequence: "two", selection: .all, actor: "test")
        advancer = Advancer(actor: "test", installationID: "t1")
    }

    func enrollment(_ email: String) throws -> Row {
        try connection.query(
            """
            SELECT e.id, e.status::text AS status, e.current_step_index, e.last_error,
                   (SELECT count(*) FROM seqd.deliveries d WHERE d.enrollment_id = e.id) AS deliveries
            FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = $1
            """, [email])[0]
    }

    @Test("a due email step writes its delivery row and leaves the enrollment awaiting delivery")
    func emailStep() throws {
        let summary = try advancer.advanceBatch(connection, limit: 10)
        #expect(summary.claimed == 3)
        #expect(summary.deliveriesCreated == 3)
        let ada = try enrollment("ada@example.com")
        #expect(try ada.decode("status", as: String.self) == "active")
        #expect(try ada.decode("deliveries", as: Int.self) == 1)
        let waiting = try connection.query(
            "SELECT count(*) AS n FROM seqd.enrollments WHERE next_run_at IS NULL AND status = 'active'")[0]
        #expect(try waiting.decode("n", as: Int.self) == 3)
        // Nothing is due any more: a second batch claims nothing.
        #expect(try advancer.advanceBatch(connection, limit: 10).claimed == 0)
        let message = try connection.query(
            "SELECT message ->> 'subject' AS subject, idempotency_key FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id WHERE c.email = 'ada@example.com'")[0]
        #expect(try message.decode("subject", as: String.self) == "Hi Ada")
        #expect(try message.decode("idempotency_key", as: String.self).hasSuffix("-hello"))
    }

    @Test("with a direct lease, a batch writes up to its room of emails leased to the caller's senders; they settle like claimed ones")
    func directLease() throws {
        let room = TestRoom(2)
        let lease = DirectLease(owner: "test:senders", seconds: 30, room: room)
        let summary = try advancer.advanceBatch(connection, limit: 10, lease: lease)
        #expect(summary.deliveriesCreated == 3)
        #expect(summary.leased.count == 2)
        // Room is asked for once the batch knows its emails, and what stays held is what was leased.
        #expect(room.asked == [3] && room.held == 2)
        // A batch that claims nothing asks for no room: it cannot starve one that claims the work.
        #expect(try advancer.advanceBatch(connection, limit: 10, lease: lease).claimed == 0)
        #expect(room.asked == [3])
        let rows = try connection.query(
            """
            SELECT d.id, d.status::text AS status, d.lease_owner, d.fencing_token,
                   extract(epoch FROM d.lease_expires_at - d.updated_at)::int AS lease_seconds
            FROM seqd.deliveries d ORDER BY d.id
            """).rows
        let leased = Dictionary(uniqueKeysWithValues: summary.leased.map { ($0.id, $0) })
        for row in rows {
            let id = try row.decode("id", as: Int64.self)
            if let delivery = leased[id] {
                // Exactly what a sender's claim leaves: sending, its owner, token and expiry.
                #expect(try row.decode("status", as: String.self) == "sending")
                #expect(try row.decode("lease_owner", as: String?.self) == "test:senders")
                #expect(try row.decode("fencing_token", as: Int64?.self) == delivery.token)
                #expect(try row.decode("lease_seconds", as: Int?.self) == 30)
            } else {
                #expect(try row.decode("status", as: String.self) == "pending")
                #expect(try row.decode("lease_owner", as: String?.self) == nil)
            }
        }
        // The leased deliveries carry what sending needs, read from the advance, not the row.
        let first = try #require(summary.leased.first)
        #expect(first.toAddress.hasSuffix("@example.com"))
        #expect(first.message.subject == "Hi \(first.toName ?? "?")")
        #expect(first.kind == .email)
        #expect(first.deliveryKey.hasSuffix("-hello"))

        // A sender's claim sees only the one left pending; the leased ones settle as claimed ones do.
        let outbox = DeliveryOutbox(worker: "test:send", installationID: "t1", policy: DeliveryPolicy(maxAttempts: 3))
        #expect(try outbox.claim(connection, limit: 10, leaseSeconds: 30).count == 1)
        let results = summary.leased.map {
            SendResult(
                delivery: $0, event: .succeeded(providerID: nil, token: $0.token), attemptOutcome: .sent, reply: nil,
                messageID: "<\($0.deliveryKey)@test>")
        }
        #expect(try outbox.settle(connection, results: results).sent == 2)
        let attempts = try connection.query(
            "SELECT count(*) AS n FROM seqd.delivery_attempts WHERE outcome = 'sent' AND started_at = $1", [first.claimedAt])[0]
        #expect(try attempts.decode("n", as: Int.self) == 2)
    }

    @Test("nothing is leased while sending is paused, and a lease that expires unsent is rescued as unknown")
    func directLeasePausedAndLost() throws {
        _ = try SendSwitch.set(paused: true, connection)
        let lease = DirectLease(owner: "test:senders", seconds: 30, room: TestRoom(10))
        let held = try advancer.advanceBatch(connection, limit: 1, lease: lease)
        #expect(held.deliveriesCreated == 1 && held.leased.isEmpty)
        _ = try SendSwitch.set(paused: false, connection)
        let lost = try advancer.advanceBatch(connection, limit: 10, lease: lease).leased
        #expect(lost.count == 2)
        // The process that held them died before sending: their leases run out like a claim's.
        _ = try connection.query(
            "UPDATE seqd.deliveries SET lease_expires_at = now() - interval '1 second' WHERE status = 'sending'")
        let rescuer = DeliveryOutbox(worker: "test:rescuer", installationID: "t1", policy: DeliveryPolicy(maxAttempts: 3))
        #expect(try rescuer.rescueExpiredLeases(connection, jitter: { 0 }) == 2)
        let attempts = try connection.query(
            "SELECT worker, fencing_token FROM seqd.delivery_attempts WHERE outcome = 'unknown' ORDER BY fencing_token").rows
        #expect(try attempts.map { try $0.decode("worker", as: String.self) } == ["test:senders", "test:senders"])
        #expect(try attempts.map { try $0.decode("fencing_token", as: Int64.self) } == lost.map(\.token).sorted())
    }

    @Test("what changes while a leased delivery is queued holds it back: a pause of its sequence, a suppression added by hand")
    func stillSendable() throws {
        let leased = try advancer.advanceBatch(
            connection, limit: 10, lease: DirectLease(owner: "test:senders", seconds: 30, room: TestRoom(10))).leased
        #expect(leased.count == 3)
        let outbox = DeliveryOutbox(worker: "test:send", installationID: "t1", policy: DeliveryPolicy(maxAttempts: 3))
        #expect(try outbox.stillSendable(connection, leased) == Set(leased.map(\.id)))
        _ = try SequencePause.pause(connection, name: "two")
        #expect(try outbox.stillSendable(connection, leased).isEmpty)
        _ = try SequencePause.resume(connection, name: "two")
        // In psql, as an operator might, hashed as erasure leaves it.
        _ = try connection.query(
            "INSERT INTO seqd.suppressions (email, reason, source) VALUES (seqd.address_hash('Ada@Example.com'), 'manual', 'psql')")
        let sendable = try outbox.stillSendable(connection, leased)
        #expect(sendable == Set(leased.filter { $0.toAddress != "ada@example.com" }.map(\.id)))
        #expect(sendable.count == 2)
    }

    @Test("the batch size caps the claim")
    func batchLimit() throws {
        #expect(try advancer.advanceBatch(connection, limit: 2).claimed == 2)
        #expect(try advancer.advanceBatch(connection, limit: 2).claimed == 1)
    }

    @Test("one enrollment whose write fails fails alone, with its error recorded; the batch goes on")
    func poisonedEnrollmentFailsAlone() throws {
        let bob = try enrollment("bob@example.com").decode("id", as: Int64.self)
        try connection.query(
            """
            CREATE FUNCTION pg_temp.refuse_bob() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.enrollment_id = \(bob) THEN RAISE EXCEPTION 'disk says no'; END IF;
                RETURN NEW;
            END $$
            """)
        try connection.execute(
            "CREATE TRIGGER refuse_bob BEFORE INSERT ON seqd.deliveries FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse_bob()")
        let summary = try advancer.advanceBatch(connection, limit: 10)
        #expect(summary.claimed == 3)
        #expect(summary.deliveriesCreated == 2)
        #expect(summary.failed == 1)
        let failed = try enrollment("bob@example.com")
        #expect(try failed.decode("status", as: String.self) == "failed")
        #expect(try failed.decode("last_error", as: String?.self)?.contains("disk says no") == true)
        #expect(try enrollment("ada@example.com").decode("deliveries", as: Int.self) == 1)
        let event = try connection.query(
            "SELECT event FROM seqd.enrollment_events WHERE enrollment_id = $1 ORDER BY id DESC LIMIT 1", [bob])[0]
        #expect(try event.decode("event", as: String.self) == "advance_error")
    }

    @Test("a suppressed address is opted out when its step comes due, and nothing is queued for it")
    func suppressedAtDue() throws {
        try connection.query("INSERT INTO seqd.suppressions (email, reason, source) VALUES ('cy@example.com', 'manual', 'test')")
        let summary = try advancer.advanceBatch(connection, limit: 10)
        #expect(summary.optedOut == 1)
        #expect(summary.deliveriesCreated == 2)
        let cy = try enrollment("cy@example.com")
        #expect(try cy.decode("status", as: String.self) == "opted_out")
        #expect(try cy.decode("deliveries", as: Int.self) == 0)
    }

    @Test("the claim plan is an index scan of the due index with a LIMIT under the lock")
    func claimPlan() throws {
        try connection.execute("ANALYZE seqd.enrollments")
        try connection.execute("SET enable_seqscan = off")
        let plan = try connection.query("EXPLAIN (COSTS OFF) " + Advancer.claimSQL.replacingOccurrences(of: "$1", with: "100"))
            .rows.map { try $0.decode("QUERY PLAN", as: String.self) }.joined(separator: "\n")
        #expect(plan.contains("enrollments_due"), "\(plan)")
        #expect(plan.contains("LockRows"), "\(plan)")
        #expect(plan.contains("Limit"), "\(plan)")
        #expect(plan.contains("CTE due"), "\(plan)")
    }
}

/// A `LeaseRoom` of fixed size that records what it was asked for and what stays held.
final class TestRoom: LeaseRoom, @unchecked Sendable {
    private let size: Int
    private(set) var asked = [Int]()
    private(set) var held = 0

    init(_ size: Int) { self.size = size }

    func reserve(upTo wanted: Int) -> Int {
        asked.append(wanted)
        let granted = min(wanted, size - held)
        held += granted
        return granted
    }

    func release(_ reserved: Int) { held -= reserved }
}
