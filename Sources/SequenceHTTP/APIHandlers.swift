import Foundation
import Hummingbird
import Metrics
import SeqdApplication
import SequenceEngine
import SequenceStore

/// The `/v1` API. Every action goes through the application layer the CLI uses (`Operations`),
/// so the state machine and the audit trail cannot tell an API call from a command.
extension Handlers {
    /// Recorded as the actor of API changes in `enrollment_events`.
    static let apiActor = "http:api"

    // MARK: POST /v1/contacts

    func upsertContact(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let body = try await jsonBody(request, allowed: ["email", "first_name", "last_name", "time_zone", "attributes"])
        let email = try body.string("email", required: true, maxLength: 254)!
        if let problem = EmailAddress.problem(email) {
            throw APIError(.unprocessableContent, "invalid_field", problem, field: "email")
        }
        let timeZone = try body.string("time_zone", maxLength: 100)
        if let timeZone, !TimeZones.isValid(timeZone) {
            throw APIError(
                .unprocessableContent, "invalid_field", "unknown time zone '\(timeZone)' (use an IANA name such as Europe/Berlin)",
                field: "time_zone")
        }
        let contact = ContactFields(
            email: email, firstName: try body.string("first_name"), lastName: try body.string("last_name"),
            timeZone: timeZone, attributes: try body.attributes("attributes"))
        let (summary, id) = try await operations.upsertContact(contact)
        guard let id else { throw APIError(.internalServerError, "internal_error", "the contact was not stored") }
        let result = summary.created > 0 ? "created" : summary.updated > 0 ? "updated" : "unchanged"
        if !summary.converted.isEmpty {
            Counter(label: "seqd_conversions_total", dimensions: [("source", "contact")]).increment(by: summary.converted.count)
        }
        return JSONResponse.make(
            summary.created > 0 ? .created : .ok,
            .object([
                "id": .integer(id), "result": .string(result),
                "converted": .array(summary.converted.map { .object(["enrollment_id": .integer($0.enrollmentID), "sequence": .string($0.sequence), "goal": .string($0.goal)]) }),
            ]))
    }

    // MARK: POST /v1/events

    func recordEvent(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let body = try await jsonBody(request, allowed: ["contact", "name", "key", "properties", "occurred_at"])
        let email = try body.string("contact", required: true, maxLength: 254)!
        if let problem = EmailAddress.problem(email) {
            throw APIError(.unprocessableContent, "invalid_field", problem, field: "contact")
        }
        var occurredAt: Date?
        if let text = try body.string("occurred_at", maxLength: 64) {
            guard let date = Self.rfc3339Date(text) else {
                throw APIError(.badRequest, "invalid_field", "'occurred_at' must be an RFC 3339 time such as 2026-12-07T09:00:00Z", field: "occurred_at")
            }
            occurredAt = date
        }
        let name = try body.string("name", required: true, maxLength: IncomingEvent.maxNameLength)!
        let key = try body.string("key", required: true, maxLength: IncomingEvent.maxKeyLength)!
        let properties = try body.attributes("properties")
        let event: IncomingEvent
        do {
            event = try IncomingEvent(email: email, name: name, key: key, properties: properties, occurredAt: occurredAt)
        } catch {
            throw APIError(.unprocessableContent, "invalid_field", "'\(error.field)' \(error.message)", field: error.field)
        }
        let outcome = try await operations.recordEvent(event)
        Counter(label: "seqd_events_total", dimensions: [("result", outcome.duplicate ? "duplicate" : "recorded")]).increment()
        if !outcome.converted.isEmpty {
            Counter(label: "seqd_conversions_total", dimensions: [("source", "event")]).increment(by: outcome.converted.count)
        }
        // A retry is not an error: it is answered 200 with `duplicate: true`, the first time 201.
        let json = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(outcome))
        return JSONResponse.make(outcome.duplicate ? .ok : .created, json)
    }

    // MARK: POST /v1/enrollments

    func enroll(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let body = try await jsonBody(request, allowed: ["sequence", "email", "contact_id", "allow_reenroll"])
        let sequence = try body.string("sequence", required: true, maxLength: 200)!
        let email = try body.string("email", maxLength: 254)
        let givenID = try body.integer("contact_id")
        guard (email == nil) != (givenID == nil) else {
            throw APIError(.badRequest, "missing_field", "give exactly one of 'email' and 'contact_id'", field: "email")
        }
        let allowReenroll = try body.bool("allow_reenroll") ?? false
        let contactField = email != nil ? "email" : "contact_id"
        let enrollment: SingleEnrollment?
        do {
            enrollment = try await operations.enroll(
                sequence: sequence, contact: email.map { .email($0) } ?? .id(givenID!), allowReenroll: allowReenroll)
        } catch let error as ApplicationError where error.kind == .notFound {
            throw APIError(.unprocessableContent, "unknown_sequence", error.message, field: "sequence")
        }
        guard let enrollment else {
            if email != nil {
                throw APIError(
                    .unprocessableContent, "unknown_contact", "no contact with that address: create it with POST /v1/contacts", field: "email")
            }
            throw APIError(.unprocessableContent, "unknown_contact", "no contact with id \(givenID!)", field: "contact_id")
        }
        let (summary, contactID, latest) = (enrollment.summary, enrollment.contactID, enrollment.latest)
        var ids: [String: JSONValue] = ["contact_id": .integer(contactID), "sequence": .string(sequence)]
        if let latest { ids["enrollment_id"] = .integer(latest.id) }
        if summary.enrolled == 1, let latest {
            ids["version"] = .integer(Int64(summary.version))
            ids["status"] = .string(latest.status)
            return JSONResponse.make(.created, .object(ids))
        }
        if summary.alreadyLive > 0 {
            throw APIError(
                .conflict, "already_enrolled", "the contact already has a live enrollment in '\(sequence)'",
                currentStatus: latest?.status, extra: ids)
        }
        if summary.enrolledBefore > 0 {
            throw APIError(
                .conflict, "enrolled_before",
                "the contact went through '\(sequence)' before; send \"allow_reenroll\": true to enroll again",
                currentStatus: latest?.status, extra: ids)
        }
        if summary.suppressed > 0 {
            throw APIError(.conflict, "suppressed", "the address is on the suppression list", field: contactField, extra: ids)
        }
        if summary.missingTemplateFields > 0 {
            ids["missing_fields"] = .array(summary.missingFields.keys.sorted().map { .string($0) })
            throw APIError(
                .unprocessableContent, "missing_template_fields",
                "the contact lacks template fields without fallback: \(summary.missingFields.keys.sorted().joined(separator: ", "))",
                field: contactField, extra: ids)
        }
        throw APIError(.unprocessableContent, "unknown_contact", "the contact no longer exists", field: contactField)
    }

    // MARK: GET /v1/contacts/{id}/enrollments

    func contactEnrollments(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else {
            throw APIError(.badRequest, "invalid_parameter", "the contact id must be a positive integer", field: "id")
        }
        let inspection: Inspection
        do {
            inspection = try await operations.inspect(contactID: id)
        } catch let error as ApplicationError where error.kind == .notFound {
            throw APIError(.notFound, "not_found", "no contact with id \(id)", field: "id")
        }
        return JSONResponse.make(.ok, Self.json(inspection, contactID: id))
    }

    static func json(_ inspection: Inspection, contactID: Int64) -> JSONValue {
        .object([
            "contact_id": .integer(contactID),
            "email": .string(inspection.email),
            "suppressed": .bool(inspection.suppressed),
            "enrollments": .array(inspection.enrollments.map(json)),
        ])
    }

    /// One enrollment with its audit history and deliveries, as every API answer shows it.
    static func json(_ enrollment: Inspection.Enrollment) -> JSONValue {
        func time(_ date: Date?) -> JSONValue { date.map { .string(rfc3339($0)) } ?? .null }
        func text(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
        return .object([
            "id": .integer(enrollment.id), "sequence": .string(enrollment.sequence),
            "version": .integer(Int64(enrollment.version)), "step": .string(enrollment.stepKey),
            "status": .string(enrollment.status), "blocked_reason": .string(enrollment.blockedReason),
            "next_run_at": time(enrollment.nextRunAt),
            "events": .array(
                enrollment.events.map { event in
                    .object([
                        "at": time(event.at), "event": .string(event.event), "from_status": text(event.fromStatus),
                        "to_status": .string(event.toStatus), "from_step": text(event.fromStep),
                        "to_step": .string(event.toStep), "actor": .string(event.actor), "reason": text(event.reason),
                    ])
                }),
            "deliveries": .array(enrollment.deliveries.map(json)),
        ])
    }

    static func json(_ delivery: Inspection.Delivery) -> JSONValue {
        .object([
            "id": .integer(delivery.id), "step": .string(delivery.stepKey),
            "status": .string(delivery.status), "attempts": .integer(Int64(delivery.attempts)),
            "sent_at": delivery.sentAt.map { .string(rfc3339($0)) } ?? .null, "last_error": delivery.lastError.map { .string($0) } ?? .null,
        ])
    }

    // MARK: POST /v1/signals

    /// Signal types the API accepts, as the issue names them.
    static let signalTypes = ["reply", "opt_out", "bounce", "pause", "resume", "stop"]

    func signal(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let body = try await jsonBody(request, allowed: ["type", "email", "enrollment_id", "sequence", "reason", "until"])
        let type = try body.string("type", required: true, maxLength: 20)!
        let until: Date?
        if let text = try body.string("until", maxLength: 64) {
            guard type == "pause" else { throw APIError(.badRequest, "invalid_field", "'until' goes with type pause only", field: "until") }
            guard let date = Self.rfc3339Date(text) else {
                throw APIError(.badRequest, "invalid_field", "'until' must be an RFC 3339 time such as 2026-12-27T09:00:00Z", field: "until")
            }
            until = date
        } else {
            until = nil
        }
        let event: OperatorEvent
        switch type {
        case "reply": event = .reply
        case "opt_out": event = .optOut
        case "bounce": event = .bounce
        case "pause": event = .pause(until: until)
        case "resume": event = .resume
        case "stop": event = .stop
        default:
            throw APIError(
                .badRequest, "invalid_field", "unknown signal type '\(type)' (one of: \(Self.signalTypes.joined(separator: ", ")))",
                field: "type")
        }
        let email = try body.string("email", maxLength: 254)
        let enrollmentID = try body.integer("enrollment_id")
        guard (email == nil) != (enrollmentID == nil) else {
            throw APIError(.badRequest, "missing_field", "give exactly one of 'email' and 'enrollment_id'", field: "email")
        }
        if let email, let problem = EmailAddress.problem(email) {
            throw APIError(.unprocessableContent, "invalid_field", problem, field: "email")
        }
        let sequence = try body.string("sequence", maxLength: 200)
        if sequence != nil && (email == nil || event.isGlobal) {
            throw APIError(
                .badRequest, "invalid_field",
                event.isGlobal ? "\(type) is global (the suppression list); 'sequence' does not apply" : "'sequence' goes with 'email'",
                field: "sequence")
        }
        let reason = try body.string("reason", maxLength: 1_000)
        let target: OperatorTarget = enrollmentID.map { .enrollment($0) } ?? .contacts([email!], sequence: sequence)
        let result: Operations.SignalResult
        do {
            // As the CLI: signals that stop mail answer once a send under way has settled.
            result = try await operations.signal(event, to: target, reason: reason)
        } catch let error as ApplicationError where error.kind == .notFound {
            if enrollmentID != nil { throw APIError(.notFound, "not_found", error.message, field: "enrollment_id") }
            throw APIError(.unprocessableContent, "unknown_sequence", error.message, field: "sequence")
        }
        return try Self.signalResponse(type: type, outcome: result.outcomes[0], inFlightSettled: result.inFlightSettled)
    }

    /// One subject per request, so one outcome: success with what changed, or the refusal with
    /// the current status.
    static func signalResponse(type: String, outcome: OperatorOutcome, inFlightSettled: Bool) throws -> Response {
        let results = outcome.results
        if !outcome.suppressed {
            guard outcome.contactFound else {
                throw APIError(.notFound, "unknown_contact", "no contact with that address", field: "email")
            }
            if results.isEmpty {
                if let latest = outcome.finishedStatuses.first {
                    throw APIError(
                        .conflict, "no_live_enrollment",
                        "no live enrollment (finished: \(outcome.finishedStatuses.joined(separator: ", ")))", currentStatus: latest)
                }
                throw APIError(.notFound, "no_enrollment", "the contact has no enrollment to \(type)", field: "email")
            }
            if let refused = results.first?.refusal, results.allSatisfy({ $0.refusal != nil }) {
                throw APIError(
                    .conflict, "invalid_transition", "enrollment \(results[0].enrollmentID) is \(refused.description)",
                    currentStatus: results[0].from.rawValue,
                    extra: ["enrollment_id": .integer(results[0].enrollmentID)])
            }
        }
        let changed = results.filter { $0.refusal == nil }.count
        return JSONResponse.make(
            .ok,
            .object([
                "type": .string(type), "suppressed": .bool(outcome.suppressed), "changed": .integer(Int64(changed)),
                "in_flight_settled": .bool(inFlightSettled),
                "enrollments": .array(
                    results.map { result in
                        .object([
                            "id": .integer(result.enrollmentID), "sequence": .string(result.sequenceName),
                            "from": .string(result.from.rawValue), "to": result.to.map { .string($0.rawValue) } ?? .null,
                            "refused": result.refusal.map { .string($0.description) } ?? .null,
                        ])
                    }),
            ]))
    }

    // MARK: Helpers

    func jsonBody(_ request: Request, allowed: Set<String>) async throws -> JSONBody {
        var request = request
        let buffer = try await request.collectBody(upTo: JSONBody.maxSize)
        return try JSONBody(buffer, allowed: allowed)
    }
}

extension Handlers {
    /// An RFC 3339 date-time as JSON Schema's `date-time` format allows it: any offset or `Z`,
    /// optional fractional seconds, `T` and `Z` in either case.
    static func rfc3339Date(_ text: String) -> Date? {
        let text = text.uppercased()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds]] {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return date }
        }
        return nil
    }
}

/// RFC 3339 with milliseconds in UTC, as the CLI prints times.
func rfc3339(_ date: Date) -> String {
    date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
}
