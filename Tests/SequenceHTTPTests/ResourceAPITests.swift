import Foundation
import NIOHTTP1
import Postgres
import Testing

/// The routes that give the API the CLI's reach (issue 20), each against real PostgreSQL: what a
/// CRM reads and changes, with the same results the CLI's commands give.
@Suite("the /v1 API: sequences, enrollments, status, sending, contact export and erasure")
struct ResourceAPITests {
    static let followUp = """
        {"name": "welcome", "sender": {"address": "team@example.com"},
         "steps": [{"key": "hello", "type": "email", "subject": "Hi {{first_name|there}}", "body": "Hello"},
                   {"type": "wait", "duration": "2d"},
                   {"key": "again", "type": "email", "subject": "Again", "body": "Hello again"}]}
        """

    @Test("sequences: list, show with an ETag, apply (new version, unchanged, If-Match refused when stale), pause and resume")
    func sequences() async throws {
        let harness = try await Harness.start(prefix: "apiseq")
        let list = try await harness.request(.GET, "/v1/sequences")
        #expect(list.status == 200, "\(list)")
        let sequences = try #require(list.json["sequences"] as? [[String: Any]])
        #expect(sequences.map { $0["name"] as? String } == ["welcome"])
        #expect(sequences.first?["latest_version"] as? Int == 1)

        let shown = try await harness.request(.GET, "/v1/sequences/welcome")
        #expect(shown.status == 200, "\(shown)")
        #expect(shown.headers["etag"] == "\"v1\"")
        #expect((shown.json["definition"] as? [String: Any])?["name"] as? String == "welcome")
        #expect(try await harness.request(.GET, "/v1/sequences/nosuch").status == 404)
        #expect(try await harness.request(.GET, "/v1/sequences/welcome?version=9").status == 404)
        #expect(try await harness.request(.GET, "/v1/sequences/Bad%20Name").status == 400)

        // A changed definition becomes version 2, guarded by the ETag the client read.
        let applied = try await harness.request(.PUT, "/v1/sequences/welcome", json: Self.followUp, headers: ["If-Match": "\"v1\""])
        #expect(applied.status == 201, "\(applied)")
        #expect(applied.json["version"] as? Int == 2)
        #expect(applied.headers["etag"] == "\"v2\"")
        // The same content again: nothing new, safe to retry.
        let again = try await harness.request(.PUT, "/v1/sequences/welcome", json: Self.followUp)
        #expect(again.status == 200 && again.json["version"] as? Int == 2 && again.json["created"] as? Bool == false, "\(again)")
        // A client that still holds v1 cannot replace v2 it has not seen.
        let stale = try await harness.request(
            .PUT, "/v1/sequences/welcome", json: Self.followUp.replacingOccurrences(of: "2d", with: "3d"), headers: ["If-Match": "\"v1\""])
        #expect(stale.status == 412, "\(stale)")
        #expect(stale.json["error"] as? String == "precondition_failed")
        let versions = try harness.connect().query("SELECT count(*) AS n FROM seqd.sequence_versions")[0].decode("n", as: Int.self)
        #expect(versions == 2)
        // An invalid definition says every issue with its path; a name that is not the path's is refused.
        let invalid = try await harness.request(.PUT, "/v1/sequences/welcome", json: #"{"name": "welcome", "steps": []}"#)
        #expect(invalid.status == 422, "\(invalid)")
        #expect((invalid.json["issues"] as? [[String: Any]])?.isEmpty == false)
        let other = try await harness.request(.PUT, "/v1/sequences/other", json: Self.followUp)
        #expect(other.status == 422 && other.json["field"] as? String == "name", "\(other)")
        // YAML is taken as the CLI takes a file.
        let yaml = try await harness.request(
            .PUT, "/v1/sequences/yaml-one", body: Harness.sequence.replacingOccurrences(of: "name: welcome", with: "name: yaml-one"),
            contentType: "application/yaml")
        #expect(yaml.status == 201, "\(yaml)")

        let paused = try await harness.request(.POST, "/v1/sequences/welcome/pause")
        #expect(paused.status == 200, "\(paused)")
        #expect(paused.json["resumed_at"] is NSNull)
        #expect(try await harness.request(.POST, "/v1/sequences/welcome/pause").status == 409)
        let resumed = try await harness.request(.POST, "/v1/sequences/welcome/resume")
        #expect(resumed.status == 200 && resumed.json["resumed_at"] is String, "\(resumed)")
        #expect(try await harness.request(.POST, "/v1/sequences/nosuch/pause").status == 404)
        try await harness.stop()
    }

    @Test("enrollments: pages by cursor with filters, one with its history, its deliveries")
    func enrollments() async throws {
        let harness = try await Harness.start(prefix: "apienr")
        var ids = [Int64]()
        for index in 0..<5 { ids.append(try await harness.enroll("p\(index)@example.com")) }
        _ = try await harness.request(.POST, "/v1/signals", json: #"{"type": "stop", "enrollment_id": \#(ids[1])}"#)

        var seen = [Int]()
        var cursor: String?
        repeat {
            let page = try await harness.request(.GET, "/v1/enrollments?sequence=welcome&limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""))
            #expect(page.status == 200, "\(page)")
            let items = try #require(page.json["enrollments"] as? [[String: Any]])
            #expect(items.count <= 2)
            seen += items.compactMap { $0["id"] as? Int }
            cursor = page.json["next_cursor"] as? String
        } while cursor != nil
        #expect(seen == ids.map(Int.init))
        let stopped = try await harness.request(.GET, "/v1/enrollments?status=stopped")
        #expect((stopped.json["enrollments"] as? [[String: Any]])?.compactMap { $0["id"] as? Int } == [Int(ids[1])])
        #expect(try await harness.request(.GET, "/v1/enrollments?status=nope").status == 400)
        #expect(try await harness.request(.GET, "/v1/enrollments?limit=501").status == 400)
        #expect(try await harness.request(.GET, "/v1/enrollments?colour=red").status == 400)

        let one = try await harness.request(.GET, "/v1/enrollments/\(ids[1])")
        #expect(one.status == 200, "\(one)")
        #expect(one.json["status"] as? String == "stopped")
        #expect(one.json["contact_id"] is Int)
        let events = try #require(one.json["events"] as? [[String: Any]])
        #expect(events.last?["to_status"] as? String == "stopped")
        #expect(events.last?["actor"] as? String == "http:api")
        #expect(try await harness.request(.GET, "/v1/enrollments/999999").status == 404)

        // The deliveries the store holds for the enrollment, as a send leaves them.
        let connection = try harness.connect()
        let rows = try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE enrollment_id = $1", [ids[0]])[0].decode("n", as: Int.self)
        let deliveries = try await harness.request(.GET, "/v1/enrollments/\(ids[0])/deliveries")
        #expect(deliveries.status == 200)
        #expect((deliveries.json["deliveries"] as? [Any])?.count == rows)
        try await harness.stop()
    }

    @Test("status counts match the table; the send switch pauses and resumes, idempotently")
    func statusAndSending() async throws {
        let harness = try await Harness.start(prefix: "apistat")
        for index in 0..<3 { _ = try await harness.enroll("s\(index)@example.com") }
        let status = try await harness.request(.GET, "/v1/status?sequence=welcome")
        #expect(status.status == 200, "\(status)")
        let counts = try #require(status.json["counts"] as? [[String: Any]])
        let counted = counts.compactMap { $0["count"] as? Int }.reduce(0, +)
        let stored = try harness.connect().query("SELECT count(*) AS n FROM seqd.enrollments")[0].decode("n", as: Int.self)
        #expect(counted == stored && stored == 3)
        #expect(try await harness.request(.GET, "/v1/status?sequence=nosuch").status == 404)

        #expect(try await harness.request(.GET, "/v1/sending").json["paused"] as? Bool == false)
        for _ in 0..<2 {
            let paused = try await harness.request(.PUT, "/v1/sending", json: #"{"paused": true}"#)
            #expect(paused.status == 200 && paused.json["paused"] as? Bool == true, "\(paused)")
        }
        #expect(try await harness.request(.GET, "/v1/sending").json["paused"] as? Bool == true)
        #expect(try await harness.request(.PUT, "/v1/sending", json: #"{"paused": false}"#).json["paused"] as? Bool == false)
        #expect(try await harness.request(.PUT, "/v1/sending", json: "{}").status == 400)
        try await harness.stop()
    }

    @Test("contacts: export by id, erase by id (again is harmless), unknown ids 404")
    func exportAndErase() async throws {
        let harness = try await Harness.start(prefix: "apipriv")
        let id = try await harness.createContact("grace@example.com", firstName: "Grace")
        let export = try await harness.request(.GET, "/v1/contacts/\(id)/export")
        #expect(export.status == 200, "\(export)")
        #expect(export.body.contains("grace@example.com") && export.body.contains("Grace"))
        for _ in 0..<3 {
            let erased = try await harness.request(.DELETE, "/v1/contacts/\(id)")
            #expect(erased.status == 200 && erased.json["erased"] as? Bool == true, "\(erased)")
        }
        let connection = try harness.connect()
        let row = try connection.query("SELECT email, first_name FROM seqd.contacts WHERE id = $1", [id])[0]
        #expect(try row.decode("email", as: String.self) == "erased-\(id)@erased.invalid")
        #expect(try row.decode("first_name", as: String?.self) == nil)
        let suppressed = try connection.query("SELECT seqd.is_suppressed('grace@example.com') AS s")[0].decode("s", as: Bool.self)
        #expect(suppressed)
        // Erased is gone for every read (what is left is an anonymous audit trail).
        #expect(try await harness.request(.GET, "/v1/contacts/\(id)/export").status == 404)
        #expect(try await harness.request(.GET, "/v1/contacts/\(id)/enrollments").status == 404)
        #expect(try await harness.request(.GET, "/v1/contacts/999999/export").status == 404)
        // The address comes back as a new contact (an event, a CRM sync): erasing that one works
        // too, and the address stays suppressed by the first erasure's hash.
        let again = try await harness.createContact("grace@example.com", firstName: "Grace")
        #expect(again != id)
        let second = try await harness.request(.DELETE, "/v1/contacts/\(again)")
        #expect(second.status == 200, "\(second)")
        let hashes = try connection.query("SELECT count(*) AS n FROM seqd.suppressions WHERE email LIKE 'sha256:%'")[0].decode("n", as: Int.self)
        #expect(hashes == 1)
        #expect(try await harness.request(.DELETE, "/v1/contacts/999999").status == 404)
        try await harness.stop()
    }
}
