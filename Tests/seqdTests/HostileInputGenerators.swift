import Foundation

/// SplitMix64: a small, fast generator whose whole state is its seed, so a failing case replays
/// exactly from the seed printed with it.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The fuzz seed of this test run: `SEQD_FUZZ_SEED` when set (to replay a failure), else a fresh
/// random one. Case `i` of a test draws from its own generator derived from the seed, so one case
/// replays without the others.
enum FuzzSeed {
    static let base: UInt64 = {
        if let text = ProcessInfo.processInfo.environment["SEQD_FUZZ_SEED"], let seed = UInt64(text) { return seed }
        return UInt64.random(in: 1...UInt64.max)
    }()

    static func generator(_ stream: UInt64, case index: Int) -> SeededGenerator {
        var mixer = SeededGenerator(seed: base ^ (stream &* 0xD6E8_FEB8_6659_FD93) ^ UInt64(index))
        return SeededGenerator(seed: mixer.next())
    }

    /// Goes into every failure message.
    static func label(case index: Int) -> String { "seed=\(base) case=\(index) (replay with SEQD_FUZZ_SEED=\(base))" }
}

extension RandomNumberGenerator {
    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &self) < probability }

    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &self)] }
}

/// A YAML/JSON document as a tree, so generators can build one, mutate it at a known field path,
/// and render it either way.
indirect enum Document: Equatable {
    case map([(String, Document)])
    case list([Document])
    case text(String)
    case number(Int)
    case flag(Bool)

    static func == (a: Document, b: Document) -> Bool {
        switch (a, b) {
        case (.map(let x), .map(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.list(let x), .list(let y)): x == y
        case (.text(let x), .text(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.flag(let x), .flag(let y)): x == y
        default: false
        }
    }

    subscript(key: String) -> Document? {
        get {
            guard case .map(let fields) = self else { return nil }
            return fields.first { $0.0 == key }?.1
        }
        set {
            guard case .map(var fields) = self else { return }
            if let index = fields.firstIndex(where: { $0.0 == key }) {
                if let newValue { fields[index].1 = newValue } else { fields.remove(at: index) }
            } else if let newValue {
                fields.append((key, newValue))
            }
            self = .map(fields)
        }
    }

    var items: [Document] {
        get {
            guard case .list(let items) = self else { return [] }
            return items
        }
        set { self = .list(newValue) }
    }

    /// A double-quoted scalar that is valid JSON and valid YAML alike.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += String(format: "\\u%04X", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    var json: String {
        switch self {
        case .map(let fields): "{" + fields.map { Self.quoted($0.0) + ": " + $0.1.json }.joined(separator: ", ") + "}"
        case .list(let items): "[" + items.map(\.json).joined(separator: ", ") + "]"
        case .text(let text): Self.quoted(text)
        case .number(let number): String(number)
        case .flag(let flag): String(flag)
        }
    }

    /// Block-style YAML; scalars plain when that is unambiguous (`plain` decides), else quoted.
    func yaml(plain: (String) -> Bool) -> String {
        yamlLines(plain: plain, indent: "").joined(separator: "\n") + "\n"
    }

    private func scalarYAML(plain: (String) -> Bool) -> String? {
        switch self {
        case .text(let text): plain(text) ? text : Self.quoted(text)
        case .number(let number): String(number)
        case .flag(let flag): String(flag)
        case .map(let fields) where fields.isEmpty: "{}"
        case .list(let items) where items.isEmpty: "[]"
        case .map, .list: nil
        }
    }

    private func yamlLines(plain: (String) -> Bool, indent: String) -> [String] {
        switch self {
        case .map(let fields):
            return fields.flatMap { key, value -> [String] in
                let name = plain(key) ? key : Self.quoted(key)
                if let scalar = value.scalarYAML(plain: plain) { return [indent + name + ": " + scalar] }
                return [indent + name + ":"] + value.yamlLines(plain: plain, indent: indent + "  ")
            }
        case .list(let items):
            return items.flatMap { item -> [String] in
                if let scalar = item.scalarYAML(plain: plain) { return [indent + "- " + scalar] }
                let inner = item.yamlLines(plain: plain, indent: indent + "  ")
                guard let first = inner.first else { return [indent + "-"] }
                return [indent + "- " + String(first.dropFirst(indent.count + 2))] + inner.dropFirst()
            }
        case .text, .number, .flag:
            return [indent + (scalarYAML(plain: plain) ?? "")]
        }
    }
}

/// Sequence files: valid ones from a small grammar, and mutations of them.
enum SequenceFiles {
    static let zones = ["UTC", "Europe/London", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "Europe/Berlin"]
    static let durations = ["90s", "5m", "36h", "2d", "1w", "1 business day", "3 business days"]
    /// Text that tests quoting and encodings: quotes, colons, hashes, YAML indicators, non-ASCII.
    static let fragments = [
        "Hello", "Grüße", "日本語", "🚀 launch", "a: b", "# not a comment", "- dash", "'single'", "\"double\"", "50%",
        "{curly}", "[square]", "tab\tin", "line\nbreak", "&anchor", "*alias", "!tag", "|pipe", ">fold", "@at", "`tick`",
        "yes", "null", "~", "0x1F", "1e3", "Ω≈ç√", "\\back\\slash",
    ]

    static func words<G: RandomNumberGenerator>(_ generator: inout G, _ count: ClosedRange<Int>) -> String {
        (0..<Int.random(in: count, using: &generator)).map { _ in generator.pick(fragments) }.joined(separator: " ")
    }

    static func identifier<G: RandomNumberGenerator>(_ generator: inout G, prefix: String) -> String {
        let tail = "abcdefghijklmnopqrstuvwxyz0123456789_-"
        return prefix + String((0..<Int.random(in: 0...12, using: &generator)).map { _ in generator.pick(Array(tail)) })
    }

    /// A valid sequence: 1 to 8 steps, at least one email first, explicit or default keys,
    /// threads only after an email, branches only forward (or to `end`).
    static func valid<G: RandomNumberGenerator>(_ generator: inout G) -> Document {
        var root: [(String, Document)] = [("name", .text(identifier(&generator, prefix: "s")))]
        if generator.chance(0.5) { root.append(("description", .text(words(&generator, 1...6)))) }
        var sender: [(String, Document)] = [("address", .text("sender\(Int.random(in: 0...99, using: &generator))@example.com"))]
        if generator.chance(0.5) { sender.append(("name", .text(words(&generator, 1...3)))) }
        if generator.chance(0.3) { sender.append(("daily_limit", .number(Int.random(in: 1...5_000, using: &generator)))) }
        root.append(("sender", .map(sender)))
        if generator.chance(0.5) { root.append(("time_zone", .text(generator.pick(zones)))) }
        if generator.chance(0.3) { root.append(("exit_on_reply", .flag(generator.chance(0.5)))) }

        let count = Int.random(in: 1...8, using: &generator)
        var kinds = ["email"] + (1..<count).map { _ in generator.pick(["email", "wait", "wait", "branch"]) }
        if kinds.last == "branch" { kinds[kinds.count - 1] = "email" }
        var keys = [String]()
        for (index, kind) in kinds.enumerated() {
            keys.append(generator.chance(0.6) ? "k\(index)-" + identifier(&generator, prefix: "x") : "\(kind)-\(index + 1)")
        }
        var steps = [Document]()
        for (index, kind) in kinds.enumerated() {
            var step: [(String, Document)] = []
            if !keys[index].hasPrefix("\(kind)-") { step.append(("key", .text(keys[index]))) }
            step.append(("type", .text(kind)))
            switch kind {
            case "email":
                let thread = index > 0 && kinds[..<index].contains("email") && generator.chance(0.3)
                if !thread || generator.chance(0.5) {
                    step.append(("subject", .text(words(&generator, 1...4) + " {{first_name|there}}")))
                }
                step.append(("body", .text("Hi {{first_name|friend}}, " + words(&generator, 1...10))))
                if generator.chance(0.3) { step.append(("html", .text("<p>" + words(&generator, 1...5) + "</p>"))) }
                if thread { step.append(("thread", .flag(true))) }
            case "wait":
                step.append(("duration", .text(generator.pick(durations))))
            default:
                let later = keys[(index + 1)...] + ["end"]
                let rules = (0..<Int.random(in: 1...2, using: &generator)).map { _ -> Document in
                    .map([
                        ("if", .map([("attribute", .text("plan")), ("equals", .text(generator.pick(["pro", "free", "Grüße"])))])),
                        ("goto", .text(generator.pick(Array(later)))),
                    ])
                }
                step.append(("when", .list(rules)))
            }
            steps.append(.map(step))
        }
        root.append(("steps", .list(steps)))
        return .map(root)
    }

    /// Renders as YAML (mostly plain scalars where safe) or JSON.
    static func render<G: RandomNumberGenerator>(_ document: Document, asJSON: Bool, _ generator: inout G) -> String {
        if asJSON { return document.json + "\n" }
        let quoteEverything = generator.chance(0.3)
        return document.yaml { text in
            !quoteEverything && (text.first?.isLetter ?? false) && text.unicodeScalars.allSatisfy { scalar in
                switch scalar {
                case "a"..."z", "A"..."Z", "0"..."9", "_", "-", "@", ".": true
                default: false
                }
            } && !["yes", "no", "true", "false", "null", "on", "off", "y", "n", "~"].contains(text.lowercased())
                && text.first != "-" && Int(text) == nil && Double(text) == nil
        }
    }

    /// A change that makes a valid document invalid at a known place.
    struct Mutation {
        let name: String
        /// The field path the error must name (`steps[2].duration`).
        let path: String
        let document: Document
    }

    /// Applies one randomly chosen mutation to `document` (a `valid` one).
    static func mutate<G: RandomNumberGenerator>(_ document: Document, _ generator: inout G) -> Mutation {
        var document = document
        let steps = document["steps"]?.items ?? []
        let stepIndex = Int.random(in: 0..<steps.count, using: &generator)
        func indexes(ofType type: String) -> [Int] {
            steps.indices.filter { steps[$0]["type"] == .text(type) }
        }
        func setStep(_ index: Int, _ key: String, _ value: Document?) {
            var all = steps
            all[index][key] = value
            document["steps"] = .list(all)
        }
        switch Int.random(in: 0..<14, using: &generator) {
        case 0:
            let field = generator.pick(["name", "sender", "steps"])
            document[field] = nil
            return Mutation(name: "missing \(field)", path: field, document: document)
        case 1:
            document["colour"] = .text("blue")
            return Mutation(name: "unknown root field", path: "colour", document: document)
        case 2:
            var sender = document["sender"] ?? .map([])
            sender["reply_to"] = .text("x@example.com")
            document["sender"] = sender
            return Mutation(name: "unknown sender field", path: "sender.reply_to", document: document)
        case 3:
            setStep(stepIndex, "colour", .text("red"))
            return Mutation(name: "unknown step field", path: "steps[\(stepIndex)].colour", document: document)
        case 4:
            let (field, value): (String, Document) = generator.pick([
                ("steps", .text("none")), ("sender", .list([.text("a@example.com")])), ("steps", .map([("type", .text("email"))])),
                ("exit_on_reply", .text("maybe")), ("name", .list([])),
            ])
            document[field] = value
            return Mutation(name: "wrong type at \(field)", path: field, document: document)
        case 5:
            guard let wait = indexes(ofType: "wait").first else { fallthrough }
            setStep(wait, "duration", .text(generator.pick(["2x", "1 fortnight", "s5", "-1s", "5 business weeks", "1.5h"])))
            return Mutation(name: "bad duration", path: "steps[\(wait)].duration", document: document)
        case 6:
            setStep(stepIndex, "key", .text(generator.pick(["Bad Key", "UPPER", "end", "-lead", "ü", String(repeating: "k", count: 65)])))
            return Mutation(name: "bad step key", path: "steps[\(stepIndex)].key", document: document)
        case 7:
            guard steps.count >= 2 else { fallthrough }
            let second = Int.random(in: 1..<steps.count, using: &generator)
            let first = Int.random(in: 0..<second, using: &generator)
            setStep(first, "key", .text("dup"))
            var all = document["steps"]?.items ?? []
            all[second]["key"] = .text("dup")
            document["steps"] = .list(all)
            return Mutation(name: "duplicate step key", path: "steps[\(second)].key", document: document)
        case 8:
            document["time_zone"] = .text(generator.pick(["Mars/Olympus_Mons", "Europe/Londn", "GMT+5", "utc", "Not a zone"]))
            return Mutation(name: "bad time zone", path: "time_zone", document: document)
        case 9:
            var sender = document["sender"] ?? .map([])
            sender["address"] = .text(generator.pick(["not-an-address", "a@b", "two@@example.com", "<x@example.com>", "sp ace@example.com"]))
            document["sender"] = sender
            return Mutation(name: "bad sender address", path: "sender.address", document: document)
        case 10:
            let email = generator.pick(indexes(ofType: "email"))
            let field = generator.pick(["body", "html"])
            setStep(email, field, .text(generator.pick(["Hi {{first_name", "{{}}", "{{ bad name }}", "{{first name}}", "}}{{"])))
            return Mutation(name: "malformed template", path: "steps[\(email)].\(field)", document: document)
        case 11:
            var all = steps
            all[0]["key"] = .text("first-step")
            all.append(.map([("type", .text("branch")), ("when", .list([.map([
                ("if", .map([("attribute", .text("plan")), ("exists", .flag(true))])), ("goto", .text("first-step")),
            ])]))]))
            document["steps"] = .list(all)
            return Mutation(name: "backward goto", path: "steps[\(all.count - 1)].when[0].goto", document: document)
        case 12:
            setStep(stepIndex, "type", .text(generator.pick(["sms", "Email", "", "wait "])))
            return Mutation(name: "unknown step type", path: "steps[\(stepIndex)].type", document: document)
        default:
            document["name"] = .text(generator.pick(["Has Space", "UPPER", "-lead", "ümlaut", String(repeating: "n", count: 65), ""]))
            return Mutation(name: "bad name", path: "name", document: document)
        }
    }

    /// Byte-level damage: deleted, inserted or overwritten bytes, truncation, or structural
    /// characters sprinkled in. The result need not be UTF-8.
    static func damage<G: RandomNumberGenerator>(_ text: String, _ generator: inout G) -> Data {
        var bytes = Array(text.utf8)
        let noise: [[UInt8]] = [":", "{", "}", "[", "]", "-", "#", "&", "*", "!", "|", ">", "'", "\"", "%", "@", "`", "\n", "\t", " ", ",", "?"]
            .map { Array($0.utf8) } + [[0x00], [0xFF], [0xC3], [0xE2, 0x80], Array("\u{FEFF}".utf8), Array("🚀".utf8), Array("\r\n".utf8)]
        for _ in 0..<Int.random(in: 1...4, using: &generator) where !bytes.isEmpty {
            let position = Int.random(in: 0..<bytes.count, using: &generator)
            switch Int.random(in: 0..<5, using: &generator) {
            case 0: bytes.removeSubrange(position..<min(bytes.count, position + Int.random(in: 1...8, using: &generator)))
            case 1: bytes.insert(contentsOf: generator.pick(noise), at: position)
            case 2: bytes[position] = UInt8.random(in: 0...255, using: &generator)
            case 3: bytes.removeSubrange(position...)
            default: bytes.insert(contentsOf: Array(repeating: UInt8(ascii: " "), count: Int.random(in: 1...3, using: &generator)), at: position)
            }
        }
        return Data(bytes)
    }
}

/// Contact files with a known answer: which lines must be rejected, and which contacts stored.
struct ContactFileCase {
    /// The file's bytes.
    let text: String
    /// Lines (1-based, counting the header) of the rows that must be rejected, ascending.
    let rejectedLines: [Int]
    /// The contacts that must be stored, by lower-cased address: the spelling and first name
    /// of the last good row with that address.
    let expected: [String: (email: String, firstName: String?)]
    let rows: Int

    static let goodZones = ["Europe/Berlin", "America/New_York", "UTC", "Asia/Kolkata", "Pacific/Auckland", ""]
    static let badZones = ["Mars/Olympus_Mons", "Europe/Londn", "GMT+5", "Not A Zone", "utc/"]
    static let badEmails = [
        "no-at-sign.example.com", "two@@example.com", "a b@example.com", "x@nodot", "@example.com", "x@.example.com",
        "x@example.com.", "<x@example.com>", "semi;colon@example.com", "",
    ]
    static let names = ["Ada", "Grüße", "O'Brien", "Zoë", "李", "🚀", "a,b", "say \"hi\"", "multi\nline", "  padded  ", "", "=SUM(A1)"]

    static func csvField(_ value: String, forceQuote: Bool) -> String {
        let needs = value.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" } || value.hasPrefix("\"")
        guard needs || forceQuote else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A file of 1 to `maxRows` data rows, about a third of them bad in one of the ways
    /// `contact import` must catch; `requireBad` makes sure at least one is.
    static func generate<G: RandomNumberGenerator>(_ generator: inout G, maxRows: Int = 40, requireBad: Bool = false) -> ContactFileCase {
        var columns = ["email", "first_name"] + ["last_name", "time_zone", "plan", "notes"].filter { _ in generator.chance(0.5) }
        columns.shuffle(using: &generator)
        let newline = generator.chance(0.3) ? "\r\n" : "\n"
        var text = generator.chance(0.2) ? "\u{FEFF}" : ""
        var line = 1
        func emit(_ record: String, terminated: Bool = true) {
            text += record
            line += record.filter { $0 == "\n" || $0 == "\r\n" }.count
            if terminated {
                text += newline
                line += 1
            }
        }
        emit(columns.map { csvField($0, forceQuote: generator.chance(0.1)) }.joined(separator: ","))

        var rejected = [Int]()
        var expected = [String: (email: String, firstName: String?)]()
        var goodEmails = [String]()
        let count = Int.random(in: 1...maxRows, using: &generator)
        let forcedBad = requireBad ? Int.random(in: 0..<count, using: &generator) : -1
        for row in 0..<count {
            while generator.chance(0.1) { emit("") }  // blank lines: skipped, but they count as lines
            let isLast = row == count - 1
            var kind = generator.chance(0.65) ? "good" : generator.pick(["email", "zone", "count", "afterQuote", "unterminated"])
            if row == forcedBad && kind == "good" { kind = generator.pick(["email", "count", "afterQuote"]) }
            if kind == "zone" && !columns.contains("time_zone") { kind = "email" }
            if kind == "unterminated" && !isLast { kind = "count" }

            var email: String
            if !goodEmails.isEmpty && generator.chance(0.15) {
                // The same address again, maybe in another case: the last one wins.
                let earlier = generator.pick(goodEmails)
                email = generator.chance(0.5) ? earlier.uppercased() : earlier
            } else {
                email = generator.chance(0.1) ? "zoë\(row)@example.com" : "user\(row)@Example.com"
            }
            if generator.chance(0.1) { email = "  \(email) " }
            if kind == "email" { email = generator.pick(badEmails) }
            let firstName = generator.pick(names)
            var fields = columns.map { column -> String in
                switch column {
                case "email": email
                case "first_name": firstName
                case "time_zone": kind == "zone" ? generator.pick(badZones) : generator.pick(goodZones)
                case "last_name": generator.pick(names)
                default: generator.pick(names + ["pro", "free"])
                }
            }
            var rendered = fields.map { csvField($0, forceQuote: generator.chance(0.15)) }
            switch kind {
            case "count":
                if generator.chance(0.5) || fields.count < 3 {
                    rendered.append("extra")
                } else {
                    rendered.removeLast()
                    fields.removeLast()
                }
            case "afterQuote":
                let column = Int.random(in: 0..<rendered.count, using: &generator)
                rendered[column] = "\"" + fields[column].replacingOccurrences(of: "\"", with: "\"\"") + "\"junk"
            case "unterminated":
                rendered[rendered.count - 1] = "\"never closed" + newline + "still inside"
            default: break
            }
            let startLine = line
            emit(rendered.joined(separator: ","), terminated: kind == "unterminated" ? false : (!isLast || generator.chance(0.7)))
            if kind == "good" {
                let trimmed = email.trimmingCharacters(in: .whitespaces)
                let name = firstName.trimmingCharacters(in: .whitespaces)
                expected[trimmed.lowercased()] = (trimmed, name.isEmpty ? nil : name)
                goodEmails.append(trimmed)
            } else {
                rejected.append(startLine)
            }
        }
        return ContactFileCase(text: text, rejectedLines: rejected, expected: expected, rows: count)
    }
}

/// Raw inbound messages with a known answer: valid ones of each classification (replies,
/// auto-replies, 5.x.x and 4.x.x delivery reports) in the shapes real mail takes — header names in
/// any case, folded lines, CRLF or LF, RFC 2047 subjects, MIME bodies — and mutations that break
/// the message at a known line.
struct InboundMessageCase {
    /// Physical header lines (continuation lines start with white space), without line ends.
    var headers: [String]
    var body: [String]
    let newline: String
    /// What the classifier must say: `reply`, `out_of_office`, `bounce`, `ignored`.
    let kind: String

    var text: String { (headers + [""] + body).joined(separator: newline) + newline }

    static let subjects = [
        "Re: Welcome", "=?UTF-8?Q?Re=3A_Gr=C3=BC=C3=9Fe?=", "=?utf-8?B?UmU6IOaXpeacrOiqng==?=", "RE: a: b: c", "Re: 🚀 launch",
        "Re:", "=?ISO-8859-1?Q?Re=3A_Caf=E9?= =?ISO-8859-1?Q?_cr=E8me?=",
    ]
    static let autoSubjects = ["Automatic reply: Welcome", "Out of Office: Welcome", "AUTO: away", "Abwesenheitsnotiz: Willkommen"]
    static let bodyLines = [
        "Thanks!", "> Hello!", "On Mon, Nov 30, 2026 at 7:45 AM Team <team@example.com> wrote:", "Grüße", "-- ", "a: b", "",
        "=?UTF-8?Q?not_a_header?=", "--", "From the desk of Ada", "\tindented",
    ]

    /// A valid message referring to `messageID` (a seqd Message-ID) from `contact` to `sender`.
    static func valid<G: RandomNumberGenerator>(
        _ generator: inout G, messageID: String = "<seqd.0000-e1-hello@example.com>", contact: String = "ada@example.org",
        sender: String = "team@example.com"
    ) -> InboundMessageCase {
        let kind = generator.pick(["reply", "reply", "out_of_office", "bounce", "ignored"])
        let newline = generator.chance(0.5) ? "\r\n" : "\n"
        func name(_ text: String) -> String {
            switch Int.random(in: 0..<4, using: &generator) {
            case 0: text.lowercased()
            case 1: text.uppercased()
            default: text
            }
        }
        var fields = [[String]]()  // each field: its physical lines
        func add(_ field: String, _ value: String, foldedValue: String? = nil) {
            var lines = ["\(name(field)): \(value)"]
            if let foldedValue { lines.append((generator.chance(0.5) ? " " : "\t") + foldedValue) }
            fields.append(lines)
        }
        var body = [String]()
        switch kind {
        case "reply", "out_of_office":
            add("From", generator.pick(["Ada <\(contact)>", "\"Lovelace, Ada\" <\(contact)>", contact, "=?UTF-8?Q?Ad=C3=A1?= <\(contact)> (home)"]))
            add("To", generator.pick(["Team <\(sender)>", sender, "Team: \(sender), other@example.net;"]))
            let subject = kind == "reply" ? generator.pick(subjects) : generator.pick(autoSubjects)
            if generator.chance(0.3), let space = subject.firstIndex(of: " ") {
                add("Subject", String(subject[..<space]), foldedValue: String(subject[subject.index(after: space)...]))
            } else {
                add("Subject", subject)
            }
            if generator.chance(0.8) { add("In-Reply-To", messageID) }
            if generator.chance(0.6) { add("References", "<thread-\(Int.random(in: 1...99, using: &generator))@example.net>", foldedValue: messageID) }
            if kind == "out_of_office", generator.chance(0.5) { add("Auto-Submitted", "auto-replied") }
            if kind == "reply", generator.chance(0.2) { add("Auto-Submitted", "no") }
            add("Message-ID", "<\(UInt64.random(in: 1...UInt64.max, using: &generator))@mail.example.org>")
            add("Date", "Mon, 30 Nov 2026 09:12:31 +0100")
            body = (0..<Int.random(in: 0...6, using: &generator)).map { _ in generator.pick(bodyLines) }
            if generator.chance(0.3) {
                add("MIME-Version", "1.0")
                add("Content-Type", "multipart/alternative;", foldedValue: "boundary=\"b-\(Int.random(in: 1...999, using: &generator))\"")
                let boundary = fields.last![1].split(separator: "\"")[1]
                body = ["--\(boundary)", "Content-Type: text/plain; charset=utf-8", ""] + body
                    + ["--\(boundary)", "Content-Type: text/html", "", "<p>hi</p>", "--\(boundary)--"]
            }
        default:
            let permanent = kind == "bounce"
            add("From", "MAILER-DAEMON@mx.example.com (Mail Delivery System)")
            add("To", sender)
            add("Subject", permanent ? "Undelivered Mail Returned to Sender" : "Delayed Mail (still being retried)")
            add("Auto-Submitted", "auto-replied")
            add("MIME-Version", "1.0")
            add("Content-Type", "multipart/report; report-type=delivery-status;", foldedValue: "boundary=\"R.1/mx\"")
            let status = permanent ? generator.pick(["5.1.1", "5.2.1", "5.1.10", "5.0.0"]) : generator.pick(["4.4.7", "4.2.2", "4.4.1"])
            body = [
                "This is a MIME-encapsulated message.", "", "--R.1/mx", "Content-Type: text/plain", "", "Sorry.", "",
                "--R.1/mx", "Content-Type: message/delivery-status", "", "Reporting-MTA: dns; mx.example.com", "",
                "Final-Recipient: rfc822; \(contact)", "Action: \(permanent ? "failed" : "delayed")", "Status: \(status)", "",
                "--R.1/mx", "Content-Type: \(generator.pick(["text/rfc822-headers", "message/rfc822"]))", "",
                "From: \(sender)", "To: \(contact)", "Message-ID: \(messageID)", "", "--R.1/mx--",
            ]
        }
        fields.shuffle(using: &generator)
        return InboundMessageCase(headers: fields.flatMap { $0 }, body: body, newline: newline, kind: kind)
    }

    /// A change that makes a valid message malformed, and the error it must give.
    struct Mutation {
        let name: String
        /// The error's description must start with this (`line 4: a header line without a colon`).
        let expected: String
        let data: Data
    }

    /// Indexes of header lines that start a field (not continuations).
    var fieldStarts: [Int] { headers.indices.filter { !(headers[$0].first?.isWhitespace ?? true) } }

    /// The physical lines of the fields named `names` (case-insensitive), continuations included.
    func lines(ofFields names: Set<String>) -> [Int] {
        var result = [Int]()
        var inField = false
        for (index, line) in headers.enumerated() {
            if let first = line.first, !first.isWhitespace {
                inField = names.contains(String(line.prefix { $0 != ":" }).lowercased())
            }
            if inField { result.append(index) }
        }
        return result
    }

    func mutate<G: RandomNumberGenerator>(_ generator: inout G) -> Mutation {
        var copy = self
        func data(_ message: InboundMessageCase) -> Data { Data(message.text.utf8) }
        switch Int.random(in: 0..<8, using: &generator) {
        case 0:
            let at = Int.random(in: 0...headers.count, using: &generator)
            // (Not "From …" first: that is an mbox envelope line, which seqd skips.)
            copy.headers.insert(generator.pick(at == 0 ? ["no colon here", "Subject"] : ["no colon here", "Subject", "From ada@example.org", "=?UTF-8?Q?x?="]), at: at)
            return Mutation(name: "header line without a colon", expected: "line \(at + 1): a header line without a colon", data: data(copy))
        case 1:
            copy.headers.insert(generator.pick([" folded", "\tfolded: value"]), at: 0)
            return Mutation(name: "continuation first", expected: "line 1: a folded continuation line comes before any header field", data: data(copy))
        case 2:
            let at = generator.pick(fieldStarts)
            copy.headers[at] = "X Bad" + copy.headers[at].drop { $0 != ":" }
            return Mutation(name: "space in a field name", expected: "line \(at + 1): a header field name with characters RFC 5322 forbids", data: data(copy))
        case 3:
            let at = Int.random(in: 0..<headers.count, using: &generator)
            var line = Array(copy.headers[at].utf8)
            line.insert(0, at: Int.random(in: 0...line.count, using: &generator))
            copy.headers[at] = String(decoding: line, as: UTF8.self)
            return Mutation(name: "NUL in a header", expected: "line \(at + 1): a header line contains a NUL byte", data: data(copy))
        case 4:
            let text = generator.pick(["\n", "\r\n"]) + text
            return Mutation(name: "no header section", expected: "line 1: the message has no header section", data: Data(text.utf8))
        case 5:
            let removed = Set(lines(ofFields: ["from", "in-reply-to", "references"]))
            copy.headers = headers.indices.filter { !removed.contains($0) }.map { headers[$0] }
            guard !copy.headers.isEmpty else { fallthrough }
            return Mutation(
                name: "nothing to match by", expected: "the header section has no From, In-Reply-To or References", data: data(copy))
        case 6:
            let removed = Set(lines(ofFields: ["in-reply-to", "references", "from"]))
            copy.headers = headers.indices.filter { !removed.contains($0) }.map { headers[$0] }
            let at = Int.random(in: 0...copy.headers.count, using: &generator)
            copy.headers.insert("From: " + generator.pick(["undisclosed-recipients:;", "Ada Lovelace", "(nobody)", "<>"]), at: at)
            return Mutation(name: "From without an address", expected: "line \(at + 1): the From header holds no address", data: data(copy))
        default:
            return Mutation(name: "empty", expected: "the message is empty", data: Data())
        }
    }
}
