import AsyncHTTPClient
import Delivery
import Foundation
import NIOCore
import NIOHTTP1
import Postgres
import SequenceHTTP
import SequenceStore
import Testing
import TestSupport

@Suite("click tracking: /c/{token}")
struct ClickTests {
    /// A client that does not follow redirects: the tests look at the 302 itself.
    static let client = HTTPClient(
        eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(redirectConfiguration: .disallow))

    /// One email delivery of the harness's sequence, marked sent `secondsAgo` seconds ago.
    static func sentDelivery(_ harness: Harness, _ email: String, secondsAgo: Int) async throws -> Int64 {
        let enrollmentID = try await harness.enroll(email)
        let connection = try harness.connect()
        _ = try Advancer(actor: "test", installationID: harness.installationID).advanceBatch(connection, limit: 10)
        return try connection.query(
            """
            UPDATE seqd.deliveries SET status = 'sent', sent_at = now() - make_interval(secs => $2)
            WHERE enrollment_id = $1 RETURNING id
            """, [enrollmentID, secondsAgo])[0].decode("id", as: Int64.self)
    }

    static func link(_ harness: Harness, deliveryID: Int64, url: String, decoy: Bool = false) -> String {
        "/c/" + ClickToken.make(.init(deliveryID: deliveryID, url: url, isDecoy: decoy), key: ClickToken.Key(secret: harness.secret))
    }

    static func hit(_ harness: Harness, _ path: String, method: HTTPMethod = .GET) async throws -> Harness.Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(harness.port)\(path)")
        request.method = method
        let response = try await client.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 1 << 20)
        var headers = [String: String]()
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return Harness.Reply(status: Int(response.status.code), body: String(buffer: body), headers: headers)
    }

    /// `(url, scanner)` of every recorded click of the delivery, in order.
    static func clicks(_ harness: Harness, _ deliveryID: Int64) throws -> [(url: String, scanner: String?)] {
        try harness.connect().query("SELECT url, scanner FROM seqd.clicks WHERE delivery_id = $1 ORDER BY id", [deliveryID]).rows.map {
            (try $0.decode("url", as: String.self), try $0.decode("scanner", as: String?.self))
        }
    }

    @Test("a signed link redirects to exactly the signed URL, uncached and without referrer, and counts as a person's click")
    func redirectsAndCounts() async throws {
        let registry = SeqdMetrics.bootstrap()
        let harness = try await Harness.start(prefix: "clickok", registry: registry)
        let delivery = try await Self.sentDelivery(harness, "ada@example.com", secondsAgo: 3600)
        let url = "https://example.com/pricing?plan=pro&ref=mail"
        let reply = try await Self.hit(harness, Self.link(harness, deliveryID: delivery, url: url))
        #expect(reply.status == 302, "\(reply)")
        #expect(reply.headers["location"] == url)
        #expect(reply.headers["cache-control"] == "no-store")
        #expect(reply.headers["referrer-policy"] == "no-referrer")
        let recorded = try Self.clicks(harness, delivery)
        #expect(recorded.count == 1)
        #expect(recorded.first?.url == url)
        #expect(recorded.first?.scanner == nil)
        let metrics = try await harness.request(.GET, "/metrics", token: nil).body
        #expect(metrics.contains(#"seqd_clicks_total{kind="human"}"#))
        // Neither the URL nor its query reaches the logs; the access log names the route template.
        #expect(!harness.logs.entries.contains { $0.text.contains("example.com/pricing") || $0.text.contains("plan=pro") })
        #expect(harness.logs.entries.contains { $0.text.contains("/c/{token}") })
        try await harness.stop()
    }

    @Test("a tampered link (one character changed, the URL swapped, another secret) is 404 with the invalid-link page, never a redirect, and records nothing")
    func tampered() async throws {
        let harness = try await Harness.start(prefix: "clickbad")
        let delivery = try await Self.sentDelivery(harness, "ada@example.com", secondsAgo: 3600)
        let path = Self.link(harness, deliveryID: delivery, url: "https://example.com/pricing")
        let token = String(path.dropFirst(3))
        var changed = Array(token)
        changed[12] = changed[12] == "A" ? "B" : "A"
        // The same delivery and a different URL, with the first token's MAC: an open redirect if it passed.
        let key = ClickToken.Key(secret: harness.secret)
        let evil = ClickToken.make(.init(deliveryID: delivery, url: "https://evil.example/", isDecoy: false), key: key)
        let swapped = String(evil.prefix(evil.count - 22)) + String(token.suffix(22))
        let otherSecret = ClickToken.make(
            .init(deliveryID: delivery, url: "https://example.com/pricing", isDecoy: false), key: ClickToken.Key(secret: "guessed"))
        let unsubscribePage = try await harness.request(.GET, "/u/garbage", token: nil)
        for bad in [String(changed), swapped, otherSecret, "garbage", String(repeating: "A", count: 6000)] {
            for method in [HTTPMethod.GET, .HEAD] {
                let reply = try await Self.hit(harness, "/c/\(bad)", method: method)
                #expect(reply.status == 404, "\(method) \(bad.prefix(40))")
                #expect(reply.headers["location"] == nil)
                if method == .GET { #expect(reply.body == unsubscribePage.body) }
            }
        }
        #expect(try Self.clicks(harness, delivery).isEmpty)
        // The genuine link still works (the refusals above were not a broken harness).
        #expect(try await Self.hit(harness, path).status == 302)
        try await harness.stop()
    }

    @Test("a HEAD is recorded as a scanner's (head) and answered like GET")
    func head() async throws {
        let harness = try await Harness.start(prefix: "clickhead")
        let delivery = try await Self.sentDelivery(harness, "ada@example.com", secondsAgo: 3600)
        let reply = try await Self.hit(harness, Self.link(harness, deliveryID: delivery, url: "https://example.com/a"), method: .HEAD)
        #expect(reply.status == 302)
        #expect(reply.headers["location"] == "https://example.com/a")
        #expect(try Self.clicks(harness, delivery).map(\.scanner) == ["head"])
        try await harness.stop()
    }

    @Test("a click within seconds of the send is a scanner's (too_soon); the same link later is a person's")
    func tooSoon() async throws {
        let harness = try await Harness.start(prefix: "clicksoon")
        let fresh = try await Self.sentDelivery(harness, "ada@example.com", secondsAgo: 1)
        let old = try await Self.sentDelivery(harness, "bob@example.com", secondsAgo: Clicks.tooSoonSeconds + 5)
        #expect(try await Self.hit(harness, Self.link(harness, deliveryID: fresh, url: "https://example.com/a")).status == 302)
        #expect(try await Self.hit(harness, Self.link(harness, deliveryID: old, url: "https://example.com/a")).status == 302)
        #expect(try Self.clicks(harness, fresh).map(\.scanner) == ["too_soon"])
        #expect(try Self.clicks(harness, old).map(\.scanner) == [nil])
        try await harness.stop()
    }

    @Test("a hit on the decoy is a scanner's, and so are the other hits on that message just before and after it")
    func decoy() async throws {
        let harness = try await Harness.start(prefix: "clickdecoy")
        let delivery = try await Self.sentDelivery(harness, "ada@example.com", secondsAgo: 3600)
        let other = try await Self.sentDelivery(harness, "bob@example.com", secondsAgo: 3600)
        #expect(try await Self.hit(harness, Self.link(harness, deliveryID: delivery, url: "https://example.com/a")).status == 302)
        #expect(try await Self.hit(harness, Self.link(harness, deliveryID: other, url: "https://example.com/a")).status == 302)
        let decoyReply = try await Self.hit(harness, Self.link(harness, deliveryID: delivery, url: "https://example.com/a", decoy: true))
        #expect(decoyReply.status == 302)
        #expect(decoyReply.headers["location"] == "https://example.com/a")
        #expect(try await Self.hit(harness, Self.link(harness, deliveryID: delivery, url: "https://example.com/b")).status == 302)
        #expect(try Self.clicks(harness, delivery).map(\.scanner) == ["decoy", "decoy", "decoy"])
        // Another message's click is not touched.
        #expect(try Self.clicks(harness, other).map(\.scanner) == [nil])
        try await harness.stop()
    }

    @Test("an unknown delivery (a preview's link) still redirects and records nothing; erasure deletes the contact's clicks and later hits record none")
    func unknownAndErased() async throws {
        let harness = try await Harness.start(prefix: "clickerase")
        let reply = try await Self.hit(harness, Self.link(harness, deliveryID: 0, url: "https://example.com/preview"))
        #expect(reply.status == 302)
        #expect(reply.headers["location"] == "https://example.com/preview")
        let connection = try harness.connect()
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.clicks")[0].decode("n", as: Int.self) == 0)

        let ada = try await Self.sentDelivery(harness, "ada@example.com", secondsAgo: 3600)
        let bob = try await Self.sentDelivery(harness, "bob@example.com", secondsAgo: 3600)
        for delivery in [ada, bob] {
            _ = try await Self.hit(harness, Self.link(harness, deliveryID: delivery, url: "https://example.com/?email=someone%40example.com"))
        }
        #expect(try Self.clicks(harness, ada).count == 1)
        // The contact's export shows its clicks (access before erasure).
        let export = try ContactPrivacy.export(connection, email: "ada@example.com")
        #expect(export.contains("someone%40example.com"))
        _ = try ContactPrivacy(actor: "test", installationID: harness.installationID).erase(connection, email: "ada@example.com")
        #expect(try Self.clicks(harness, ada).isEmpty)
        #expect(try Self.clicks(harness, bob).count == 1)
        // The old link keeps working for the reader, and brings nothing back.
        #expect(try await Self.hit(harness, Self.link(harness, deliveryID: ada, url: "https://example.com/x")).status == 302)
        #expect(try Self.clicks(harness, ada).isEmpty)
        try await harness.stop()
    }

    @Test("the scanner kinds Swift reads are exactly those seqd.clicks' CHECK allows")
    func scannerKindsMatchTheSchema() async throws {
        let harness = try await Harness.start(prefix: "clickkinds")
        let definition = try harness.connect().query(
            """
            SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
            WHERE conrelid = 'seqd.clicks'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%scanner%'
            """)[0].decode("def", as: String.self)
        let allowed = Set(definition.matches(of: /'([a-z_]+)'/).map { String($0.1) })
        #expect(allowed == Set(ClickScanner.allCases.map(\.rawValue)), "\(definition)")
        try await harness.stop()
    }
}
