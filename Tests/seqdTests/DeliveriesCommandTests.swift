import Foundation
import Postgres
import SequenceStore
import Testing
import TestSupport

@Suite("seqd deliveries")
struct DeliveriesCommandTests {
    static let sequence = """
        name: two
        sender: { address: team@example.com }
        steps:
          - { key: first, type: email, subject: "First", body: "one" }
          - { key: second, type: email, subject: "Second", body: "two" }
        """

    @Test("list, release a held unknown delivery, cancel with skip or stop; refusals exit 1")
    func listReleaseCancel() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "deliveries", sequence: Self.sequence, name: "two", contacts: ["ada@example.com", "bob@example.com"])
        let connection = try scenario.connect()
        let seqd = scenario.seqd
        // Advance only (no sender): one pending delivery per enrollment. Then Ada's becomes what the
        // rescuer leaves when a sender died mid-send under delivery.on_unknown: hold.
        let installation = try InstallationSettings.load(connection)
        #expect(try Advancer(actor: "test", installationID: installation.installationID).advanceBatch(connection, limit: 10).deliveriesCreated == 2)
        let ada = try connection.query(
            "SELECT d.id FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id WHERE c.email = 'ada@example.com'"
        )[0].decode("id", as: Int64.self)
        try connection.query("UPDATE seqd.deliveries SET status = 'unknown', attempts = 1 WHERE id = $1", [ada])

        let listed = try await seqd.run("deliveries", "list", "--status", "unknown", "--json")
        #expect(listed.status == 0, "\(listed)")
        #expect(listed.stdout.contains("\"id\" : \(ada)"))
        #expect(try await seqd.run("deliveries", "list", "--status", "lost").status == 65)

        let released = try await seqd.run("deliveries", "release", String(ada))
        #expect(released.status == 0, "\(released)")
        #expect(try connection.query("SELECT status::text AS s FROM seqd.deliveries WHERE id = $1", [ada])[0].decode("s", as: String.self) == "pending")
        let again = try await seqd.run("deliveries", "release", String(ada))
        #expect(again.status == 1)
        #expect(again.stderr.contains("release is not allowed"), "\(again)")

        let skipped = try await seqd.run("deliveries", "cancel", String(ada), "--then", "skip")
        #expect(skipped.status == 0, "\(skipped)")
        let enrollment = try connection.query(
            """
            SELECT e.status::text AS s, (SELECT event FROM seqd.enrollment_events v WHERE v.enrollment_id = e.id ORDER BY id DESC LIMIT 1) AS last
            FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE c.email = 'ada@example.com'
            """)[0]
        // Skipping the first email makes the second one due at once.
        #expect(try enrollment.decode("s", as: String.self) == "active")
        #expect(try enrollment.decode("last", as: String.self) == "skip_step")
        try await scenario.runOnce()
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'")[0].decode("n", as: Int.self) == 3)

        let sent = try connection.query("SELECT id FROM seqd.deliveries WHERE status = 'sent' LIMIT 1")[0].decode("id", as: Int64.self)
        let refused = try await seqd.run("deliveries", "cancel", String(sent), "--then", "stop")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("cancel is not allowed"), "\(refused)")
        #expect(try await seqd.run("deliveries", "cancel", "999999", "--then", "stop").status == 1)
        #expect(try await seqd.run("deliveries", "cancel", String(sent), "--then", "maybe").status == 64)
    }
}
