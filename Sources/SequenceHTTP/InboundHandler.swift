import Foundation
import Hummingbird
import Mail
import SeqdApplication
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
        let outcome: Operations.InboundOutcome
        do {
            // Parsing a large message is real work: the application runs it on the connection's
            // thread, never on the event loop. As the CLI, a reply or bounce answers only after a
            // send already under way settled.
            outcome = try await operations.acting(as: Actor(name: Self.inboundActor, source: "http")).inbound(
                { try InboundMessage.parse(bytes) }, trust: inboundTrust, oooResumeAfter: TimeInterval(oooResumeAfter.components.seconds))
        } catch let error as InboundMessageError {
            var extra = [String: JSONValue]()
            if let line = error.line { extra["line"] = .integer(Int64(line)) }
            throw APIError(.badRequest, "malformed_message", error.description, extra: extra)
        }
        let (result, settled) = (outcome.result, outcome.inFlightSettled)
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
