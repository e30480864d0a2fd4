import Foundation
import Hummingbird
import SeqdApplication
import SequenceStore

/// A refusal the API reports as JSON: `{"error": CODE, "message": TEXT, "field"?: NAME,
/// "status"?: CURRENT_STATUS, …}`. Every failure a handler meets becomes one of these, so bad
/// input gets a 4xx naming the field and nothing reaches Hummingbird's bare 500.
struct APIError: Error {
    let status: HTTPResponse.Status
    /// Stable, machine-readable: `invalid_json`, `unknown_field`, `invalid_transition`, …
    let code: String
    let message: String
    /// The request field at fault, as the client spelled it.
    var field: String?
    /// The enrollment's current status, for refused transitions.
    var currentStatus: String?
    /// Anything else a client can act on (ids, counts).
    var extra: [String: JSONValue] = [:]

    init(
        _ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil,
        currentStatus: String? = nil, extra: [String: JSONValue] = [:]
    ) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.currentStatus = currentStatus
        self.extra = extra
    }

    var body: JSONValue {
        var object = extra
        object["error"] = .string(code)
        object["message"] = .string(message)
        if let field { object["field"] = .string(field) }
        if let currentStatus { object["status"] = .string(currentStatus) }
        return .object(object)
    }

    /// Methods the path serves, for `Allow` on a 405.
    var allowedMethods: [HTTPRequest.Method] = []

    /// A method the path does not serve.
    static func methodNotAllowed(allowed: [HTTPRequest.Method]) -> APIError {
        let names = allowed.map(\.rawValue).joined(separator: ", ")
        var error = APIError(.methodNotAllowed, "method_not_allowed", "this path serves \(names) only", extra: ["allow": .array(allowed.map { .string($0.rawValue) })])
        error.allowedMethods = allowed
        return error
    }

    var response: Response {
        var response = JSONResponse.make(status, body)
        if status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer realm=\"seqd\"" }
        if !allowedMethods.isEmpty { response.headers[.allow] = allowedMethods.map(\.rawValue).joined(separator: ", ") }
        return response
    }

    /// Maps what the store and libpq throw. Bad input and refusals are the client's (4xx); an
    /// unreachable or overloaded database is 503 (retry later); anything else is ours (500) and
    /// is logged by the caller without the request's data.
    static func from(_ error: any Error) -> APIError {
        switch ApplicationError.mapping(error) {
        case let api as APIError:
            return api
        case let failure as ApplicationError:
            switch failure.kind {
            case .notFound: return APIError(.notFound, "not_found", failure.message)
            case .refused: return APIError(.conflict, "refused", failure.message)
            case .invalidTransition: return APIError(.conflict, "invalid_transition", failure.message)
            case .preconditionFailed: return APIError(.preconditionFailed, "precondition_failed", failure.message)
            case .badInput: return APIError(.unprocessableContent, "invalid_input", failure.message)
            case .notMigrated: return APIError(.serviceUnavailable, "not_migrated", failure.message)
            case .unavailable:
                return APIError(.serviceUnavailable, "database_unavailable", "the database is unavailable or busy; retry later")
            case .permissionDenied, .internal:
                // The message may quote the request; the SQLSTATE says what broke.
                return APIError(.internalServerError, "internal_error", "internal error (SQLSTATE \(failure.sqlState ?? ""))")
            }
        case let http as any HTTPResponseError:
            // Hummingbird's own refusals: no route, a body over the limit.
            switch http.status {
            case .notFound: return APIError(.notFound, "not_found", "no such endpoint (see GET /v1/openapi.yaml)")
            case .contentTooLarge: return APIError(.contentTooLarge, "body_too_large", "the request body is too large")
            default: return APIError(http.status, "http_\(http.status.code)", http.status.reasonPhrase)
            }
        default:
            return APIError(.internalServerError, "internal_error", "internal error")
        }
    }
}

/// JSON responses with a fixed content type and no caching (API answers describe live state).
enum JSONResponse {
    static func make(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        // A value echoed in an error is never sniffed into markup by a browser.
        headers[.xContentTypeOptions] = "nosniff"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: value.serialized + "\n")))
    }
}

/// A JSON value read without a schema, so the API can name unknown fields and wrong types
/// itself instead of relaying `DecodingError` text.
enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The JSON type's name, for "expected a string, got a number".
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// Compact JSON with sorted keys, so responses are stable for scripts and tests.
    var serialized: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a tree of strings, numbers and containers cannot fail; non-finite numbers are
        // written as null (JSON has no NaN) by `encode(to:)`.
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}

extension JSONValue: Encodable {
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): if value.isFinite { try container.encode(value) } else { try container.encodeNil() }
        case .string(let value): try container.encode(value)
        case .array(let values): try container.encode(values)
        case .object(let members): try container.encode(members)
        }
    }
}

extension JSONValue: Decodable {
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}

/// A request's JSON object with the fields an endpoint accepts: anything else is refused by
/// name, and each accessor checks the type and names the field it rejects.
struct JSONBody {
    private let values: [String: JSONValue]

    /// Largest body the JSON endpoints read; contacts with many attributes fit easily.
    static let maxSize = 64 * 1024

    init(_ buffer: ByteBuffer, allowed: Set<String>) throws {
        let data = Data(buffer.readableBytesView)
        guard !data.isEmpty else { throw APIError(.badRequest, "invalid_json", "the request body is empty; send a JSON object") }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw APIError(.badRequest, "invalid_json", "the request body is not valid JSON")
        }
        guard case .object(let object) = value else {
            throw APIError(.badRequest, "invalid_json", "the request body must be a JSON object, not \(value.typeName)")
        }
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError(
                .badRequest, "unknown_field",
                "unknown field '\(unknown)' (accepted: \(allowed.sorted().joined(separator: ", ")))", field: unknown)
        }
        values = object
    }

    /// Whether the field is present and not null.
    func has(_ name: String) -> Bool {
        if let value = values[name], value != .null { return true }
        return false
    }

    func string(_ name: String, required: Bool = false, maxLength: Int = 1_000) throws -> String? {
        switch values[name] {
        case nil, .null?:
            if required { throw APIError(.badRequest, "missing_field", "field '\(name)' is required", field: name) }
            return nil
        case .string(let text)?:
            try Self.check(text, field: name, maxLength: maxLength)
            return text
        case let other?:
            throw APIError(.badRequest, "invalid_field", "field '\(name)' must be a string, not \(other.typeName)", field: name)
        }
    }

    func integer(_ name: String) throws -> Int64? {
        switch values[name] {
        case nil, .null?: return nil
        case .integer(let value)? where value > 0: return value
        case let other?:
            let given = other.typeName == "a number" ? other.serialized : other.typeName
            throw APIError(.badRequest, "invalid_field", "field '\(name)' must be a positive integer, not \(given)", field: name)
        }
    }

    func bool(_ name: String) throws -> Bool? {
        switch values[name] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        case let other?:
            throw APIError(.badRequest, "invalid_field", "field '\(name)' must be true or false, not \(other.typeName)", field: name)
        }
    }

    /// A flat object of attribute values: strings, numbers and booleans are stored as text (as a
    /// CSV import stores them); nested values are refused by their path, e.g. `attributes.plan`.
    func attributes(_ name: String) throws -> [String: String] {
        switch values[name] {
        case nil, .null?: return [:]
        case .object(let object)?:
            var attributes = [String: String]()
            for (key, value) in object {
                let path = "\(name).\(key)"
                try Self.check(key, field: path, maxLength: 200)
                if key.isEmpty { throw APIError(.badRequest, "invalid_field", "attribute names cannot be empty", field: name) }
                switch value {
                case .string(let text):
                    try Self.check(text, field: path, maxLength: 10_000)
                    attributes[key] = text
                case .integer(let number): attributes[key] = String(number)
                case .number(let number): attributes[key] = "\(number)"
                case .bool(let flag): attributes[key] = flag ? "true" : "false"
                case .null, .array, .object:
                    throw APIError(
                        .badRequest, "invalid_field", "attribute '\(key)' must be a string, number or boolean, not \(value.typeName)",
                        field: path)
                }
            }
            return attributes
        case let other?:
            throw APIError(.badRequest, "invalid_field", "field '\(name)' must be an object, not \(other.typeName)", field: name)
        }
    }

    /// PostgreSQL text cannot hold NUL, and unbounded strings are no one's data: both are the
    /// request's fault, said before the database would say it less clearly.
    private static func check(_ text: String, field: String, maxLength: Int) throws {
        if text.unicodeScalars.contains("\0") {
            throw APIError(.badRequest, "invalid_field", "field '\(field)' contains a NUL character", field: field)
        }
        if text.count > maxLength {
            throw APIError(.badRequest, "invalid_field", "field '\(field)' is longer than \(maxLength) characters", field: field)
        }
    }
}
