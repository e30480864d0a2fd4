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
    /// What a webhook step that fails for good does to the enrollment; default `stop`.
    public let onFailure: OnFailure
    /// The steps, in order; never empty, keys unique.
    public let steps: [Step]
    /// Enrolls a contact when this event arrives (`POST /v1/events`, `seqd event send`).
    public let trigger: Trigger?
    /// Goals: the first one met ends the enrollment `converted` (checked before each step and
    /// when the contact changes or sends an event). Empty: none.
    public let exitWhen: [Goal]
    /// `tracking: { clicks: true }`: links in this sequence's emails go through `/c/<token>`.
    /// Off by default, and for every definition stored before it existed.
    public let tracking: Tracking

    /// What is tracked in this sequence's emails. Clicks only: there is no open pixel, because
    /// Apple Mail Privacy Protection fetches every image of every message, so opens mean nothing.
    public struct Tracking: Sendable, Equatable, Codable {
        /// Rewrite `http`/`https` links to the click endpoint, which records the click and redirects.
        public let clicks: Bool

        public static let off = Tracking(clicks: false)

        public init(clicks: Bool) {
            self.clicks = clicks
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            clicks = try container.decodeIfPresent(Bool.self, forKey: .clicks) ?? false
        }

        private enum CodingKeys: String, CodingKey {
            case clicks
        }
    }

    /// `trigger: { event: trial_started, if: { property: plan, equals: pro } }`: an event of this
    /// name enrolls its contact when the optional condition holds for the contact and the event's
    /// properties (`property:` fields).
    public struct Trigger: Sendable, Equatable, Codable {
        /// The event name that enrolls.
        public let event: String
        /// Tested against the contact with the event's properties; nil: every such event.
        public let condition: BranchCondition?

        /// Whether an event with these properties enrolls this contact.
        public func matches(_ contact: ContactFields) -> Bool {
            condition?.matches(contact) ?? true
        }

        private enum CodingKeys: String, CodingKey {
            case event
            case condition = "if"
        }
    }

    /// One entry of `exit_when`: a branch condition on the contact (and the triggering event's
    /// properties or saved step data), or `{ event: NAME }`: the contact sent that event since it
    /// was enrolled.
    public enum Goal: Sendable, Equatable, Codable {
        case event(String)
        case condition(BranchCondition)

        private enum CodingKeys: String, CodingKey {
            case event
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if let name = try container.decodeIfPresent(String.self, forKey: .event) {
                self = .event(name)
            } else {
                self = .condition(try BranchCondition(from: decoder))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            switch self {
            case .event(let name):
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(name, forKey: .event)
            case .condition(let condition):
                try condition.encode(to: encoder)
            }
        }

        /// Whether the goal holds for this contact, given the names of the events it sent since it
        /// was enrolled.
        public func isMet(by contact: ContactFields, stepData: [String: String], eventsSinceEnrollment: Set<String>) -> Bool {
            switch self {
            case .event(let name): eventsSinceEnrollment.contains(name)
            case .condition(let condition): condition.matches(contact, stepData: stepData)
            }
        }
    }

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
            /// An HTTP request with an idempotency key and a signature.
            case webhook(Webhook)
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
            case key, type, subject, body, html, thread, variants, duration, when, url, method, headers, timeout, save
            case sendWindow = "send_window"
            case variantsOf = "variants_of"
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
                    sendWindow: try container.decodeIfPresent(SendWindow.self, forKey: .sendWindow),
                    variants: try container.decodeIfPresent([Variant].self, forKey: .variants) ?? [],
                    variantsOf: try container.decodeIfPresent(String.self, forKey: .variantsOf)))
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
                kind = .webhook(Webhook(
                    url: try container.decode(String.self, forKey: .url),
                    method: try container.decodeIfPresent(String.self, forKey: .method) ?? "POST",
                    headers: try container.decodeIfPresent([String: String].self, forKey: .headers) ?? [:],
                    body: try container.decodeIfPresent(String.self, forKey: .body),
                    timeout: try container.decodeIfPresent(Int.self, forKey: .timeout) ?? Webhook.defaultTimeout,
                    save: try container.decodeIfPresent([String].self, forKey: .save) ?? []))
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
                if !email.variants.isEmpty { try container.encode(email.variants, forKey: .variants) }
                try container.encodeIfPresent(email.variantsOf, forKey: .variantsOf)
            case .wait(let duration):
                try container.encode(duration.description, forKey: .duration)
            case .branch(let rules):
                try container.encode(rules, forKey: .when)
            case .webhook(let webhook):
                try container.encode(webhook.url, forKey: .url)
                try container.encode(webhook.method, forKey: .method)
                if !webhook.headers.isEmpty { try container.encode(webhook.headers, forKey: .headers) }
                try container.encodeIfPresent(webhook.body, forKey: .body)
                try container.encode(webhook.timeout, forKey: .timeout)
                if !webhook.save.isEmpty { try container.encode(webhook.save, forKey: .save) }
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
        /// A/B variants, each with its full content (the step's own subject, body and html fill
        /// what a variant leaves out); empty: none, the step's content is sent.
        public let variants: [Variant]
        /// The step key whose pick this step's variants follow: set on a threaded reply whose subject
        /// comes from a parent with variants (its variants are spelled out as `Re: ` + each
        /// parent variant's subject), so every contact's follow-up keeps the subject it was sent.
        /// Nil: the step picks by its own key.
        public let variantsOf: String?

        init(subject: String, body: String, html: String?, thread: Bool, sendWindow: SendWindow?,
             variants: [Variant] = [], variantsOf: String? = nil) {
            self.subject = subject
            self.body = body
            self.html = html
            self.thread = thread
            self.sendWindow = sendWindow
            self.variants = variants
            self.variantsOf = variantsOf
        }

        /// Every template source of the step and its variants.
        public var templateSources: [String] {
            ([subject, body, html] + variants.flatMap { [$0.subject, $0.body, $0.html] }).compactMap { $0 }
        }
    }

    /// One A/B variant of an email step. `weight` is its share among the step's variants' weights.
    public struct Variant: Sendable, Equatable, Codable {
        /// `[a-z0-9][a-z0-9_-]*`, unique in the step; recorded on each delivery.
        public let key: String
        /// 0 ... 1000; 0 sends the variant to nobody (a variant switched off).
        public let weight: Int
        public let subject: String
        public let body: String
        public let html: String?
    }

    /// `on_failure`: a webhook step that fails for good (a 4xx, or its attempts used up) stops
    /// the enrollment as `failed`, or is skipped and the enrollment goes on.
    public enum OnFailure: String, Sendable, Equatable, Codable {
        case stop, skip
    }

    /// A webhook step: every text is a template of the contact's fields plus `enrollment_id`,
    /// `step_key`, `sequence` and `delivery_key`; a header value may also name a secret as
    /// `${ENV_NAME}`, read from the environment (or `ENV_NAME_FILE`) when the request is sent.
    public struct Webhook: Sendable, Equatable {
        public static let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        public static let defaultTimeout = 10
        public static let maxTimeout = 60
        /// Names a template may use besides the contact's fields, filled in per request.
        public static let requestFields = ["enrollment_id", "step_key", "sequence", "delivery_key"]

        public let url: String
        public let method: String
        /// Header name → value template.
        public let headers: [String: String]
        /// JSON text whose `{{field}}` placeholders sit inside strings (values are JSON-escaped).
        public let body: String?
        /// Seconds, at most `maxTimeout`.
        public let timeout: Int
        /// Top-level fields of a 2xx JSON response stored on the enrollment (`step_data`).
        public let save: [String]

        /// Every template source of the step.
        public var templateSources: [String] { [url] + headers.keys.sorted().map { headers[$0]! } + (body.map { [$0] } ?? []) }
    }

    private enum CodingKeys: String, CodingKey {
        case name, description, sender, steps
        case onFailure = "on_failure"
        case timeZone = "time_zone"
        case exitOnReply = "exit_on_reply"
        case stopCompanyOnReply = "stop_company_on_reply"
        case sendWindow = "send_window"
        case skipDates = "skip_dates"
        case trigger
        case exitWhen = "exit_when"
        case tracking
    }

    init(name: String, description: String?, sender: Sender, timeZone: String, exitOnReply: Bool,
         stopCompanyOnReply: Bool, sendWindow: SendWindow?, skipDates: [LocalDate], onFailure: OnFailure = .stop, steps: [Step],
         trigger: Trigger? = nil, exitWhen: [Goal] = [], tracking: Tracking = .off) {
        self.tracking = tracking
        self.trigger = trigger
        self.exitWhen = exitWhen
        self.onFailure = onFailure
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

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        description = try container.decodeIfPresent(String.self, forKey: .description)
        sender = try container.decode(Sender.self, forKey: .sender)
        timeZone = try container.decode(String.self, forKey: .timeZone)
        exitOnReply = try container.decode(Bool.self, forKey: .exitOnReply)
        stopCompanyOnReply = try container.decodeIfPresent(Bool.self, forKey: .stopCompanyOnReply) ?? false
        sendWindow = try container.decodeIfPresent(SendWindow.self, forKey: .sendWindow)
        skipDates = try container.decodeIfPresent([LocalDate].self, forKey: .skipDates) ?? []
        // Stored before webhook steps existed: stop, the only behaviour there was.
        onFailure = try container.decodeIfPresent(OnFailure.self, forKey: .onFailure) ?? .stop
        steps = try container.decode([Step].self, forKey: .steps)
        trigger = try container.decodeIfPresent(Trigger.self, forKey: .trigger)
        exitWhen = try container.decodeIfPresent([Goal].self, forKey: .exitWhen) ?? []
        tracking = try container.decodeIfPresent(Tracking.self, forKey: .tracking) ?? .off
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encodeIfPresent(description, forKey: .description)
        try container.encode(sender, forKey: .sender)
        try container.encode(timeZone, forKey: .timeZone)
        try container.encode(exitOnReply, forKey: .exitOnReply)
        try container.encode(stopCompanyOnReply, forKey: .stopCompanyOnReply)
        try container.encodeIfPresent(sendWindow, forKey: .sendWindow)
        try container.encode(skipDates, forKey: .skipDates)
        // Only when set: the canonical bytes of every sequence written before it stay the same,
        // so applying an unchanged file does not make a new version.
        if onFailure != .stop { try container.encode(onFailure, forKey: .onFailure) }
        try container.encode(steps, forKey: .steps)
        // Only when set, like on_failure: sequences without them keep their canonical bytes.
        try container.encodeIfPresent(trigger, forKey: .trigger)
        if !exitWhen.isEmpty { try container.encode(exitWhen, forKey: .exitWhen) }
        if tracking != .off { try container.encode(tracking, forKey: .tracking) }
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

    /// The position in `exit_when` of the first goal this contact meets, if any.
    public func metGoal(by contact: ContactFields, stepData: [String: String], eventsSinceEnrollment: Set<String>) -> Int? {
        exitWhen.firstIndex { $0.isMet(by: contact, stepData: stepData, eventsSinceEnrollment: eventsSinceEnrollment) }
    }

    /// The event names `exit_when` waits for: whether a driver must look up the contact's events.
    public var goalEvents: Set<String> {
        Set(exitWhen.compactMap { if case .event(let name) = $0 { name } else { nil } })
    }

    /// `exit_when[1] {"event":"meeting_booked"}`: the goal as the audit trail names it.
    public func goalDescription(at index: Int) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = (try? encoder.encode(exitWhen[index])).map { String(decoding: $0, as: UTF8.self) } ?? "?"
        return "exit_when[\(index)] \(json)"
    }

    /// The zone in which this contact's waits and windows are computed.
    public func timeZone(for contact: ContactFields) -> TimeZone {
        TimeZones.zone(contact: contact.timeZone, sequence: timeZone)
    }

    /// Fields the contact lacks for any email or webhook step (templates without fallback), sorted. A
    /// non-empty result means "skip this contact at enroll time and count it".
    public func missingFields(for contact: ContactFields) -> [String] {
        var missing = Set<String>()
        for step in steps {
            if case .webhook(let webhook) = step.kind { missing.formUnion(webhook.missingFields(for: contact)) }
            guard case .email(let email) = step.kind else { continue }
            for source in email.templateSources {
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
