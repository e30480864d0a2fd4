import Foundation
import Hummingbird
import SequenceEngine
import SequenceStore

/// `POST /v1/inbound`: a raw RFC 5322 message as the body, handled exactly as `seqd inbound`
/// handles it (`InboundMessage`, `InboundMail`), for mail systems that deliver to a webhook.
extension Handlers {
    /// Recorded as the actor of changes made by inbound mail posted to the API.
    static let inboundActor = "http:inbound"

    func inbound(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: InboundMessage.maxSize)
        let bytes = Array(body.readableBytesView)
        let installationID = self.installationID
        let resumeAfter = TimeInterval(oooResumeAfter.components.seconds)
        let trust = inboundTrust
        // Parsing a large message is real work: it runs on the connection's thread with the rest,
        // never on the event loop.
        let result = try await pool.run { connection -> InboundResult in
            let message: InboundMessage
            do {
                message = try InboundMessage.parse(bytes)
            } catch let error as InboundMessageError {
                var extra = [String: JSONValue]()
                if let line = error.line { extra["line"] = .integer(Int64(line)) }
                throw APIError(.badRequest, "malformed_message", error.description, extra: extra)
            }
            return try InboundMail(actor: Self.inboundActor, installationID: installationID, oooResumeAfter: resumeAfter, trust: trust)
                .process(message, using: connection)
        }
        // As the CLI: a reply or bounce answers only after a send already under way settled, but
        // waiting holds no pooled connection (see InFlightWaiter).
        let settled = result.outcome == .applied
            ? await inFlight.wait(contacts: [], enrollmentIDs: result.enrollments.filter { $0.refused == nil }.map(\.id)) : true
        let json = Self.json(result, inFlightSettled: settled)
        switch result.outcome {
        case .applied, .ignored:
            return JSONResponse.make(.ok, json)
        case .unmatched:
            throw APIError(.unprocessableContent, "unmatched", result.note ?? "nothing matched", extra: json.fields)
        case .refused:
            let status = result.enrollments.first.map { $0.from } ?? result.note.flatMap(Self.finishedStatus)
            throw APIError(.conflict, "refused", result.note ?? "refused", currentStatus: status, extra: json.fields)
        }
    }

    /// The first status named in "no live enrollment (finished: completed, replied)".
    static func finishedStatus(_ note: String) -> String? {
        guard let range = note.range(of: "finished: ") else { return nil }
        return note[range.upperBound...].split(whereSeparator: { $0 == "," || $0 == ")" }).first.map(String.init)
    }

    /// The same fields as `seqd inbound --json`.
    static func json(_ result: InboundResult, inFlightSettled: Bool) -> JSONValue {
        func text(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
        return .object([
            "outcome": .string(result.outcome.rawValue), "classification": .string(result.classification),
            "detail": text(result.detail), "message_id": text(result.messageID), "matched_by": text(result.matchedBy),
            "return_date": text(result.returnDate), "resume_at": text(result.resumeAt.map(rfc3339)),
            "suppressed": .integer(Int64(result.suppressed)), "ignored_recipients": .integer(Int64(result.ignoredRecipients)),
            "note": text(result.note), "in_flight_settled": .bool(inFlightSettled),
            "enrollments": .array(
                result.enrollments.map { enrollment in
                    .object([
                        "id": .integer(enrollment.id), "sequence": .string(enrollment.sequence), "from": .string(enrollment.from),
                        "to": text(enrollment.to), "refused": text(enrollment.refused), "note": text(enrollment.note),
                    ])
                }),
        ])
    }
}

extension JSONValue {
    /// An object's members (empty for anything else), to merge into an error body.
    var fields: [String: JSONValue] {
        if case .object(let members) = self { return members }
        return [:]
    }
}
