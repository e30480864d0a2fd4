import Delivery
import Foundation
import NIOHTTP1
import Postgres
import SequenceEngine
import SequenceHTTP
import SequenceStore
import Testing
import TestSupport

@Suite("one-click unsubscribe")
struct UnsubscribeTests {
    @Test("GET /u/{token} shows a confirm form that posts One-Click back; a bad token is 404")
    func page() async throws {
        let harness = try await Harness.start(prefix: "unsubpage")
        let enrollmentID = try await harness.enroll("ada@example.com")
        let token = UnsubscribeToken.make(enrollmentID: enrollmentID, secret: harness.secret)
        let page = try await harness.request(.GET, "/u/\(token)", token: nil)
        #expect(page.status == 200)
        #expect(page.headers["content-type"]?.hasPrefix("text/html") == true)
        #expect(page.body.contains(#"<form method="post">"#))
        #expect(page.body.contains(#"name="List-Unsubscribe" value="One-Click""#))
        // The page does not reveal whose link it is.
        #expect(!page.body.contains("ada@"))
        // Showing the page changes nothing.
        let suppressions = try harness.connect().query("SELECT count(*) AS n FROM seqd.suppressions")[0].decode("n", as: Int.self)
        #expect(suppressions == 0)

        let other = UnsubscribeToken.make(enrollmentID: enrollmentID, secret: "another secret")
        for bad in [other, "garbage", String(token.dropLast()) + (token.last == "A" ? "B" : "A"), String(repeating: "A", count: 300)] {
            let reply = try await harness.request(.GET, "/u/\(bad)", token: nil)
            #expect(reply.status == 404, "\(bad)")
            #expect(reply.body.contains("not valid"))
        }
        try await harness.stop()
    }

    @Test("POST /u/{token} suppresses the address before answering, idempotently; nothing more is claimed for it")
    func oneClick() async throws {
        let harness = try await Harness.start(prefix: "oneclick")
        let ada = try await harness.enroll("ada@example.com")
        let bob = try await harness.enroll("bob@example.com")
        let connection = try harness.connect()
        // Both first emails wait in the outbox.
        let advanced = try Advancer(actor: "test", installationID: harness.installationID).advanceBatch(connection, limit: 10)
        #expect(advanced.deliveriesCreated == 2)

        let token = UnsubscribeToken.make(enrollmentID: ada, secret: harness.secret)
        let reply = try await harness.request(.POST, "/u/\(token)", body: "List-Unsubscribe=One-Click", token: nil)
        #expect(reply.status == 200, "\(reply)")
        // Committed before the answer: visible at once, no polling.
        let state = try connection.query(
            """
            SELECT e.status::text AS status,
                   (SELECT count(*) FROM seqd.suppressions WHERE email = 'ada@example.com') AS suppressed,
                   (SELECT source FROM seqd.suppressions WHERE email = 'ada@example.com') AS source,
                   (SELECT status::text FROM seqd.deliveries WHERE enrollment_id = e.id) AS delivery
            FROM seqd.enrollments e WHERE e.id = $1
            """, [ada])[0]
        #expect(try state.decode("status", as: String.self) == "opted_out")
        #expect(try state.decode("suppressed", as: Int.self) == 1)
        #expect(try state.decode("source", as: String.self) == "http")
        #expect(try state.decode("delivery", as: String.self) == "cancelled")

        let again = try await harness.request(.POST, "/u/\(token)", body: "List-Unsubscribe=One-Click", token: nil)
        #expect(again.status == 200)
        let rows = try connection.query("SELECT count(*) AS n FROM seqd.suppressions")[0].decode("n", as: Int.self)
        #expect(rows == 1)

        // The outbox hands out bob's email and nothing for ada.
        let claimed = try DeliveryOutbox(
            worker: "test", installationID: harness.installationID,
            policy: DeliveryPolicy(maxAttempts: 3, backoff: 10, onUnknown: .retry)
        ).claim(connection, limit: 10, leaseSeconds: 30)
        #expect(claimed.map(\.enrollmentID) == [bob])
        #expect(!claimed.contains { $0.toAddress == "ada@example.com" })
        try await harness.stop()
    }

    @Test("POST /u/{token}: multipart one-click works; a bad token is 404, a missing One-Click body 400")
    func refusals() async throws {
        let harness = try await Harness.start(prefix: "unsubbad")
        let enrollmentID = try await harness.enroll("ada@example.com")
        let token = UnsubscribeToken.make(enrollmentID: enrollmentID, secret: harness.secret)
        let forged = UnsubscribeToken.make(enrollmentID: enrollmentID, secret: "guessed")
        #expect(try await harness.request(.POST, "/u/\(forged)", body: "List-Unsubscribe=One-Click", token: nil).status == 404)
        // A valid token for an enrollment that does not exist looks the same as a forged one.
        let missing = UnsubscribeToken.make(enrollmentID: 987_654, secret: harness.secret)
        let unknown = try await harness.request(.POST, "/u/\(missing)", body: "List-Unsubscribe=One-Click", token: nil)
        #expect(unknown.status == 404)
        let forgedReply = try await harness.request(.POST, "/u/\(forged)", body: "List-Unsubscribe=One-Click", token: nil)
        #expect(unknown.body == forgedReply.body)
        #expect(try await harness.request(.POST, "/u/\(token)", body: "unsubscribe=yes", token: nil).status == 400)
        #expect(try await harness.request(.POST, "/u/\(token)", token: nil).status == 400)
        let count = try harness.connect().query("SELECT count(*) AS n FROM seqd.suppressions")[0].decode("n", as: Int.self)
        #expect(count == 0)

        let boundary = "seqd-test-boundary"
        let multipart = "--\(boundary)\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--\(boundary)--\r\n"
        let reply = try await harness.request(
            .POST, "/u/\(token)", body: multipart, contentType: "multipart/form-data; boundary=\(boundary)", token: nil)
        #expect(reply.status == 200, "\(reply)")
        let status = try harness.connect().query("SELECT status::text AS s FROM seqd.enrollments")[0].decode("s", as: String.self)
        #expect(status == "opted_out")
        try await harness.stop()
    }
}
