import Foundation
import Hummingbird
import SeqdApplication
import SequenceEngine
import SequenceStore

/// The rest of what the CLI can do, for a CRM that integrates over HTTP: sequences (list, show,
/// apply, pause, resume), enrollments (list with a cursor, one with its history, its deliveries),
/// status counts, the global send switch, and contact export and erasure. Every handler parses
/// and renders only; the work is `Operations`'.
extension Handlers {
    // MARK: Sequences

    func listSequences(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        try Self.query(request, allowed: [])
        let sequences = try await operations.sequences()
        return JSONResponse.make(.ok, .object(["sequences": .array(sequences.map(Self.json))]))
    }

    func showSequence(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try Self.sequenceName(context)
        let query = try Self.query(request, allowed: ["version"])
        let version = try query["version"].map { text -> Int in
            let version = try Self.positiveInteger(text, field: "version")
            guard version <= Int32.max else { throw APIError(.badRequest, "invalid_parameter", "no sequence has that many versions", field: "version") }
            return Int(version)
        }
        let stored: StoredSequenceVersion
        do {
            stored = try await operations.sequence(name, version: version)
        } catch let error as ApplicationError where error.kind == .notFound {
            throw APIError(.notFound, "not_found", error.message, field: version == nil ? "name" : "version")
        }
        var response = JSONResponse.make(.ok, try Self.json(stored))
        // The ETag names the latest version: a client sends it back in If-Match when it changes
        // the sequence, so it cannot replace a version it has not seen.
        if stored.version == stored.latestVersion { response.headers[.eTag] = Self.eTag(version: stored.version) }
        return response
    }

    func applySequence(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try Self.sequenceName(context)
        try Self.query(request, allowed: [])
        var request = request
        let body = try await request.collectBody(upTo: Self.maxSequenceSize)
        let definition: SequenceDefinition
        do {
            definition = try SequenceDefinition.parse(Data(body.readableBytesView), fileName: "body")
        } catch {
            throw APIError(
                .unprocessableContent, "invalid_sequence", error.issues.map(\.description).joined(separator: "\n"),
                extra: [
                    "issues": .array(error.issues.map { .object(["path": .string($0.path), "message": .string($0.message)]) }),
                ])
        }
        guard definition.name == name else {
            throw APIError(
                .unprocessableContent, "invalid_sequence", "the body defines '\(definition.name)', not '\(name)' as the path says",
                field: "name")
        }
        let expected = try request.headers[.ifMatch].map { header -> Int in
            guard let version = Self.version(fromETag: header) else {
                throw APIError(.badRequest, "invalid_header", "If-Match must be an ETag this API gave, such as \"v3\"", field: "If-Match")
            }
            return version
        }
        let applied = try await operations.applySequence(definition, ifLatestVersion: expected)
        var response = JSONResponse.make(
            applied.created ? .created : .ok,
            .object(["name": .string(applied.name), "version": .integer(Int64(applied.version)), "created": .bool(applied.created)]))
        response.headers[.eTag] = Self.eTag(version: applied.version)
        return response
    }

    func pauseSequence(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try Self.sequenceName(context)
        try Self.query(request, allowed: [])
        return JSONResponse.make(.ok, Self.json(try await operations.pauseSequence(name)))
    }

    func resumeSequence(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let name = try Self.sequenceName(context)
        try Self.query(request, allowed: [])
        return JSONResponse.make(.ok, Self.json(try await operations.resumeSequence(name)))
    }

    // MARK: Enrollments

    func listEnrollments(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let query = try Self.query(request, allowed: ["sequence", "status", "limit", "cursor"])
        let status = try query["status"].map { text -> EnrollmentStatus in
            guard let status = EnrollmentStatus(rawValue: text) else {
                throw APIError(
                    .badRequest, "invalid_parameter",
                    "unknown status '\(text)' (one of: \(EnrollmentStatus.allCases.map(\.rawValue).joined(separator: ", ")))", field: "status")
            }
            return status
        }
        let limit = try query["limit"].map { try Self.positiveInteger($0, field: "limit") } ?? 100
        guard limit <= EnrollmentPage.maximumLimit else {
            throw APIError(.badRequest, "invalid_parameter", "limit is at most \(EnrollmentPage.maximumLimit)", field: "limit")
        }
        let cursor = try query["cursor"].map { try Self.positiveInteger($0, field: "cursor") } ?? 0
        if let sequence = query["sequence"] { try Self.checkName(sequence, field: "sequence") }
        let page = try await operations.enrollments(sequence: query["sequence"], status: status, after: cursor, limit: Int(limit))
        return JSONResponse.make(
            .ok,
            .object([
                "enrollments": .array(page.items.map(Self.json)),
                "next_cursor": page.nextCursor.map { .string(String($0)) } ?? .null,
            ]))
    }

    func showEnrollment(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.pathID(context)
        try Self.query(request, allowed: [])
        let (contactID, enrollment) = try await operations.enrollment(id: id)
        guard case .object(var fields) = Self.json(enrollment) else { return JSONResponse.make(.ok, .null) }
        fields["contact_id"] = .integer(contactID)
        return JSONResponse.make(.ok, .object(fields))
    }

    func enrollmentDeliveries(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.pathID(context)
        try Self.query(request, allowed: [])
        let (_, enrollment) = try await operations.enrollment(id: id)
        return JSONResponse.make(
            .ok, .object(["enrollment_id": .integer(id), "deliveries": .array(enrollment.deliveries.map(Self.json))]))
    }

    // MARK: Status and the send switch

    func status(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let query = try Self.query(request, allowed: ["sequence"])
        if let sequence = query["sequence"] { try Self.checkName(sequence, field: "sequence") }
        let report = try await operations.status(sequence: query["sequence"], longTransactionWarning: longTransactionWarning)
        return JSONResponse.make(
            .ok,
            .object([
                "at": .string(rfc3339(report.at)), "due_backlog": .integer(Int64(report.dueBacklog)),
                "oldest_due_seconds": .number(report.oldestDueSeconds),
                "warning": report.heldTransaction.map { .string($0.warning) } ?? .null,
                "counts": .array(
                    report.lines.map { line in
                        .object([
                            "sequence": .string(line.sequence), "version": .integer(Int64(line.version)), "step": .string(line.step),
                            "status": .string(line.status), "count": .integer(Int64(line.count)),
                        ])
                    }),
            ]))
    }

    func sending(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        try Self.query(request, allowed: [])
        return JSONResponse.make(.ok, Self.json(try await operations.sendSwitch()))
    }

    func setSending(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        try Self.query(request, allowed: [])
        let body = try await jsonBody(request, allowed: ["paused"])
        guard let paused = try body.bool("paused") else {
            throw APIError(.badRequest, "missing_field", "field 'paused' is required", field: "paused")
        }
        // Idempotent: setting the state it already has changes nothing.
        return JSONResponse.make(.ok, Self.json(try await operations.setSendSwitch(paused: paused)))
    }

    // MARK: Contacts: export and erasure

    func exportContact(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.pathID(context)
        try Self.query(request, allowed: [])
        let json = try await operations.exportContact(id: id)
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.xContentTypeOptions] = "nosniff"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: json + "\n")))
    }

    func eraseContact(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try Self.pathID(context)
        try Self.query(request, allowed: [])
        try await operations.eraseContact(id: id)
        return JSONResponse.make(.ok, .object(["id": .integer(id), "erased": .bool(true)]))
    }

    // MARK: Parsing

    /// Largest sequence definition `PUT /v1/sequences/{name}` reads.
    static let maxSequenceSize = 1 << 20

    /// The query parameters, refusing any the route does not take (a misspelt filter would
    /// otherwise silently widen a listing).
    @discardableResult
    static func query(_ request: Request, allowed: Set<String>) throws -> [String: String] {
        var values = [String: String]()
        for (key, value) in request.uri.queryParameters {
            let key = String(key)
            guard allowed.contains(key) else {
                let accepted = allowed.isEmpty ? "none" : allowed.sorted().joined(separator: ", ")
                throw APIError(.badRequest, "unknown_parameter", "unknown query parameter '\(key)' (accepted: \(accepted))", field: key)
            }
            guard values.updateValue(String(value), forKey: key) == nil else {
                throw APIError(.badRequest, "invalid_parameter", "query parameter '\(key)' is given twice", field: key)
            }
        }
        return values
    }

    static func positiveInteger(_ text: String, field: String) throws -> Int64 {
        guard let value = Int64(text), value > 0 else {
            throw APIError(.badRequest, "invalid_parameter", "'\(field)' must be a positive integer", field: field)
        }
        return value
    }

    static func pathID(_ context: BasicRequestContext) throws -> Int64 {
        guard let text = context.parameters.get("id"), let id = Int64(text), id > 0 else {
            throw APIError(.badRequest, "invalid_parameter", "the id must be a positive integer", field: "id")
        }
        return id
    }

    static func sequenceName(_ context: BasicRequestContext) throws -> String {
        let name = context.parameters.get("name") ?? ""
        try checkName(name, field: "name")
        return name
    }

    /// Sequence names as the parser allows them.
    static func checkName(_ name: String, field: String) throws {
        guard SequenceDefinition.isValidName(name) else {
            throw APIError(
                .badRequest, "invalid_parameter", "'\(field)' must match \(SequenceDefinition.namePattern) (at most \(SequenceDefinition.maxNameLength) characters)",
                field: field)
        }
    }

    static func eTag(version: Int) -> String { "\"v\(version)\"" }

    static func version(fromETag header: String) -> Int? {
        let text = header.trimmingCharacters(in: .whitespaces)
        guard text.hasPrefix("\"v"), text.hasSuffix("\""), text.count > 3 else { return nil }
        return Int(text.dropFirst(2).dropLast())
    }

    // MARK: JSON

    static func json(_ summary: SequenceSummary) -> JSONValue {
        .object([
            "name": .string(summary.name), "latest_version": summary.latestVersion.map { .integer(Int64($0)) } ?? .null,
            "live": .integer(Int64(summary.live)), "finished": .integer(Int64(summary.finished)),
            "paused_at": summary.pausedAt.map { .string(rfc3339($0)) } ?? .null,
        ])
    }

    static func json(_ stored: StoredSequenceVersion) throws -> JSONValue {
        .object([
            "name": .string(stored.name), "version": .integer(Int64(stored.version)),
            "latest_version": .integer(Int64(stored.latestVersion)), "content_hash": .string(stored.contentHash),
            "created_at": .string(rfc3339(stored.createdAt)), "created_by": .string(stored.createdBy),
            "paused_at": stored.pausedAt.map { .string(rfc3339($0)) } ?? .null,
            // The definition as stored (canonical JSON): what `seqd sequence show --json` prints.
            "definition": try JSONDecoder().decode(JSONValue.self, from: stored.definition.canonicalJSON()),
        ])
    }

    static func json(_ result: SequencePauseResult) -> JSONValue {
        .object([
            "name": .string(result.name), "paused_at": .string(rfc3339(result.pausedAt)),
            "resumed_at": result.resumedAt.map { .string(rfc3339($0)) } ?? .null,
            "shifted_enrollments": .integer(Int64(result.shiftedEnrollments)),
        ])
    }

    static func json(_ item: EnrollmentPage.Item) -> JSONValue {
        .object([
            "id": .integer(item.id), "contact_id": .integer(item.contactID), "sequence": .string(item.sequence),
            "version": .integer(Int64(item.version)), "step": .string(item.stepKey), "status": .string(item.status),
            "next_run_at": item.nextRunAt.map { .string(rfc3339($0)) } ?? .null, "updated_at": .string(rfc3339(item.updatedAt)),
        ])
    }

    static func json(_ state: SendSwitch.State) -> JSONValue {
        .object([
            "paused": .bool(state.paused), "since": state.since.map { .string(rfc3339($0)) } ?? .null,
            "pending_deliveries": .integer(Int64(state.pendingDeliveries)),
        ])
    }
}
