import Foundation

/// A validated, fully normalised sequence (design.md §5): default step keys filled in, defaults
/// applied, threaded subjects spelled out. Its canonical JSON (``canonicalJSON()``) is what a
/// sequence version stores, and it reads like the YAML it came from. Build one with
/// `parse(_:fileName:)`; the memberwise shape is internal so nothing unvalidated exists.
public struct SequenceDefinition: Sendable, Equatable, Codable {
    /// The `goto` target that completes the enrollment.
    public static let endTarget = "end"

    /// Unique name: `[a-z0-9][a-z0-9_-]*`, at most 64 characters.
    public let name: String
    /// Free text for operators.
    public let description: String?
    /// Who the mail comes from.
    public let sender: Sender
    /// Zone for contacts without a (valid) zone of their own; default `UTC`.
    public let timeZone: String
    /// A reply ends the enrollment (`replied`); default true.
    public let exitOnReply: Bool
    /// A reply also stops the other enrollments of the contact's company; default false.
    public let stopCompanyOnReply: Bool
    /// Default send window for email steps, if any.
    public let sendWindow: SendWindow?
    /// Local dates on which nothing is sent and which business days skip; sorted, unique.
    public let skipDates: [LocalDate]
    /// The steps, in order; never empty, keys unique.
    public let steps: [Step]

    /// The sequence's sender.
    public struct Sender: Sendable, Equatable, Codable {
        /// The From address.
        public let address: String
        /// Optional display name.
        public let name: String?
        /// Optional cap on sends per day for this sender.
        public let dailyLimit: Int?

        private enum CodingKeys: String, CodingKey {
            case address, name
            case dailyLimit = "daily_limit"
        }
    }

    /// One step; `key` identifies it across versions and in the outbox.
    public struct Step: Sendable, Equatable, Codable {
        /// Unique within the sequence; `<type>-<n>` when not given.
        public let key: String
        /// What the step does.
        public let kind: Kind

        /// The four step types.
        public enum Kind: Sendable, Equatable {
            /// Send an email.
            case email(Email)
            /// Wait before the next step.
            case wait(WaitDuration)
            /// First matching rule jumps forward; no match continues with the next step.
            case branch([BranchRule])
            /// POST to a URL with an idempotency key.
            case webhook(url: String)
        }

        /// The type name as written in YAML.
        public var typeName: String {
            switch kind {
            case .email: "email"
            case .wait: "wait"
            case .branch: "branch"
            case .webhook: "webhook"
            }
        }

        /// Whether running the step creates a delivery (outbox row).
        public var createsDelivery: Bool {
            switch kind {
            case .email, .webhook: true
            case .wait, .branch: false
            }
        }

        private enum CodingKeys: String, CodingKey {
            case key, type, subject, body, html, thread, duration, when, url
            case sendWindow = "send_window"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            key = try container.decode(String.self, forKey: .key)
            switch try container.decode(String.self, forKey: .type) {
            case "email":
                kind = .email(Email(
                    subject: try container.decode(String.self, forKey: .subject),
                    body: try container.decode(String.self, forKey: .body),
                    html: try container.decodeIfPresent(String.self, forKey: .html),
                    thread: try container.decodeIfPresent(Bool.self, forKey: .thread) ?? false,
                    sendWindow: try container.decodeIfPresent(SendWindow.self, forKey: .sendWindow)))
            case "wait":
                let text = try container.decode(String.self, forKey: .duration)
                do {
                    kind = .wait(try WaitDuration.parse(text))
                } catch {
                    throw DecodingError.dataCorruptedError(forKey: .duration, in: container, debugDescription: error.description)
                }
            case "branch":
                kind = .branch(try container.decode([BranchRule].self, forKey: .when))
            case "webhook":
                kind = .webhook(url: try container.decode(String.self, forKey: .url))
            case let other:
                throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "unknown step type '\(other)'")
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(key, forKey: .key)
            try container.encode(typeName, forKey: .type)
            switch kind {
            case .email(let email):
                try container.encode(email.subject, forKey: .subject)
                try container.encode(email.body, forKey: .body)
                try container.encodeIfPresent(email.html, forKey: .html)
                try container.encode(email.thread, forKey: .thread)
                try container.encodeIfPresent(email.sendWindow, forKey: .sendWindow)
            case .wait(let duration):
                try container.encode(duration.description, forKey: .duration)
            case .branch(let rules):
                try container.encode(rules, forKey: .when)
            case .webhook(let url):
                try container.encode(url, forKey: .url)
            }
        }

        init(key: String, kind: Kind) {
            self.key = key
            self.kind = kind
        }
    }

    /// An email step's content; the texts are template sources.
    public struct Email: Sendable, Equatable {
        /// Subject template; for a threaded step without one, `Re: ` + the previous email's.
        public let subject: String
        /// Plain-text body template.
        public let body: String
        /// Optional HTML body template (placeholders are HTML-escaped).
        public let html: String?
        /// Reply in the thread of the previous email step.
        public let thread: Bool
        /// Overrides the sequence's send window for this step.
        public let sendWindow: SendWindow?
    }

    private enum CodingKeys: String, CodingKey {
        case name, description, sender, steps
        case timeZone = "time_zone"
        case exitOnReply = "exit_on_reply"
        case stopCompanyOnReply = "stop_company_on_reply"
        case sendWindow = "send_window"
        case skipDates = "skip_dates"
    }

    init(name: String, description: String?, sender: Sender, timeZone: String, exitOnReply: Bool,
         stopCompanyOnReply: Bool, sendWindow: SendWindow?, skipDates: [LocalDate], steps: [Step]) {
        self.name = name
        self.description = description
        self.sender = sender
        self.timeZone = timeZone
        self.exitOnReply = exitOnReply
        self.stopCompanyOnReply = stopCompanyOnReply
        self.sendWindow = sendWindow
        self.skipDates = skipDates
        self.steps = steps
    }

    // MARK: Storage

    /// The canonical stored form: JSON with sorted keys, so equal definitions give equal bytes
    /// and "did the content change?" is a byte comparison.
    public func canonicalJSON() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every member is a plain string, number, bool or array of them: encoding cannot fail.
        return try! encoder.encode(self)
    }

    /// Decodes a definition stored by ``canonicalJSON()``. It was validated before it was stored,
    /// so this does not validate again.
    public static func decodeStored(_ data: Data) throws -> SequenceDefinition {
        try JSONDecoder().decode(SequenceDefinition.self, from: data)
    }

    // MARK: Lookups the drivers need

    /// The position of the step with this key, if any.
    public func index(ofStep key: String) -> Int? {
        steps.firstIndex { $0.key == key }
    }

    /// The key of the step at this position; nil past the end (a completed enrollment).
    public func key(at index: Int) -> String? {
        steps.indices.contains(index) ? steps[index].key : nil
    }

    /// For a threaded email step, the key of the email whose thread it continues: the nearest
    /// earlier email step. (If a branch skipped that email for a contact, the driver should fall
    /// back to the last email actually sent.)
    public func threadParent(ofStepAt index: Int) -> String? {
        guard steps.indices.contains(index), case .email(let email) = steps[index].kind, email.thread else { return nil }
        return steps[..<index].last { if case .email = $0.kind { true } else { false } }?.key
    }

    /// The zone in which this contact's waits and windows are computed.
    public func timeZone(for contact: ContactFields) -> TimeZone {
        TimeZones.zone(contact: contact.timeZone, sequence: timeZone)
    }

    /// Fields the contact lacks for any email step (templates without fallback), sorted. A
    /// non-empty result means "skip this contact at enroll time and count it".
    public func missingFields(for contact: ContactFields) -> [String] {
        var missing = Set<String>()
        for step in steps {
            guard case .email(let email) = step.kind else { continue }
            for source in [email.subject, email.body, email.html].compactMap({ $0 }) {
                // Stored definitions were validated; an unparsable one fails at send time instead.
                if let template = try? Template(parsing: source) {
                    missing.formUnion(template.missingFields(for: contact))
                }
            }
        }
        return missing.sorted()
    }

    /// The sequence's own zone (`time_zone`, else UTC): the zone of the sender's daily limit.
    public var sequenceTimeZone: TimeZone { TimeZones.zone(contact: nil, sequence: timeZone) }

    /// The day, in the sequence's zone, that a send at `now` counts against for `daily_limit`.
    public func senderLimitDay(at now: Date) -> LocalDate { WallClock.local(now, in: sequenceTimeZone).date }

    var skipDateSet: Set<LocalDate> { Set(skipDates) }
}
