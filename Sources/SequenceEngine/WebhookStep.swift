import Foundation
import Yams

/// A webhook step's request for one enrollment, rendered: what the outbox stores and the sending
/// session sends. Header values may still name secrets as `${ENV_NAME}`; they are read from the
/// environment only when the request is made, so no secret is ever stored in the database.
public struct RenderedWebhook: Sendable, Equatable, Codable {
    public var method: String
    public var url: String
    public var headers: [Header]
    /// JSON text; nil sends no body.
    public var body: String?
    /// Seconds.
    public var timeout: Int
    /// Top-level fields of a 2xx JSON response to store on the enrollment.
    public var save: [String]

    public struct Header: Sendable, Equatable, Codable {
        public var name: String
        public var value: String
    }
}

/// The values a webhook template may use besides the contact's fields.
public struct WebhookRequestFields: Sendable {
    public var enrollmentID: Int64
    public var stepKey: String
    public var sequence: String
    public var deliveryKey: String

    public init(enrollmentID: Int64, stepKey: String, sequence: String, deliveryKey: String) {
        self.enrollmentID = enrollmentID
        self.stepKey = stepKey
        self.sequence = sequence
        self.deliveryKey = deliveryKey
    }

    var values: [String: String] {
        ["enrollment_id": String(enrollmentID), "step_key": stepKey, "sequence": sequence, "delivery_key": deliveryKey]
    }
}

extension SequenceDefinition.Webhook {
    /// Required template fields the contact lacks (the request's own fields are always there).
    public func missingFields(for contact: ContactFields) -> [String] {
        let requestFields = Set(Self.requestFields)
        var missing = Set<String>()
        for source in templateSources {
            guard let template = try? Template(parsing: source) else { continue }
            missing.formUnion(template.missingFields(for: contact).filter { !requestFields.contains($0) })
        }
        return missing.sorted()
    }

    /// Renders every template for one enrollment. The body's placeholders are JSON-escaped, so a
    /// body that was JSON for the sample contact at apply time is JSON for every contact.
    public func render(for contact: ContactFields, request: WebhookRequestFields) throws -> RenderedWebhook {
        var fields = contact
        // The request's own names win over attributes of the same name.
        for (name, value) in request.values { fields.attributes[name] = value }
        func render(_ source: String, _ escaping: Template.Escaping = .none) throws -> String {
            try Template.parsed(source).render(fields, escaping: escaping)
        }
        return RenderedWebhook(
            method: method, url: try render(url),
            headers: try headers.keys.sorted().map { RenderedWebhook.Header(name: $0, value: try render(headers[$0]!)) },
            body: try body.map { try render($0, .json) }, timeout: timeout, save: save)
    }
}

// MARK: Parsing

extension SequenceParser {
    /// Header names seqd sets itself; a step may not set them.
    static let reservedWebhookHeaders: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "idempotency-key", "seqd-signature", "expect",
    ]

    mutating func parseWebhook(_ fields: [String: Node], _ path: String, stepKey: String) -> SequenceDefinition.Webhook? {
        let issuesBefore = issues.count
        func template(_ text: String, _ fieldPath: String) -> Bool {
            do {
                _ = try Template(parsing: text)
                return true
            } catch {
                issue(fieldPath, "malformed template: \(error.message)")
                return false
            }
        }
        var url: String?
        if let node = fields["url"], let text = string(node, path + ".url"), template(text, path + ".url") {
            url = text
        } else if fields["url"] == nil {
            issue(path + ".url", "missing required field")
        }
        var method = "POST"
        if let node = fields["method"], let text = string(node, path + ".method") {
            method = text.uppercased()
            if !SequenceDefinition.Webhook.methods.contains(method) {
                issue(path + ".method", "'\(text)' is not allowed: use \(SequenceDefinition.Webhook.methods.joined(separator: ", "))")
            }
        }
        var headers = [String: String]()
        if let node = fields["headers"] {
            if case .mapping(let mapping) = node {
                for (keyNode, valueNode) in mapping {
                    let name = keyNode.string ?? ""
                    let headerPath = "\(path).headers.\(name)"
                    guard Self.isHeaderName(name) else {
                        issue(headerPath, "'\(name)' is not a header name")
                        continue
                    }
                    if Self.reservedWebhookHeaders.contains(name.lowercased()) {
                        issue(headerPath, "seqd sets \(name) itself")
                        continue
                    }
                    guard let value = string(valueNode, headerPath), template(value, headerPath) else { continue }
                    if let bad = Self.badSecretReference(value) {
                        issue(headerPath, "'${\(bad)}' is not a secret reference: use ${ENV_NAME} (A-Z, 0-9, _)")
                        continue
                    }
                    headers[name] = value
                }
            } else {
                issue(path + ".headers", "expected a mapping of header name to value, got \(kindName(node))")
            }
        }
        var body: String?
        if let node = fields["body"] {
            switch node {
            case .scalar:
                if let text = string(node, path + ".body"), template(text, path + ".body") { body = text }
            case .mapping, .sequence:
                // Authored as YAML: its JSON text, whose strings may hold placeholders.
                let value = Constructor.default.any(from: node)
                if JSONSerialization.isValidJSONObject(value),
                   let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes]),
                   let text = String(data: data, encoding: .utf8), template(text, path + ".body") {
                    body = text
                } else if issues.count == issuesBefore {
                    issue(path + ".body", "cannot be written as JSON (dates and binary values are not JSON)")
                }
            default:
                issue(path + ".body", "expected a JSON text or a mapping, got \(kindName(node))")
            }
        }
        var timeout = SequenceDefinition.Webhook.defaultTimeout
        if let node = fields["timeout"] {
            let text = node.string ?? ""
            let seconds = node.int ?? (text.hasSuffix("s") ? Int(text.dropLast()) : nil)
            if let seconds, (1...SequenceDefinition.Webhook.maxTimeout).contains(seconds) {
                timeout = seconds
            } else {
                issue(path + ".timeout", "'\(text)' is not allowed: seconds from 1 to \(SequenceDefinition.Webhook.maxTimeout) (10 or 10s)")
            }
        }
        var save = [String]()
        if let node = fields["save"], let items = list(node, path + ".save") {
            for (index, item) in items.enumerated() {
                guard let name = string(item, "\(path).save[\(index)]") else { continue }
                if Self.isFieldName(name) { save.append(name) } else {
                    issue("\(path).save[\(index)]", "'\(name)' is not a field name (letters, digits, _)")
                }
            }
        }
        guard let url else { return nil }
        // Checked even when another field is wrong, so one apply reports every problem.
        let webhook = SequenceDefinition.Webhook(url: url, method: method, headers: headers, body: body, timeout: timeout, save: save)
        checkSample(webhook, path, stepKey: stepKey)
        return issues.count == issuesBefore ? webhook : nil
    }

    /// Renders the step for a sample contact (every field it names present) and checks what
    /// comes out: an http(s) URL without credentials, and a body that is JSON.
    private mutating func checkSample(_ webhook: SequenceDefinition.Webhook, _ path: String, stepKey: String) {
        var sample = ContactFields(email: "sample@example.com", firstName: "Sample", lastName: "Contact", timeZone: "UTC")
        for source in webhook.templateSources {
            for field in (try? Template(parsing: source))?.fields ?? [] where sample.value(of: field) == nil {
                sample.attributes[field] = "sample"
            }
        }
        let request = WebhookRequestFields(enrollmentID: 1, stepKey: stepKey, sequence: "sample", deliveryKey: "sample-key")
        guard let rendered = try? webhook.render(for: sample, request: request) else { return }
        if !Self.isHTTPURL(rendered.url) {
            let sampled = rendered.url == webhook.url ? "" : " (for a sample contact)"
            issue(path + ".url", "'\(rendered.url)'\(sampled) is not an http(s) URL")
        } else if let components = URLComponents(string: rendered.url), components.user != nil || components.password != nil {
            issue(path + ".url", "must not hold credentials; send them in a header naming a secret (${ENV_NAME})")
        }
        if let body = rendered.body {
            do {
                _ = try JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed])
            } catch {
                issue(path + ".body", "is not JSON after rendering a sample contact (put each {{field}} inside a JSON string): \(body.prefix(120))")
            }
        }
    }

    /// RFC 9110 token characters.
    static func isHeaderName(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 100 && text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "!#$%&'*+-.^_`|~".unicodeScalars.contains($0)
        }
    }

    /// The first `${…}` in `value` whose name is not an environment variable name, if any.
    static func badSecretReference(_ value: String) -> String? {
        for reference in SecretReferences.names(in: value) where !SecretReferences.isName(reference) {
            return reference
        }
        return nil
    }
}

/// `${ENV_NAME}` references in webhook header values.
public enum SecretReferences {
    /// The names referenced, in order.
    public static func names(in value: String) -> [String] {
        var names = [String]()
        var rest = Substring(value)
        while let start = rest.range(of: "${") {
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else { break }
            names.append(String(rest[start.upperBound..<end]))
            rest = rest[rest.index(after: end)...]
        }
        return names
    }

    static func isName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    /// Replaces every reference with `lookup(name)`; throws naming the first that has no value.
    public static func resolve(_ value: String, lookup: (String) -> String?) throws -> String {
        var output = ""
        var rest = Substring(value)
        while let start = rest.range(of: "${") {
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else { break }
            let name = String(rest[start.upperBound..<end])
            guard let secret = lookup(name) else { throw Unresolved(name: name) }
            output += rest[..<start.lowerBound] + secret
            rest = rest[rest.index(after: end)...]
        }
        return output + rest
    }

    public struct Unresolved: Error, CustomStringConvertible {
        public let name: String
        public var description: String { "${\(name)} is not set (neither \(name) nor \(name)_FILE is in the environment)" }
    }
}
