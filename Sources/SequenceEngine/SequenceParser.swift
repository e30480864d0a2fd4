import Foundation
import Yams

extension SequenceDefinition {
    /// Parses and validates a sequence file (YAML, or JSON with the same structure). Collects
    /// every problem before throwing; each issue names `fileName`, the field path and the fault.
    public static func parse(_ data: Data, fileName: String) throws(SequenceValidationError) -> SequenceDefinition {
        guard let text = String(data: data, encoding: .utf8) else {
            throw SequenceValidationError(issues: [.init(file: fileName, path: "", message: "is not UTF-8 text")])
        }
        return try parse(text, fileName: fileName)
    }

    /// Parses and validates a sequence from text; see `parse(_:fileName:)` for `Data`.
    public static func parse(_ text: String, fileName: String) throws(SequenceValidationError) -> SequenceDefinition {
        var parser = SequenceParser(file: fileName)
        let definition = parser.parseDocument(text)
        guard parser.issues.isEmpty, let definition else {
            // Every rejection must say why; an empty list would read as success to a caller.
            let issues = parser.issues.isEmpty
                ? [SequenceValidationError.Issue(file: fileName, path: "", message: "was rejected without a reason (a seqd bug; please report it)")]
                : parser.issues
            throw SequenceValidationError(issues: issues)
        }
        return definition
    }
}

/// Walks the YAML node tree by hand (rather than `Decodable`) so that it can reject unknown
/// fields, keep going after the first problem, and name every field by its path.
struct SequenceParser {
    let file: String
    private(set) var issues: [SequenceValidationError.Issue] = []

    init(file: String) {
        self.file = file
    }

    static let namePattern = "[a-z0-9][a-z0-9_-]*"
    static let maxNameLength = 64

    mutating func parseDocument(_ text: String) -> SequenceDefinition? {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            issue("", "is not valid YAML or JSON: \(Self.describe(error))")
            return nil
        }
        guard let root, !isNull(root) else {
            issue("", "is empty; a sequence needs at least name, sender and steps")
            return nil
        }
        return parseSequence(root)
    }

    // MARK: The sequence

    private mutating func parseSequence(_ node: Node) -> SequenceDefinition? {
        guard let fields = mapping(node, "", allowed: [
            "name", "description", "sender", "time_zone", "exit_on_reply", "stop_company_on_reply",
            "send_window", "skip_dates", "on_failure", "steps", "trigger", "exit_when", "tracking",
        ], required: ["name", "sender", "steps"]) else { return nil }

        let name = fields["name"].flatMap { string($0, "name") }
        if let name, !Self.isIdentifier(name) {
            issue("name", "'\(name)' is not allowed: use \(Self.namePattern), at most \(Self.maxNameLength) characters")
        }
        let description = fields["description"].flatMap { string($0, "description") }
        let sender = fields["sender"].flatMap { parseSender($0, "sender") }

        var timeZone = "UTC"
        if let node = fields["time_zone"], let zone = string(node, "time_zone") {
            if TimeZones.isValid(zone) {
                timeZone = zone
            } else {
                issue("time_zone", "'\(zone)' is not an IANA time zone known to Foundation (e.g. Europe/London, America/New_York, UTC)")
            }
        }
        let exitOnReply = fields["exit_on_reply"].flatMap { bool($0, "exit_on_reply") } ?? true
        let stopCompanyOnReply = fields["stop_company_on_reply"].flatMap { bool($0, "stop_company_on_reply") } ?? false
        let sendWindow = fields["send_window"].flatMap { parseWindow($0, "send_window") }
        var onFailure = SequenceDefinition.OnFailure.stop
        if let node = fields["on_failure"], let text = string(node, "on_failure") {
            if let value = SequenceDefinition.OnFailure(rawValue: text) { onFailure = value } else {
                issue("on_failure", "'\(text)' is not allowed: use stop (the enrollment fails) or skip (it goes on with the next step)")
            }
        }

        var skipDates: [LocalDate] = []
        if let node = fields["skip_dates"], let items = list(node, "skip_dates") {
            for (index, item) in items.enumerated() {
                let path = "skip_dates[\(index)]"
                guard let text = string(item, path) else { continue }
                if let date = LocalDate(text) {
                    skipDates.append(date)
                } else {
                    issue(path, "'\(text)' is not a date (YYYY-MM-DD)")
                }
            }
        }

        let trigger = fields["trigger"].flatMap { parseTrigger($0, "trigger") }
        var exitWhen: [SequenceDefinition.Goal] = []
        if let node = fields["exit_when"], let items = list(node, "exit_when") {
            if items.isEmpty { issue("exit_when", "must list at least one goal (or leave exit_when out)") }
            exitWhen = items.enumerated().compactMap { parseGoal($1, "exit_when[\($0)]") }
        }

        let tracking = fields["tracking"].flatMap { parseTracking($0, "tracking") } ?? .off

        var steps: [SequenceDefinition.Step] = []
        var stepsValid = false
        if let node = fields["steps"], let items = list(node, "steps") {
            if items.isEmpty {
                issue("steps", "must contain at least one step")
            } else {
                (steps, stepsValid) = parseSteps(items, defaultWindow: sendWindow)
            }
        }

        guard let name, let sender, stepsValid, issues.isEmpty else { return nil }
        return SequenceDefinition(
            name: name, description: description, sender: sender, timeZone: timeZone,
            exitOnReply: exitOnReply, stopCompanyOnReply: stopCompanyOnReply, sendWindow: sendWindow,
            skipDates: Array(Set(skipDates)).sorted(), onFailure: onFailure, steps: steps, trigger: trigger, exitWhen: exitWhen,
            tracking: tracking)
    }

    /// `tracking: { clicks: true }`.
    private mutating func parseTracking(_ node: Node, _ path: String) -> SequenceDefinition.Tracking? {
        guard let fields = mapping(node, path, allowed: ["clicks"], required: []) else { return nil }
        return SequenceDefinition.Tracking(clicks: fields["clicks"].flatMap { bool($0, path + ".clicks") } ?? false)
    }

    // MARK: Triggers and goals

    private mutating func parseTrigger(_ node: Node, _ path: String) -> SequenceDefinition.Trigger? {
        guard let fields = mapping(node, path, allowed: ["event", "if"], required: ["event"]) else { return nil }
        let event = fields["event"].flatMap { eventName($0, path + ".event") }
        let condition = fields["if"].flatMap { parseCondition($0, path + ".if") }
        if fields["if"] != nil && condition == nil { return nil }
        return event.map { SequenceDefinition.Trigger(event: $0, condition: condition) }
    }

    /// `{ event: NAME }`, or any branch condition.
    private mutating func parseGoal(_ node: Node, _ path: String) -> SequenceDefinition.Goal? {
        if case .mapping = node, node["event"] != nil {
            guard let fields = mapping(node, path, allowed: ["event"], required: ["event"]) else { return nil }
            return fields["event"].flatMap { eventName($0, path + ".event") }.map { .event($0) }
        }
        return parseCondition(node, path).map { .condition($0) }
    }

    private mutating func eventName(_ node: Node, _ path: String) -> String? {
        guard let name = string(node, path) else { return nil }
        if let problem = IncomingEvent.nameProblem(name) {
            issue(path, problem)
            return nil
        }
        return name
    }

    private mutating func parseSender(_ node: Node, _ path: String) -> SequenceDefinition.Sender? {
        guard let fields = mapping(node, path, allowed: ["address", "name", "daily_limit"], required: ["address"]) else { return nil }
        let address = fields["address"].flatMap { string($0, path + ".address") }
        if let address, !Self.isPlausibleAddress(address) {
            issue(path + ".address", "'\(address)' is not an email address")
        }
        let name = fields["name"].flatMap { string($0, path + ".name") }
        var dailyLimit: Int?
        if let node = fields["daily_limit"], let limit = int(node, path + ".daily_limit") {
            if limit >= 1 { dailyLimit = limit } else { issue(path + ".daily_limit", "must be at least 1, got \(limit)") }
        }
        guard let address else { return nil }
        return .init(address: address, name: name, dailyLimit: dailyLimit)
    }

    private mutating func parseWindow(_ node: Node, _ path: String) -> SendWindow? {
        guard let fields = mapping(node, path, allowed: ["days", "start", "end"], required: ["start", "end"]) else { return nil }
        var days = Weekday.allCases
        if let node = fields["days"], let items = list(node, path + ".days") {
            days = []
            for (index, item) in items.enumerated() {
                guard let text = string(item, "\(path).days[\(index)]") else { continue }
                if let day = Weekday(rawValue: text.lowercased()) {
                    days.append(day)
                } else {
                    issue("\(path).days[\(index)]", "'\(text)' is not a day (mon, tue, wed, thu, fri, sat, sun)")
                }
            }
            if items.isEmpty { issue(path + ".days", "must name at least one day") }
        }
        func time(_ field: String) -> ClockTime? {
            guard let node = fields[field], let text = string(node, "\(path).\(field)") else { return nil }
            guard let time = ClockTime(text) else {
                issue("\(path).\(field)", "'\(text)' is not a time of day (HH:MM, 24-hour)")
                return nil
            }
            return time
        }
        guard let start = time("start"), let end = time("end") else { return nil }
        guard start < end else {
            issue(path, "end \(end) must be after start \(start) (windows do not cross midnight)")
            return nil
        }
        return SendWindow(days: days, start: start, end: end)
    }

    // MARK: Steps

    private static let stepFields: [String: [String]] = [
        "email": ["key", "type", "subject", "body", "html", "thread", "send_window", "variants"],
        "wait": ["key", "type", "duration"],
        "branch": ["key", "type", "when"],
        "webhook": ["key", "type", "url", "method", "headers", "body", "timeout", "save"],
    ]
    private static let stepTypes = ["email", "wait", "branch", "webhook"]

    /// A step before its references are checked: gotos need every key first.
    private struct Draft {
        var key: String
        var kind: SequenceDefinition.Step.Kind?
    }

    private mutating func parseSteps(_ items: [Node], defaultWindow: SendWindow?) -> ([SequenceDefinition.Step], Bool) {
        var drafts: [Draft] = []
        var lastEmailSubject: String?
        var lastEmail: ThreadParent?
        for (index, item) in items.enumerated() {
            let path = "steps[\(index)]"
            var draft = Draft(key: "step-\(index + 1)", kind: nil)
            defer { drafts.append(draft) }
            guard case .mapping = item else {
                issue(path, "expected a mapping with a type, got \(kindName(item))")
                continue
            }
            guard let typeNode = item["type"] else {
                issue(path + ".type", "missing required field (email, wait, branch or webhook)")
                continue
            }
            guard let type = string(typeNode, path + ".type") else { continue }
            guard let allowed = Self.stepFields[type] else {
                issue(path + ".type", "unknown step type '\(type)' (expected email, wait, branch or webhook)")
                continue
            }
            draft.key = "\(type)-\(index + 1)"
            guard let fields = mapping(item, path, allowed: allowed, required: ["type"]) else { continue }
            if let node = fields["key"], let key = string(node, path + ".key") {
                if key == SequenceDefinition.endTarget {
                    issue(path + ".key", "'end' is reserved for goto")
                } else if !Self.isIdentifier(key) {
                    issue(path + ".key", "'\(key)' is not allowed: use \(Self.namePattern), at most \(Self.maxNameLength) characters")
                }
                draft.key = key
            }
            switch type {
            case "email":
                draft.kind = parseEmail(fields, path, previous: lastEmail, previousSubject: lastEmailSubject, defaultWindow: defaultWindow)
                if case .email(let email) = draft.kind {
                    lastEmailSubject = email.subject
                    lastEmail = ThreadParent(key: draft.key, email: email)
                } else {
                    // A broken earlier email still counts as "a previous email exists" for threading.
                    if lastEmailSubject == nil { lastEmailSubject = "" }
                    lastEmail = nil
                }
            case "wait":
                if let node = fields["duration"], let text = string(node, path + ".duration") {
                    do {
                        draft.kind = .wait(try WaitDuration.parse(text))
                    } catch {
                        issue(path + ".duration", error.description)
                    }
                } else if fields["duration"] == nil {
                    issue(path + ".duration", "missing required field (e.g. 2d, 36h, 3 business days)")
                }
            case "branch":
                draft.kind = fields["when"].flatMap { parseRules($0, path + ".when") }.map { .branch($0) }
                if fields["when"] == nil { issue(path + ".when", "missing required field (a list of { if: <condition>, goto: <key> })") }
            default:
                draft.kind = parseWebhook(fields, path, stepKey: draft.key).map { .webhook($0) }
            }
        }

        var firstIndexOfKey: [String: Int] = [:]
        for (index, draft) in drafts.enumerated() {
            if let earlier = firstIndexOfKey[draft.key] {
                issue("steps[\(index)].key", "duplicate step key '\(draft.key)' (also steps[\(earlier)])")
            } else {
                firstIndexOfKey[draft.key] = index
            }
        }
        for (index, draft) in drafts.enumerated() {
            guard case .branch(let rules) = draft.kind else { continue }
            for (ruleIndex, rule) in rules.enumerated() where rule.target != SequenceDefinition.endTarget {
                let path = "steps[\(index)].when[\(ruleIndex)].goto"
                guard let target = firstIndexOfKey[rule.target] else {
                    issue(path, "'\(rule.target)' is not a step key (or 'end')")
                    continue
                }
                if target <= index {
                    issue(path, "'\(rule.target)' is \(target == index ? "this step" : "an earlier step"); branches jump forward only")
                }
            }
        }
        let steps = drafts.compactMap { draft in draft.kind.map { SequenceDefinition.Step(key: draft.key, kind: $0) } }
        return (steps, steps.count == drafts.count)
    }

    /// The email step a threaded step replies to, as parsed.
    private struct ThreadParent {
        let key: String
        let email: SequenceDefinition.Email
    }

    private static let variantFields = ["key", "weight", "subject", "body", "html"]
    private static let maxVariants = 10
    private static let maxVariantWeight = 1_000

    private mutating func parseEmail(
        _ fields: [String: Node], _ path: String, previous: ThreadParent?, previousSubject: String?, defaultWindow: SendWindow?
    ) -> SequenceDefinition.Step.Kind? {
        let thread = fields["thread"].flatMap { bool($0, path + ".thread") } ?? false
        if thread && previousSubject == nil {
            issue(path + ".thread", "true needs an earlier email step to reply to")
        }
        let variantNodes = fields["variants"].flatMap { list($0, path + ".variants") }
        let hasVariants = variantNodes != nil || fields["variants"] != nil
        var subject = template(fields, "subject", path, required: !thread && !hasVariants)
        let inheritsSubject = subject == nil && fields["subject"] == nil && thread
        if inheritsSubject, let previousSubject {
            subject = Self.reply(to: previousSubject)
        }
        let body = template(fields, "body", path, required: !hasVariants)
        let html = template(fields, "html", path, required: false)
        let window = fields["send_window"].flatMap { parseWindow($0, path + ".send_window") }
        // A reply in the thread of an email with variants keeps each contact's subject: its
        // variants are the parent's, spelled out as `Re: ` + each subject, and follow its pick.
        let parentVariants = thread ? previous.map { (seed: $0.email.variantsOf ?? $0.key, variants: $0.email.variants) } : nil
        var variants: [SequenceDefinition.Variant] = []
        var variantsOf: String?
        if let variantNodes {
            let inherited = inheritsSubject && parentVariants?.variants.isEmpty == false
            variants = parseVariants(
                variantNodes, path + ".variants", subject: inherited ? nil : subject, body: body, html: html,
                subjectHint: inherited ? "the thread's parent has variants, so give each reply variant its own subject" : nil)
        } else if inheritsSubject, let parent = parentVariants, !parent.variants.isEmpty, let body {
            variants = parent.variants.map {
                SequenceDefinition.Variant(key: $0.key, weight: $0.weight, subject: Self.reply(to: $0.subject), body: body, html: html)
            }
            variantsOf = parent.seed
        }
        if hasVariants && variants.isEmpty { return nil }
        guard let subject = subject ?? variants.first?.subject, let body = body ?? variants.first?.body else { return nil }
        return .email(.init(
            subject: subject, body: body, html: html ?? (hasVariants ? variants.first?.html : nil), thread: thread,
            sendWindow: window, variants: variants, variantsOf: variantsOf))
    }

    /// `Re: ` + the subject replied to, once.
    private static func reply(to subject: String) -> String {
        subject.hasPrefix("Re: ") ? subject : "Re: " + subject
    }

    /// A template field of `fields`: present, a string, not blank, and a template that parses.
    private mutating func template(_ fields: [String: Node], _ field: String, _ path: String, required: Bool, hint: String? = nil) -> String? {
        guard let node = fields[field] else {
            if required { issue("\(path).\(field)", "missing required field" + (hint.map { " (\($0))" } ?? "")) }
            return nil
        }
        guard let text = string(node, "\(path).\(field)") else { return nil }
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            issue("\(path).\(field)", "must not be empty")
            return nil
        }
        do {
            _ = try Template(parsing: text)
        } catch {
            issue("\(path).\(field)", "malformed template: \(error.message)")
            return nil
        }
        return text
    }

    /// `variants:` of an email step: 2 to 10 mappings with a unique key, a weight (default 1) and
    /// the content that differs; the step's `subject`, `body` and `html` fill in the rest. Empty
    /// when any is wrong (each problem is reported).
    private mutating func parseVariants(
        _ nodes: [Node], _ path: String, subject: String?, body: String?, html: String?, subjectHint: String?
    ) -> [SequenceDefinition.Variant] {
        if nodes.count < 2 || nodes.count > Self.maxVariants {
            issue(path, "must list 2 to \(Self.maxVariants) variants, got \(nodes.count)")
        }
        var variants: [SequenceDefinition.Variant] = []
        var seen: [String: Int] = [:]
        var complete = true
        for (index, node) in nodes.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let fields = mapping(node, itemPath, allowed: Self.variantFields, required: ["key"]) else {
                complete = false
                continue
            }
            var key: String?
            if let node = fields["key"], let text = string(node, itemPath + ".key") {
                if !Self.isIdentifier(text) {
                    issue(itemPath + ".key", "'\(text)' is not allowed: use \(Self.namePattern), at most \(Self.maxNameLength) characters")
                } else if let earlier = seen[text] {
                    issue(itemPath + ".key", "duplicate variant key '\(text)' (also \(path)[\(earlier)])")
                } else {
                    seen[text] = index
                    key = text
                }
            }
            var weight: Int? = 1
            if let node = fields["weight"] {
                weight = int(node, itemPath + ".weight")
                if let value = weight, !(0...Self.maxVariantWeight).contains(value) {
                    issue(itemPath + ".weight", "\(value) is out of range (0 to \(Self.maxVariantWeight); 0 sends this variant to nobody)")
                    weight = nil
                }
            }
            let ownSubject = template(fields, "subject", itemPath, required: subject == nil, hint: subject == nil ? subjectHint ?? "the step has none" : nil)
            let ownBody = template(fields, "body", itemPath, required: body == nil, hint: "the step has none")
            let ownHTML = template(fields, "html", itemPath, required: false)
            guard let key, let weight, let variantSubject = ownSubject ?? subject, let variantBody = ownBody ?? body else {
                complete = false
                continue
            }
            variants.append(.init(key: key, weight: weight, subject: variantSubject, body: variantBody, html: ownHTML ?? html))
        }
        if complete && !variants.isEmpty && variants.allSatisfy({ $0.weight == 0 }) {
            issue(path, "every weight is 0: at least one variant must be sent")
            complete = false
        }
        return complete ? variants : []
    }

    private mutating func parseRules(_ node: Node, _ path: String) -> [BranchRule]? {
        guard let items = list(node, path) else { return nil }
        if items.isEmpty { issue(path, "must contain at least one rule") }
        var rules: [BranchRule] = []
        for (index, item) in items.enumerated() {
            let rulePath = "\(path)[\(index)]"
            guard let fields = mapping(item, rulePath, allowed: ["if", "goto"], required: ["if", "goto"]) else { continue }
            let condition = fields["if"].flatMap { parseCondition($0, rulePath + ".if") }
            let target = fields["goto"].flatMap { string($0, rulePath + ".goto") }
            if let condition, let target { rules.append(BranchRule(condition: condition, target: target)) }
        }
        return rules.count == items.count && !items.isEmpty ? rules : nil
    }

    private mutating func parseCondition(_ node: Node, _ path: String) -> BranchCondition? {
        let operatorNames = ["equals", "in", "exists", "greater_than", "less_than"]
        guard let fields = mapping(node, path, allowed: ["attribute", "step_data", "property", "not"] + operatorNames, required: []) else { return nil }
        if let inner = fields["not"] {
            if fields.count > 1 { issue(path, "'not' stands alone; put the other fields inside it") }
            return parseCondition(inner, path + ".not").map { .not($0) }
        }
        let operators = operatorNames.filter { fields[$0] != nil }
        guard operators.count == 1 else {
            issue(path, operators.isEmpty
                ? "needs one of equals, in, exists, greater_than, less_than (or not)"
                : "has \(operators.joined(separator: " and ")); use exactly one")
            return nil
        }
        let field: BranchCondition.Field
        let given = ["attribute", "step_data", "property"].filter { fields[$0] != nil }
        guard given.count == 1 else {
            if given.isEmpty {
                issue(path + ".attribute", "missing required field (or step_data, for a field a webhook step saved)")
            } else {
                issue(path, "has \(given.joined(separator: " and ")); use one")
            }
            return nil
        }
        guard let name = string(fields[given[0]]!, "\(path).\(given[0])") else { return nil }
        switch given[0] {
        case "attribute":
            field = .attribute(name)
        case "step_data":
            if !Self.isFieldName(name) { issue(path + ".step_data", "'\(name)' is not a field name (letters, digits, _)") }
            field = .stepData(name)
        default:
            if !Self.isFieldName(name) { issue(path + ".property", "'\(name)' is not a property name (letters, digits, _)") }
            field = .property(name)
        }
        switch operators[0] {
        case "equals":
            return fields["equals"].flatMap { string($0, path + ".equals") }.map { .equals(field, value: $0) }
        case "in":
            guard let node = fields["in"], let items = list(node, path + ".in") else { return nil }
            if items.isEmpty { issue(path + ".in", "must list at least one value") }
            let values = items.enumerated().compactMap { string($1, "\(path).in[\($0)]") }
            return values.count == items.count && !items.isEmpty ? .oneOf(field, values: values) : nil
        case "greater_than":
            return fields["greater_than"].flatMap { number($0, path + ".greater_than") }.map { .greaterThan(field, $0) }
        case "less_than":
            return fields["less_than"].flatMap { number($0, path + ".less_than") }.map { .lessThan(field, $0) }
        default:
            return fields["exists"].flatMap { bool($0, path + ".exists") }.map { .exists(field, present: $0) }
        }
    }

    private mutating func number(_ node: Node, _ path: String) -> Double? {
        guard case .scalar(let scalar) = node, scalar.tag.rawValue != Tag.Name.str.rawValue, let value = node.float, value.isFinite else {
            issue(path, "expected a number, got \(kindName(node))")
            return nil
        }
        return value
    }

    /// Letters, digits and `_`, not starting with a digit: a step-data field or a saved field.
    static func isFieldName(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, !("0"..."9").contains(first), text.count <= 64 else { return false }
        return text.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    // MARK: Node helpers

    mutating func issue(_ path: String, _ message: String) {
        issues.append(.init(file: file, path: path, message: message))
    }

    func isNull(_ node: Node) -> Bool {
        if case .scalar(let scalar) = node { return scalar.tag.rawValue == Tag.Name.null.rawValue || (scalar.tag.rawValue != Tag.Name.str.rawValue && node.null != nil) }
        return false
    }

    func kindName(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): isNull(node) ? "nothing" : "'\(scalar.string)'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    /// The fields of a mapping, with null values dropped (an empty `html:` means "not given").
    /// Reports unknown fields (with a suggestion), duplicates and missing required fields.
    mutating func mapping(_ node: Node, _ path: String, allowed: [String], required: [String]) -> [String: Node]? {
        guard case .mapping(let mapping) = node else {
            issue(path, "expected a mapping, got \(kindName(node))")
            return nil
        }
        var fields: [String: Node] = [:]
        var seen = Set<String>()
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode, !scalar.string.isEmpty else {
                // No name to put in the path: say where the field is instead.
                let problem = keyNode.scalar != nil ? "a field name is empty" : "field names must be plain text, got \(kindName(keyNode))"
                issue(path, Self.location(of: keyNode).map { "\($0): \(problem)" } ?? problem)
                continue
            }
            let key = scalar.string
            let fieldPath = path.isEmpty ? key : "\(path).\(key)"
            guard allowed.contains(key) else {
                let suggestion = allowed.min { Self.distance(key, $0) < Self.distance(key, $1) }
                    .flatMap { Self.distance(key, $0) <= 2 ? " — did you mean '\($0)'?" : nil } ?? ""
                issue(fieldPath, "unknown field\(suggestion) (allowed: \(allowed.joined(separator: ", ")))")
                continue
            }
            guard seen.insert(key).inserted else {
                issue(fieldPath, "appears twice")
                continue
            }
            if !isNull(value) { fields[key] = value }
        }
        for key in required where fields[key] == nil {
            issue(path.isEmpty ? key : "\(path).\(key)", "missing required field")
        }
        return fields
    }

    mutating func string(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let scalar) = node else {
            issue(path, "expected text, got \(kindName(node))")
            return nil
        }
        return scalar.string
    }

    mutating func bool(_ node: Node, _ path: String) -> Bool? {
        guard case .scalar = node, let value = node.bool else {
            issue(path, "expected true or false, got \(kindName(node))")
            return nil
        }
        return value
    }

    mutating func int(_ node: Node, _ path: String) -> Int? {
        guard case .scalar(let scalar) = node, scalar.tag.rawValue != Tag.Name.str.rawValue, let value = node.int else {
            issue(path, "expected a whole number, got \(kindName(node))")
            return nil
        }
        return value
    }

    mutating func list(_ node: Node, _ path: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            issue(path, "expected a list, got \(kindName(node))")
            return nil
        }
        return Array(sequence)
    }

    /// "line 3, column 1" for a node that came from text (nodes built in code have no mark).
    static func location(of node: Node) -> String? {
        node.mark.map { "line \($0.line), column \($0.column)" }
    }

    /// Yams' own descriptions quote the whole document; an author needs the place and the problem.
    static func describe(_ error: any Error) -> String {
        switch error as? YamlError {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            return "line \(mark.line), column \(mark.column): \(problem)" + (context.map { " (\($0.text))" } ?? "")
        case .reader(let problem, let offset?, _, let yaml):
            // Control characters and bad encodings; Yams' text would echo the offending line.
            let before = yaml.utf8.prefix(max(0, offset))
            let line = before.count { $0 == UInt8(ascii: "\n") } + 1
            let column = before.count - (before.lastIndex(of: UInt8(ascii: "\n")).map { before.distance(from: before.startIndex, to: $0) + 1 } ?? 0) + 1
            return "line \(line), column \(column): \(problem)"
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            return "line \(context.mark.line): field \(keys) appears twice in one mapping"
        default:
            return String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
        }
    }

    // MARK: Value rules

    static func isIdentifier(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, text.unicodeScalars.count <= maxNameLength else { return false }
        func allowed(_ scalar: Unicode.Scalar, first: Bool) -> Bool {
            switch scalar {
            case "a"..."z", "0"..."9": true
            case "_", "-": !first
            default: false
            }
        }
        return allowed(first, first: true) && text.unicodeScalars.dropFirst().allSatisfy { allowed($0, first: false) }
    }

    /// Deliberately loose: the relay is the judge of addresses; this catches typos like a missing `@`.
    static func isPlausibleAddress(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".")
            && !parts[1].hasPrefix(".") && !parts[1].hasSuffix(".")
            && !text.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" })
    }

    static func isHTTPURL(_ text: String) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty else { return false }
        return true
    }

    /// Levenshtein distance, for "did you mean" on unknown fields.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

extension SequenceDefinition {
    /// What sequence names and step keys look like (a regular expression).
    public static var namePattern: String { SequenceParser.namePattern }
    public static var maxNameLength: Int { SequenceParser.maxNameLength }

    /// Whether `name` could name a sequence (the parser's rule, for callers that take names from
    /// elsewhere, such as a URL path).
    public static func isValidName(_ name: String) -> Bool { SequenceParser.isIdentifier(name) }
}
