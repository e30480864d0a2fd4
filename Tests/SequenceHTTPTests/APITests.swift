import Foundation
import NIOHTTP1
import Postgres
import SequenceEngine
import SequenceHTTP
import SequenceStore
import Testing
import TestSupport

@Suite("the /v1 API")
struct APITests {
    @Test("requests without a token or with a wrong one get 401; a right one passes")
    func authentication() async throws {
        let harness = try await Harness.start(prefix: "auth")
        let body = #"{"email": "ada@example.com"}"#
        let missing = try await harness.request(.POST, "/v1/contacts", json: body, token: nil)
        #expect(missing.status == 401)
        #expect(missing.json["error"] as? String == "unauthorized")
        #expect(missing.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
        let wrong = try await harness.request(.POST, "/v1/contacts", json: body, token: "not-the-token-at-all")
        #expect(wrong.status == 401)
        let prefix = try await harness.request(.POST, "/v1/contacts", json: body, token: String(Harness.token.dropLast()))
        #expect(prefix.status == 401)
        let basic = try await harness.request(.POST, "/v1/contacts", json: body, token: nil, authorization: "Basic \(Harness.token)")
        #expect(basic.status == 401)
        for path in ["/v1/enrollments", "/v1/signals", "/v1/inbound"] {
            #expect(try await harness.request(.POST, path, json: "{}", token: nil).status == 401, "\(path)")
        }
        #expect(try await harness.request(.GET, "/v1/contacts/1/enrollments", token: nil).status == 401)
        // The scheme is case-insensitive (RFC 7235).
        let lower = try await harness.request(.POST, "/v1/contacts", json: body, token: nil, authorization: "bearer \(Harness.token)")
        #expect(lower.status == 201, "\(lower)")
        // Nothing was written by the refused requests.
        let count = try harness.connect().query("SELECT count(*) AS n FROM seqd.contacts")[0].decode("n", as: Int.self)
        #expect(count == 1)
        try await harness.stop()
    }

    @Test("with no http.api_token the API is off: 503 api_disabled, probes still answer")
    func disabled() async throws {
        let harness = try await Harness.start(prefix: "noapi", apiToken: nil)
        let reply = try await harness.request(.POST, "/v1/contacts", json: #"{"email": "ada@example.com"}"#)
        #expect(reply.status == 503)
        #expect(reply.json["error"] as? String == "api_disabled")
        #expect(try await harness.request(.GET, "/healthz", token: nil).status == 200)
        try await harness.stop()
    }

    @Test("POST /v1/contacts upserts and returns the id; bad input is 4xx naming the field")
    func contacts() async throws {
        let harness = try await Harness.start(prefix: "contacts")
        let created = try await harness.request(
            .POST, "/v1/contacts",
            json: #"{"email": "Ada@Example.com", "first_name": "Ada", "time_zone": "Europe/London", "attributes": {"plan": "pro", "seats": 3, "trial": false}}"#)
        #expect(created.status == 201, "\(created)")
        #expect(created.json["result"] as? String == "created")
        let id = try #require(created.json["id"] as? Int)
        let same = try await harness.request(.POST, "/v1/contacts", json: #"{"email": "Ada@Example.com", "first_name": "Ada"}"#)
        #expect(same.status == 200)
        #expect(same.json["id"] as? Int == id)
        #expect(same.json["result"] as? String == "unchanged")
        let updated = try await harness.request(.POST, "/v1/contacts", json: #"{"email": "ada@example.com", "last_name": "Lovelace"}"#)
        #expect(updated.json["result"] as? String == "updated")
        let row = try harness.connect().query("SELECT last_name, attributes::text AS attributes FROM seqd.contacts WHERE id = $1", [Int64(id)])[0]
        #expect(try row.decode("last_name", as: String.self) == "Lovelace")
        #expect(try row.decode("attributes", as: String.self) == #"{"plan": "pro", "seats": "3", "trial": "false"}"#)

        let cases: [(String, Int, String, String?)] = [
            ("{\"email\": ", 400, "invalid_json", nil),
            ("", 400, "invalid_json", nil),
            ("[1, 2]", 400, "invalid_json", nil),
            (#"{"email": "x@example.com", "nickname": "x"}"#, 400, "unknown_field", "nickname"),
            (#"{"first_name": "x"}"#, 400, "missing_field", "email"),
            (#"{"email": 42}"#, 400, "invalid_field", "email"),
            (#"{"email": "x@example.com", "first_name": ["x"]}"#, 400, "invalid_field", "first_name"),
            (#"{"email": "x@example.com", "attributes": {"plan": {"nested": 1}}}"#, 400, "invalid_field", "attributes.plan"),
            (#"{"email": "x@example.com", "attributes": "plan"}"#, 400, "invalid_field", "attributes"),
            (#"{"email": "x@example.com", "first_name": "a\u0000b"}"#, 400, "invalid_field", "first_name"),
            (#"{"email": "not an address"}"#, 422, "invalid_field", "email"),
            (#"{"email": "x\u0000y@example.com"}"#, 400, "invalid_field", "email"),
            (#"{"email": "x@example.com\u000d"}"#, 422, "invalid_field", "email"),
            (#"{"email": "x\u0085y@example.com"}"#, 422, "invalid_field", "email"),
            (#"{"email": "x@example.com", "time_zone": "GMT+5"}"#, 422, "invalid_field", "time_zone"),
        ]
        for (body, status, code, field) in cases {
            let reply = try await harness.request(.POST, "/v1/contacts", json: body)
            #expect(reply.status == status, "\(body) → \(reply)")
            #expect(reply.json["error"] as? String == code, "\(body) → \(reply)")
            #expect(reply.json["field"] as? String == field, "\(body) → \(reply)")
        }
        let huge = try await harness.request(.POST, "/v1/contacts", json: #"{"email": "x@example.com", "first_name": ""# + String(repeating: "a", count: 70_000) + #""}"#)
        #expect(huge.status == 413, "\(huge.status)")
        try await harness.stop()
    }

    @Test("POST /v1/enrollments enrolls once; repeats, unknown sequences and contacts are refused by name")
    func enrollments() async throws {
        let harness = try await Harness.start(prefix: "enroll")
        let contactID = try await harness.createContact("ada@example.com")
        let created = try await harness.request(.POST, "/v1/enrollments", json: #"{"sequence": "welcome", "email": "ADA@example.com"}"#)
        #expect(created.status == 201, "\(created)")
        #expect(created.json["status"] as? String == "active")
        #expect(created.json["contact_id"] as? Int == Int(contactID))
        #expect(created.json["version"] as? Int == 1)
        let enrollmentID = try #require(created.json["enrollment_id"] as? Int)
        let actor = try harness.connect().query(
            "SELECT actor FROM seqd.enrollment_events WHERE enrollment_id = $1", [Int64(enrollmentID)])[0].decode("actor", as: String.self)
        #expect(actor == "http:api")

        let again = try await harness.request(.POST, "/v1/enrollments", json: #"{"sequence": "welcome", "contact_id": \#(contactID)}"#)
        #expect(again.status == 409)
        #expect(again.json["error"] as? String == "already_enrolled")
        #expect(again.json["status"] as? String == "active")
        #expect(again.json["enrollment_id"] as? Int == enrollmentID)

        // Finished: enrolled before, unless asked explicitly.
        _ = try await harness.request(.POST, "/v1/signals", json: #"{"type": "stop", "enrollment_id": \#(enrollmentID)}"#)
        let before = try await harness.request(.POST, "/v1/enrollments", json: #"{"sequence": "welcome", "email": "ada@example.com"}"#)
        #expect(before.status == 409)
        #expect(before.json["error"] as? String == "enrolled_before")
        #expect(before.json["status"] as? String == "stopped")
        let reenrolled = try await harness.request(
            .POST, "/v1/enrollments", json: #"{"sequence": "welcome", "email": "ada@example.com", "allow_reenroll": true}"#)
        #expect(reenrolled.status == 201, "\(reenrolled)")

        let unknownSequence = try await harness.request(.POST, "/v1/enrollments", json: #"{"sequence": "nope", "email": "ada@example.com"}"#)
        #expect(unknownSequence.status == 422)
        #expect(unknownSequence.json["error"] as? String == "unknown_sequence")
        #expect(unknownSequence.json["field"] as? String == "sequence")
        let unknownContact = try await harness.request(.POST, "/v1/enrollments", json: #"{"sequence": "welcome", "email": "who@example.com"}"#)
        #expect(unknownContact.status == 422)
        #expect(unknownContact.json["field"] as? String == "email")
        let unknownID = try await harness.request(.POST, "/v1/enrollments", json: #"{"sequence": "welcome", "contact_id": 999999}"#)
        #expect(unknownID.status == 422)
        #expect(unknownID.json["field"] as? String == "contact_id")
        let both = try await harness.request(
            .POST, "/v1/enrollments", json: #"{"sequence": "welcome", "email": "ada@example.com", "contact_id": 1}"#)
        #expect(both.status == 400)
        let extra = try await harness.request(.POST, "/v1/enrollments", json: #"{"sequence": "welcome", "email": "ada@example.com", "step": 2}"#)
        #expect(extra.status == 400)
        #expect(extra.json["field"] as? String == "step")

        // Suppressed addresses are not enrolled.
        _ = try await harness.createContact("bob@example.com")
        let optOut = try await harness.request(.POST, "/v1/signals", json: #"{"type": "opt_out", "email": "bob@example.com"}"#)
        #expect(optOut.status == 200, "\(optOut)")
        let suppressed = try await harness.request(.POST, "/v1/enrollments", json: #"{"sequence": "welcome", "email": "bob@example.com"}"#)
        #expect(suppressed.status == 409)
        #expect(suppressed.json["error"] as? String == "suppressed")
        try await harness.stop()
    }

    @Test("a contact missing a template field without fallback is refused, naming the field")
    func missingTemplateFields() async throws {
        let harness = try await Harness.start(prefix: "missing")
        try SequenceCatalog.apply(
            try harness.connect(),
            [try SequenceDefinition.parse("""
                name: named
                sender: { address: team@example.com }
                steps:
                  - { key: hello, type: email, subject: "Hi {{first_name}}", body: "Hello {{company}}" }
                """, fileName: "named.yaml")])
        _ = try await harness.createContact("anon@example.com", firstName: nil)
        let reply = try await harness.request(.POST, "/v1/enrollments", json: #"{"sequence": "named", "email": "anon@example.com"}"#)
        #expect(reply.status == 422, "\(reply)")
        #expect(reply.json["error"] as? String == "missing_template_fields")
        #expect(reply.json["missing_fields"] as? [String] == ["company", "first_name"])
        try await harness.stop()
    }

    @Test("GET /v1/contacts/{id}/enrollments shows state and history by contact id")
    func contactEnrollments() async throws {
        let harness = try await Harness.start(prefix: "history")
        let enrollmentID = try await harness.enroll("ada@example.com")
        let contactID = try harness.connect().query("SELECT id FROM seqd.contacts")[0].decode("id", as: Int64.self)
        _ = try await harness.request(.POST, "/v1/signals", json: #"{"type": "pause", "enrollment_id": \#(enrollmentID), "reason": "holiday"}"#)
        let reply = try await harness.request(.GET, "/v1/contacts/\(contactID)/enrollments")
        #expect(reply.status == 200, "\(reply)")
        #expect(reply.json["contact_id"] as? Int == Int(contactID))
        #expect(reply.json["suppressed"] as? Bool == false)
        let enrollments = try #require(reply.json["enrollments"] as? [[String: Any]])
        #expect(enrollments.count == 1)
        #expect(enrollments[0]["id"] as? Int == Int(enrollmentID))
        #expect(enrollments[0]["status"] as? String == "paused")
        #expect(enrollments[0]["step"] as? String == "hello")
        let events = try #require(enrollments[0]["events"] as? [[String: Any]])
        #expect(events.map { $0["event"] as? String } == ["enroll", "pause"])
        #expect(events[1]["reason"] as? String == "holiday")
        #expect(events[1]["actor"] as? String == "http:api")
        #expect((events[0]["at"] as? String)?.hasSuffix("Z") == true)

        #expect(try await harness.request(.GET, "/v1/contacts/999999/enrollments").status == 404)
        let bad = try await harness.request(.GET, "/v1/contacts/ada/enrollments")
        #expect(bad.status == 400)
        #expect(bad.json["field"] as? String == "id")
        try await harness.stop()
    }

    @Test("POST /v1/signals goes through the state machine; invalid transitions are 409 with the current status")
    func signals() async throws {
        let harness = try await Harness.start(prefix: "signals")
        let enrollmentID = try await harness.enroll("ada@example.com")
        func signal(_ json: String) async throws -> Harness.Reply { try await harness.request(.POST, "/v1/signals", json: json) }

        let paused = try await signal(#"{"type": "pause", "enrollment_id": \#(enrollmentID)}"#)
        #expect(paused.status == 200, "\(paused)")
        #expect(paused.json["changed"] as? Int == 1)
        let entry = try #require((paused.json["enrollments"] as? [[String: Any]])?.first)
        #expect(entry["from"] as? String == "active")
        #expect(entry["to"] as? String == "paused")
        let twice = try await signal(#"{"type": "pause", "enrollment_id": \#(enrollmentID)}"#)
        #expect(twice.status == 409, "\(twice)")
        #expect(twice.json["error"] as? String == "invalid_transition")
        #expect(twice.json["status"] as? String == "paused")
        let resumed = try await signal(#"{"type": "resume", "email": "ada@example.com", "sequence": "welcome"}"#)
        #expect(resumed.status == 200, "\(resumed)")
        let until = try await signal(#"{"type": "pause", "email": "ada@example.com", "until": "2030-01-01T09:00:00Z"}"#)
        #expect(until.status == 200, "\(until)")
        let resumeAt = try harness.connect().query("SELECT resume_at FROM seqd.enrollments")[0].decode("resume_at", as: Date.self)
        #expect(resumeAt == Date(timeIntervalSince1970: 1_893_488_400))
        let stopped = try await signal(#"{"type": "stop", "enrollment_id": \#(enrollmentID), "reason": "asked by sales"}"#)
        #expect(stopped.status == 200)
        let finished = try await signal(#"{"type": "reply", "email": "ada@example.com"}"#)
        #expect(finished.status == 409)
        #expect(finished.json["error"] as? String == "no_live_enrollment")
        #expect(finished.json["status"] as? String == "stopped")
        let terminal = try await signal(#"{"type": "resume", "enrollment_id": \#(enrollmentID)}"#)
        #expect(terminal.status == 409)
        #expect(terminal.json["status"] as? String == "stopped")

        let sources = try harness.connect().query("SELECT DISTINCT source FROM seqd.signals").rows.map { try $0.decode("source", as: String.self) }
        #expect(sources == ["http"])

        let cases: [(String, Int, String?)] = [
            (#"{"type": "wave", "enrollment_id": 1}"#, 400, "type"),
            (#"{"enrollment_id": 1}"#, 400, "type"),
            (#"{"type": "stop"}"#, 400, "email"),
            (#"{"type": "stop", "email": "ada@example.com", "enrollment_id": 1}"#, 400, "email"),
            (#"{"type": "stop", "enrollment_id": "1"}"#, 400, "enrollment_id"),
            (#"{"type": "stop", "enrollment_id": -4}"#, 400, "enrollment_id"),
            (#"{"type": "stop", "enrollment_id": 1.5}"#, 400, "enrollment_id"),
            (#"{"type": "stop", "enrollment_id": 1, "until": "2030-01-01T00:00:00Z"}"#, 400, "until"),
            (#"{"type": "pause", "enrollment_id": 1, "until": "tomorrow"}"#, 400, "until"),
            (#"{"type": "opt_out", "email": "ada@example.com", "sequence": "welcome"}"#, 400, "sequence"),
            (#"{"type": "stop", "enrollment_id": 1, "force": true}"#, 400, "force"),
            (#"{"type": "stop", "enrollment_id": 999999}"#, 404, "enrollment_id"),
            (#"{"type": "stop", "email": "who@example.com"}"#, 404, "email"),
            (#"{"type": "stop", "email": "ada@example.com", "sequence": "nope"}"#, 422, "sequence"),
        ]
        for (body, status, field) in cases {
            let reply = try await signal(body)
            #expect(reply.status == status, "\(body) → \(reply)")
            #expect(reply.json["field"] as? String == field, "\(body) → \(reply)")
        }
        try await harness.stop()
    }

    @Test("opt_out and bounce by address suppress it and end its live enrollments, even for an unknown address")
    func globalSignals() async throws {
        let harness = try await Harness.start(prefix: "optout")
        let enrollmentID = try await harness.enroll("ada@example.com")
        let reply = try await harness.request(.POST, "/v1/signals", json: #"{"type": "bounce", "email": "ada@example.com", "reason": "550 5.1.1"}"#)
        #expect(reply.status == 200, "\(reply)")
        #expect(reply.json["suppressed"] as? Bool == true)
        #expect(reply.json["changed"] as? Int == 1)
        let status = try harness.connect().query("SELECT status::text AS s FROM seqd.enrollments WHERE id = $1", [enrollmentID])[0]
            .decode("s", as: String.self)
        #expect(status == "bounced")
        let stranger = try await harness.request(.POST, "/v1/signals", json: #"{"type": "opt_out", "email": "stranger@example.com"}"#)
        #expect(stranger.status == 200)
        #expect(stranger.json["changed"] as? Int == 0)
        let suppressed = try harness.connect().query("SELECT count(*) AS n FROM seqd.suppressions")[0].decode("n", as: Int.self)
        #expect(suppressed == 2)
        try await harness.stop()
    }

    @Test("POST /v1/inbound: reply, bounce, ignored report (200); malformed 400 with the line; unmatched 422; finished 409")
    func inbound() async throws {
        let harness = try await Harness.start(prefix: "inbound", trustedAuthservID: "mx.example.com")
        let ada = try await harness.enroll("ada@example.org")
        let bob = try await harness.enroll("bob@example.org")
        let connection = try harness.connect()
        // Queue the first emails and record the Message-IDs the sender would (the composer derives
        // them from the delivery key).
        _ = try Advancer(actor: "test", installationID: harness.installationID).advanceBatch(connection, limit: 10)
        try InboundFixtures.recordMessageIDs(connection)
        let bobID: String = try connection.query(
            "SELECT message_id FROM seqd.deliveries WHERE enrollment_id = $1", [bob])[0].decode("message_id")
        func post(_ text: String) async throws -> Harness.Reply {
            try await harness.request(.POST, "/v1/inbound", body: text.replacingOccurrences(of: "\n", with: "\r\n"), contentType: "message/rfc822")
        }
        func status(_ id: Int64) throws -> String {
            try connection.query("SELECT status::text AS s FROM seqd.enrollments WHERE id = $1", [id])[0].decode("s")
        }

        // Issue 16: a From alone proves nothing; a guessed Message-ID neither; a forged report
        // bounces only the matched delivery's recipient.
        let fromOnly = try await post("From: Ada <ada@example.org>\nTo: team@example.com\nSubject: Re: Hi\n\nThanks!\n")
        #expect(fromOnly.status == 422, "\(fromOnly)")
        let bobKey: String = try connection.query("SELECT idempotency_key FROM seqd.deliveries WHERE enrollment_id = $1", [bob])[0]
            .decode("idempotency_key")
        let guessed = try await post("From: mallory@evil.example\nTo: team@example.com\nIn-Reply-To: <seqd.\(bobKey)@example.com>\n\nstop\n")
        #expect(guessed.status == 422, "\(guessed)")
        let victims = (0..<100).map { "Final-Recipient: rfc822; victim\($0)@example.net\nAction: failed\nStatus: 5.1.1\n" }.joined(separator: "\n")
        let forged = try await post(
            "From: MAILER-DAEMON@mx.evil.example\nContent-Type: multipart/report; report-type=delivery-status; boundary=R\n\n--R\nContent-Type: message/delivery-status\n\n\(victims)\n--R\nContent-Type: text/rfc822-headers\n\nMessage-ID: \(bobID)\n--R--\n")
        #expect(forged.status == 200, "\(forged)")
        #expect(forged.json["outcome"] as? String == "ignored")
        #expect(forged.json["ignored_recipients"] as? Int == 100)
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.suppressions")[0].decode("n", as: Int.self) == 0)
        #expect(try status(bob) == "active")

        let auth = InboundFixtures.authenticationResults(domain: "example.org")
        let reply = try await post("\(auth)\nFrom: Ada <ada@example.org>\nTo: team@example.com\nSubject: Re: Hi\n\nThanks!\n")
        #expect(reply.status == 200, "\(reply)")
        #expect(reply.json["outcome"] as? String == "applied")
        #expect(reply.json["classification"] as? String == "reply")
        #expect(reply.json["matched_by"] as? String == "sender address and sequence sender (dmarc=pass for example.org by mx.example.com)")
        #expect((reply.json["enrollments"] as? [[String: Any]])?.first?["to"] as? String == "replied")
        #expect(try status(ada) == "replied")
        let signal = try connection.query("SELECT kind, source FROM seqd.signals WHERE enrollment_id = $1", [ada])
        #expect(try signal.rows.map { "\(try $0.decode("kind", as: String.self))/\(try $0.decode("source", as: String.self))" } == ["reply/inbound"])
        let actor = try connection.query("SELECT actor FROM seqd.enrollment_events WHERE enrollment_id = $1 AND to_status = 'replied'", [ada])
        #expect(try actor[0].decode("actor", as: String.self) == "http:inbound")

        let again = try await post("\(auth)\nFrom: ada@example.org\nTo: team@example.com\n\nAnd another thing\n")
        #expect(again.status == 409, "\(again)")
        #expect(again.json["error"] as? String == "refused")
        #expect(again.json["status"] as? String == "replied")

        let delayed = try await post(
            "From: MAILER-DAEMON@mx.example.com\nContent-Type: multipart/report; report-type=delivery-status; boundary=R\n\n--R\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; bob@example.org\nAction: delayed\nStatus: 4.4.7\n\n--R\nContent-Type: text/rfc822-headers\n\nMessage-ID: \(bobID)\n--R--\n")
        #expect(delayed.status == 200, "\(delayed)")
        #expect(delayed.json["outcome"] as? String == "ignored")
        #expect(try status(bob) == "active")

        let bounce = try await post(
            "From: MAILER-DAEMON@mx.example.com\nContent-Type: multipart/report; report-type=delivery-status; boundary=R\n\n--R\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; bob@example.org\nAction: failed\nStatus: 5.1.1\n\n--R\nContent-Type: text/rfc822-headers\n\nMessage-ID: \(bobID)\n--R--\n")
        #expect(bounce.status == 200, "\(bounce)")
        #expect(bounce.json["classification"] as? String == "bounce")
        #expect(bounce.json["suppressed"] as? Int == 1)
        #expect(try status(bob) == "bounced")

        let malformed = try await post("From: ada@example.org\nno colon on this line\n\nbody")
        #expect(malformed.status == 400, "\(malformed)")
        #expect(malformed.json["error"] as? String == "malformed_message")
        #expect(malformed.json["line"] as? Int == 2)
        #expect((malformed.json["message"] as? String)?.hasPrefix("line 2: a header line without a colon") == true)
        let empty = try await harness.request(.POST, "/v1/inbound", body: "", contentType: "message/rfc822")
        #expect(empty.status == 400, "\(empty)")

        let unmatched = try await post("From: stranger@example.net\nTo: team@example.com\nIn-Reply-To: <nope@example.net>\n\nhi\n")
        #expect(unmatched.status == 422, "\(unmatched)")
        #expect(unmatched.json["error"] as? String == "unmatched")
        #expect(unmatched.json["classification"] as? String == "reply")

        // The access log names the route, never the addresses the messages carried.
        for entry in harness.logs.entries { #expect(!entry.text.contains("example.org"), "\(entry.text)") }
        try await harness.stop()
    }
}
