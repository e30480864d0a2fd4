import Foundation
import Postgres
import SequenceEngine
import SequenceStore
import Testing
import TestSupport

/// The outbox's claim and settle against a real database, as a busy sender calls them.
@Suite("delivery outbox")
struct DeliveryOutboxTests {
    let connection: Connection
    let outbox = DeliveryOutbox(worker: "test:send", installationID: "t1", policy: DeliveryPolicy(maxAttempts: 3))

    /// Five contacts enrolled in a one-email sequence, their deliveries queued.
    init() async throws {
        connection = try Connection(try await TestDatabase.shared.makeMigratedDatabase(prefix: "outbox"))
        let definition = try SequenceDefinition.parse(
            """
            name: one
            sender: { address: team@example.com }
            steps:
              - { key: hello, type: email, subject: "Hi", body: "Hello" }
            """, fileName: "one.yaml")
        try SequenceCatalog.apply(connection, [definition])
        _ = try ContactStore.upsert(connection, (0..<5).map { ContactFields(email: "c\($0)@example.com") })
        _ = try Enroller.enroll(connection, sequence: "one", selection: .all, actor: "test")
        #expect(try Advancer(actor: "test", installationID: "t1").advanceBatch(connection, limit: 10).deliveriesCreated == 5)
    }

    func sent(_ claimed: some Sequence<ClaimedDelivery>) -> [SendResult] {
        claimed.map {
            SendResult(
                delivery: $0, event: .succeeded(providerID: nil, token: $0.token), attemptOutcome: .sent, reply: nil,
                messageID: "<\($0.deliveryKey)@test>")
        }
    }

    func statuses() throws -> [String: Int] {
        var counts = [String: Int]()
        for row in try connection.query("SELECT status::text AS status, count(*) AS n FROM seqd.deliveries GROUP BY status").rows {
            counts[try row.decode("status")] = try row.decode("n")
        }
        return counts
    }

    @Test("one transaction settles a batch and claims the next: sent, completed and audited, the next leased")
    func settleAndClaim() throws {
        let first = try outbox.claim(connection, limit: 2, leaseSeconds: 30)
        #expect(first.count == 2)
        let (settled, next) = try outbox.settleAndClaim(connection, results: sent(first), limit: 2, leaseSeconds: 30)
        #expect(settled.sent == 2)
        #expect(next.count == 2)
        #expect(Set(next.map(\.id)).isDisjoint(with: first.map(\.id)))
        #expect(try statuses() == ["sent": 2, "sending": 2, "pending": 1])
        // The settled half is complete: message ids kept, attempts closed, enrollments completed and audited.
        let settledRows = try connection.query(
            """
            SELECT count(*) FILTER (WHERE d.message_id IS NOT NULL) AS ids,
                   count(*) FILTER (WHERE a.outcome = 'sent' AND a.finished_at IS NOT NULL) AS closed,
                   count(*) FILTER (WHERE e.status = 'completed') AS completed,
                   (SELECT count(*) FROM seqd.enrollment_events v WHERE v.enrollment_id = ANY($1::bigint[]) AND v.to_status = 'completed') AS audited
            FROM seqd.deliveries d JOIN seqd.delivery_attempts a ON a.delivery_id = d.id JOIN seqd.enrollments e ON e.id = d.enrollment_id
            WHERE d.id = ANY($2::bigint[])
            """, [first.map(\.enrollmentID), first.map(\.id)])[0]
        for column in ["ids", "closed", "completed", "audited"] {
            #expect(try settledRows.decode(column, as: Int.self) == 2, "\(column)")
        }
        // The claimed half is leased with the new tokens; its attempt rows are written when it settles.
        let leased = try connection.query(
            """
            SELECT count(*) FILTER (WHERE d.status = 'sending' AND d.fencing_token = ANY($1::bigint[])) AS leased,
                   (SELECT count(*) FROM seqd.delivery_attempts a WHERE a.fencing_token = ANY($1::bigint[])) AS attempts
            FROM seqd.deliveries d
            """, [next.map(\.token)])[0]
        #expect(try leased.decode("leased", as: Int.self) == 2)
        #expect(try leased.decode("attempts", as: Int.self) == 0)
    }

    @Test("a claim says whether more were waiting than it took, and leaves the one it looked at pending")
    func moreWaiting() throws {
        let first = try outbox.claim(connection, limit: 2, leaseSeconds: 30)
        #expect(first.count == 2)
        #expect(first.moreWaiting)
        #expect(try statuses() == ["sending": 2, "pending": 3])
        let exact = try outbox.claim(connection, limit: 3, leaseSeconds: 30)
        #expect(exact.count == 3)
        #expect(!exact.moreWaiting)
        let (settled, none) = try outbox.settleAndClaim(
            connection, results: sent(first.deliveries + exact.deliveries), limit: 5, leaseSeconds: 30)
        #expect(settled.sent == 5)
        #expect(none.isEmpty && !none.moreWaiting)
    }

    @Test("a lease that expires gets its attempt written as unknown, by its sender's token and worker, from the claim's time")
    func rescuedAttempts() throws {
        let lost = try outbox.claim(connection, limit: 3, leaseSeconds: 30)
        // One of them was claimed by an earlier build, which opened its attempt row at the claim.
        _ = try connection.query(
            "INSERT INTO seqd.delivery_attempts (delivery_id, fencing_token, worker, started_at) VALUES ($1, $2, 'old:send', $3)",
            [lost[2].id, lost[2].token, lost[2].claimedAt])
        _ = try connection.query(
            "UPDATE seqd.deliveries SET lease_expires_at = now() - interval '1 second' WHERE id = ANY($1::bigint[])", [lost.map(\.id)])
        let rescuer = DeliveryOutbox(worker: "test:rescuer", installationID: "t1", policy: DeliveryPolicy(maxAttempts: 3))
        #expect(try rescuer.rescueExpiredLeases(connection, jitter: { 0 }) == 3)
        let rows = try connection.query(
            """
            SELECT delivery_id, fencing_token, worker, started_at, finished_at IS NOT NULL AS finished, outcome
            FROM seqd.delivery_attempts ORDER BY delivery_id
            """).rows
        #expect(rows.count == 3)
        for (row, delivery) in zip(rows, lost) {
            #expect(try row.decode("delivery_id", as: Int64.self) == delivery.id)
            #expect(try row.decode("fencing_token", as: Int64.self) == delivery.token)
            #expect(try row.decode("worker", as: String.self) == (delivery.id == lost[2].id ? "old:send" : "test:send"))
            #expect(try row.decode("started_at", as: Date.self) == delivery.claimedAt)
            #expect(try row.decode("finished", as: Bool.self))
            #expect(try row.decode("outcome", as: String.self) == "unknown")
        }
        #expect(try statuses() == ["unknown": 3, "pending": 2])
    }

    @Test("a send confirmed after its lease expired corrects the rescue's unknown attempt instead of adding one")
    func lateConfirmation() throws {
        let slow = try outbox.claim(connection, limit: 1, leaseSeconds: 30)
        _ = try connection.query(
            "UPDATE seqd.deliveries SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [slow[0].id])
        let rescuer = DeliveryOutbox(worker: "test:rescuer", installationID: "t1", policy: DeliveryPolicy(maxAttempts: 3))
        #expect(try rescuer.rescueExpiredLeases(connection, jitter: { 0 }) == 1)
        #expect(try outbox.settle(connection, results: sent(slow)).sent == 1)
        let rows = try connection.query(
            "SELECT outcome, reply, worker FROM seqd.delivery_attempts WHERE delivery_id = $1", [slow[0].id]).rows
        #expect(rows.count == 1)
        #expect(try rows.first?.decode("outcome", as: String.self) == "sent")
        #expect(try rows.first?.decode("reply", as: String?.self) == "settled after its lease had expired")
        #expect(try rows.first?.decode("worker", as: String.self) == "test:send")
        #expect(try statuses() == ["sent": 1, "pending": 4])
    }

    @Test("settling with nothing left to claim commits the outcomes and claims nothing; limit 0 claims nothing")
    func drained() throws {
        let all = try outbox.claim(connection, limit: 10, leaseSeconds: 30)
        #expect(all.count == 5)
        let (settled, next) = try outbox.settleAndClaim(connection, results: sent(all.prefix(3)), limit: 10, leaseSeconds: 30)
        #expect(settled.sent == 3)
        #expect(next.isEmpty)
        let (rest, none) = try outbox.settleAndClaim(connection, results: sent(all.suffix(2)), limit: 0, leaseSeconds: 30)
        #expect(rest.sent == 2)
        #expect(none.isEmpty)
        #expect(try statuses() == ["sent": 5])
    }

    @Test("an outcome whose lease was taken over is stale and changes nothing, and the claim still happens")
    func staleOutcome() throws {
        let first = try outbox.claim(connection, limit: 1, leaseSeconds: 30)
        // Another sender's claim after the lease ended bumped the fencing token.
        _ = try connection.query("UPDATE seqd.deliveries SET fencing_token = fencing_token + 1000 WHERE id = $1", [first[0].id])
        let (settled, next) = try outbox.settleAndClaim(connection, results: sent(first), limit: 1, leaseSeconds: 30)
        #expect(settled.stale == 1)
        #expect(settled.sent == 0)
        #expect(next.count == 1)
        #expect(try statuses() == ["sending": 2, "pending": 3])
    }
}
