import Foundation
import NIOHTTP1
import Postgres
import SequenceEngine
import SequenceStore
import Testing
import TestSupport

/// `POST /v1/events`: once per key, triggers, goals, and hostile bodies refused by field.
@Suite("POST /v1/events")
struct EventsAPITests {
    static let trial = """
        name: trial
        sender: { address: team@example.com }
        trigger: { event: trial_started }
        exit_when: [{ event: meeting_booked }]
        steps:
          - { key: welcome, type: email, subject: "Your {{event.plan|free}} trial", body: "Hi" }
          - { type: wait, duration: 1d }
          - { key: nudge, type: email, subject: "Still there?", body: "..." }
        """

    func start(_ prefix: String) async throws -> Harness {
        let harness = try await Harness.start(prefix: prefix)
        try SequenceCatalog.apply(try harness.connect(), [try SequenceDefinition.parse(Self.trial, fileName: "trial.yaml")])
        return harness
    }

    @Test("the same event posted twice enrolls once: 201, then 200 with duplicate true")
    func postedTwice() async throws {
        let harness = try await start("events_twice")
        let body = #"{"contact": "ada@example.com", "name": "trial_started", "key": "signup-1", "properties": {"plan": "pro", "seats": 3}, "occurred_at": "2026-12-07T09:00:00Z"}"#
        let first = try await harness.request(.POST, "/v1/events", json: body)
        #expect(first.status == 201, "\(first)")
        #expect(first.json["duplicate"] as? Bool == false)
        #expect(first.json["contact_created"] as? Bool == true)
        let enrolled = try #require(first.json["enrolled"] as? [[String: Any]])
        #expect(enrolled.count == 1 && enrolled[0]["sequence"] as? String == "trial")
        let second = try await harness.request(.POST, "/v1/events", json: body)
        #expect(second.status == 200, "\(second)")
        #expect(second.json["duplicate"] as? Bool == true)
        #expect(second.json["event_id"] as? Int == first.json["event_id"] as? Int)
        #expect((second.json["enrolled"] as? [Any])?.isEmpty == true)
        let connection = try harness.connect()
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.enrollments")[0].decode("n", as: Int.self) == 1)
        let stored = try connection.query("SELECT properties::text AS p, source FROM seqd.events")[0]
        #expect(try stored.decode("p", as: String.self) == #"{"plan": "pro", "seats": "3"}"#)
        #expect(try stored.decode("source", as: String.self) == "http")
        let properties = try connection.query("SELECT event_properties::text AS p FROM seqd.enrollments")[0].decode("p", as: String.self)
        #expect(properties == #"{"plan": "pro", "seats": "3"}"#)
        try await harness.stop()
    }

    @Test("an event that meets exit_when converts the live enrollment at once")
    func eventConverts() async throws {
        let harness = try await start("events_goal")
        let started = try await harness.request(.POST, "/v1/events", json: #"{"contact": "ada@example.com", "name": "trial_started", "key": "k1"}"#)
        let enrollmentID = try #require((started.json["enrolled"] as? [[String: Any]])?.first?["enrollment_id"] as? Int)
        let booked = try await harness.request(.POST, "/v1/events", json: #"{"contact": "ada@example.com", "name": "meeting_booked", "key": "k2"}"#)
        #expect(booked.status == 201, "\(booked)")
        let converted = try #require(booked.json["converted"] as? [[String: Any]])
        #expect(converted.count == 1 && converted[0]["enrollment_id"] as? Int == enrollmentID)
        #expect(converted[0]["goal"] as? String == #"exit_when[0] {"event":"meeting_booked"}"#)
        let status = try harness.connect().query("SELECT status::text AS s FROM seqd.enrollments WHERE id = $1", [Int64(enrollmentID)])[0]
        #expect(try status.decode("s", as: String.self) == "converted")
        // A converted contact is not enrolled again by a later trigger (enrolled before).
        let again = try await harness.request(.POST, "/v1/events", json: #"{"contact": "ada@example.com", "name": "trial_started", "key": "k3"}"#)
        let skipped = try #require(again.json["skipped"] as? [[String: Any]])
        #expect(skipped.first?["reason"] as? String == "enrolled_before", "\(again)")
        try await harness.stop()
    }

    @Test("hostile bodies are refused naming the field, and write nothing")
    func hostile() async throws {
        let harness = try await start("events_hostile")
        let manyProperties = "{" + (0...50).map { "\"p\($0)\": \"v\"" }.joined(separator: ", ") + "}"
        let cases: [(String, Int, String, String?)] = [
            (#"{"name": "x", "key": "k"}"#, 400, "missing_field", "contact"),
            (#"{"contact": "a@example.com", "key": "k"}"#, 400, "missing_field", "name"),
            (#"{"contact": "a@example.com", "name": "x"}"#, 400, "missing_field", "key"),
            (#"{"contact": "a@example.com", "name": "x", "key": "k", "extra": 1}"#, 400, "unknown_field", "extra"),
            (#"{"contact": "not an address", "name": "x", "key": "k"}"#, 422, "invalid_field", "contact"),
            (#"{"contact": "a@example.com", "name": "bad name", "key": "k"}"#, 422, "invalid_field", "name"),
            (#"{"contact": "a@example.com", "name": "x", "key": "a\u0000b"}"#, 400, "invalid_field", "key"),
            (#"{"contact": "a@example.com", "name": "x", "key": "a\nb"}"#, 422, "invalid_field", "key"),
            ("{\"contact\": \"a@example.com\", \"name\": \"x\", \"key\": \"\(String(repeating: "k", count: 201))\"}", 400, "invalid_field", "key"),
            (#"{"contact": "a@example.com", "name": "x", "key": "k", "properties": {"a-b": "1"}}"#, 422, "invalid_field", "properties"),
            (#"{"contact": "a@example.com", "name": "x", "key": "k", "properties": {"p": {"nested": 1}}}"#, 400, "invalid_field", "properties.p"),
            ("{\"contact\": \"a@example.com\", \"name\": \"x\", \"key\": \"k\", \"properties\": {\"p\": \"\(String(repeating: "v", count: 1_001))\"}}", 422, "invalid_field", "properties.p"),
            ("{\"contact\": \"a@example.com\", \"name\": \"x\", \"key\": \"k\", \"properties\": \(manyProperties)}", 422, "invalid_field", "properties"),
            (#"{"contact": "a@example.com", "name": "x", "key": "k", "occurred_at": "yesterday"}"#, 400, "invalid_field", "occurred_at"),
        ]
        for (body, status, code, field) in cases {
            let reply = try await harness.request(.POST, "/v1/events", json: body)
            #expect(reply.status == status, "\(body.prefix(120)): \(reply)")
            #expect(reply.json["error"] as? String == code, "\(body.prefix(120)): \(reply)")
            #expect(reply.json["field"] as? String == field, "\(body.prefix(120)): \(reply)")
        }
        let connection = try harness.connect()
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.events")[0].decode("n", as: Int.self) == 0)
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.contacts")[0].decode("n", as: Int.self) == 0)
        try await harness.stop()
    }
}
