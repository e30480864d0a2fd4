import Foundation
import Mail
import Postgres
import SequenceEngine
import Testing
import TestSupport

/// Scenario 9 of the fault suite: hostile input. Generated and mutated sequence files (YAML and
/// JSON) and contact files, from a seeded generator (`seed=…` in every failure; replay with
/// `SEQD_FUZZ_SEED`). Many cases run through the parsers in-process, a sample through the real
/// CLI against a database. Raw inbound messages (`seqd inbound`) are at the end of the file.
///
/// Properties: nothing crashes; a rejected input stores nothing (a strict import with any bad
/// row stores nothing, a non-strict one exactly the good rows); every error names where — the file
/// and the field path, or the file and the line.
@Suite("fault suite: hostile input")
struct FaultSuiteHostileInputTests {
    init() { print("hostile input: seed=\(FuzzSeed.base) (replay with SEQD_FUZZ_SEED=\(FuzzSeed.base))") }

    /// An issue "names where" when it carries the file and either a field path or, for a file
    /// that is not a document at all, a line and column (or a whole-file problem: empty, not UTF-8).
    static func namesWhere(_ issue: SequenceValidationError.Issue, file: String) -> Bool {
        guard issue.file == file, issue.description.hasPrefix(file + ": "), !issue.message.isEmpty else { return false }
        if !issue.path.isEmpty { return issue.description.hasPrefix("\(file): \(issue.path): ") }
        // Syntax errors, control characters and nameless fields: "line 3, column 7: …".
        return issue.message.range(of: #"line \d+"#, options: .regularExpression) != nil
            || issue.message.hasPrefix("is empty") || issue.message.hasPrefix("is not UTF-8")
            || issue.message.hasPrefix("expected a mapping")
    }

    /// A field name at the top level that is empty or not text has no path to name: the issue
    /// gives its line and column instead.
    @Test("a bad top-level field name is reported with its line")
    func rootKeyNamesItsLine() {
        for text in ["\"\": x\nname: a\n", "{\"name\"}: x\n"] {
            do {
                _ = try SequenceDefinition.parse(text, fileName: "root.yaml")
                Issue.record("accepted \(text.debugDescription)")
            } catch {
                #expect(error.issues.contains { $0.message.hasPrefix("line 1, column 1: ") }, "\(error)")
                for issue in error.issues { #expect(Self.namesWhere(issue, file: "root.yaml"), "\(issue)") }
            }
        }
    }

    /// Found by the byte-damage fuzz: a `wait` step without `duration` used to give no issue at
    /// all, and `sequence apply` took the empty issue list for success (exit 0, nothing stored).
    @Test("a wait step without duration is rejected naming steps[1].duration")
    func waitWithoutDuration() async throws {
        let text = "name: nodur\nsender: { address: a@example.com }\nsteps:\n  - { type: email, subject: s, body: b }\n  - { type: wait }\n"
        do {
            _ = try SequenceDefinition.parse(text, fileName: "nodur.yaml")
            Issue.record("accepted a wait step without duration")
        } catch {
            #expect(error.issues.contains { $0.path == "steps[1].duration" }, "issues: \(error.issues)")
        }
        let url = try await TestDatabase.shared.makeMigratedDatabase(prefix: "fault_nodur")
        let seqd = try SeqdProcess(databaseURL: try await TestDatabase.shared.withRoles(url))
        try seqd.write("nodur.yaml", text)
        let result = try await seqd.run("sequence", "apply", "nodur.yaml")
        #expect(result.status == 65, "\(result)")
        #expect(result.stderr.contains("nodur.yaml: steps[1].duration: missing required field"), "\(result)")
        #expect(try Self.versions(try Connection(url)) == 0)
    }

    @Test("generated valid sequences parse, and their YAML and JSON forms are the same definition")
    func validSequencesParse() throws {
        for index in 0..<300 {
            var generator = FuzzSeed.generator(1, case: index)
            let document = SequenceFiles.valid(&generator)
            let yaml = SequenceFiles.render(document, asJSON: false, &generator)
            let json = SequenceFiles.render(document, asJSON: true, &generator)
            do {
                let fromYAML = try SequenceDefinition.parse(yaml, fileName: "gen.yaml")
                let fromJSON = try SequenceDefinition.parse(json, fileName: "gen.json")
                #expect(fromYAML == fromJSON, "\(FuzzSeed.label(case: index)): YAML and JSON differ\n\(yaml)\n\(json)")
            } catch {
                Issue.record("\(FuzzSeed.label(case: index)): a valid sequence was rejected: \(error)\n\(yaml)")
            }
        }
    }

    @Test("every mutation that breaks a sequence is rejected, naming the file and the field path it broke")
    func mutatedSequencesNameThePath() {
        for index in 0..<800 {
            var generator = FuzzSeed.generator(2, case: index)
            let mutation = SequenceFiles.mutate(SequenceFiles.valid(&generator), &generator)
            let asJSON = generator.chance(0.4)
            let file = asJSON ? "mutated.json" : "mutated.yaml"
            let text = SequenceFiles.render(mutation.document, asJSON: asJSON, &generator)
            do {
                _ = try SequenceDefinition.parse(text, fileName: file)
                Issue.record("\(FuzzSeed.label(case: index)): '\(mutation.name)' was accepted\n\(text)")
            } catch {
                #expect(
                    error.issues.contains { $0.path == mutation.path },
                    "\(FuzzSeed.label(case: index)): '\(mutation.name)' must be reported at \(mutation.path); got:\n\(error)\n\(text)")
                for issue in error.issues {
                    #expect(Self.namesWhere(issue, file: file), "\(FuzzSeed.label(case: index)): '\(issue)' does not say where")
                }
            }
        }
    }

    @Test("byte-damaged sequence files never crash the parser, and every error says where")
    func damagedSequencesSayWhere() {
        var accepted = 0
        for index in 0..<1_500 {
            var generator = FuzzSeed.generator(3, case: index)
            let asJSON = generator.chance(0.4)
            let file = asJSON ? "damaged.json" : "damaged.yaml"
            let data = SequenceFiles.damage(SequenceFiles.render(SequenceFiles.valid(&generator), asJSON: asJSON, &generator), &generator)
            do {
                _ = try SequenceDefinition.parse(data, fileName: file)
                accepted += 1
            } catch {
                #expect(!error.issues.isEmpty, "\(FuzzSeed.label(case: index)): rejected without a reason\n\(String(decoding: data, as: UTF8.self))")
                for issue in error.issues {
                    #expect(
                        Self.namesWhere(issue, file: file),
                        "\(FuzzSeed.label(case: index)): '\(issue)' does not say where\n\(String(decoding: data, as: UTF8.self))")
                    #expect(!issue.message.contains("was rejected without a reason"), "\(FuzzSeed.label(case: index)): \(issue)")
                }
            }
        }
        print("hostile input: \(accepted) of 1500 damaged sequence files were still valid")
    }

    @Test("generated contact files: exactly the bad rows rejected, with their line numbers; the good ones kept, last one wins")
    func contactFilesInProcess() throws {
        for index in 0..<600 {
            var generator = FuzzSeed.generator(4, case: index)
            let file = ContactFileCase.generate(&generator)
            let csv = try ContactCSV.parse(Data(file.text.utf8), fileName: "contacts.csv")
            let label = FuzzSeed.label(case: index)
            #expect(csv.rowCount == file.rows, "\(label)\n\(file.text)")
            #expect(csv.rejected.map(\.line) == file.rejectedLines, "\(label): rejected \(csv.rejected)\n\(file.text)")
            #expect(csv.rejected.allSatisfy { !$0.reason.isEmpty })
            let kept = Dictionary(csv.contacts.map { ($0.email.lowercased(), ($0.email, $0.firstName)) }) { _, last in last }
            #expect(csv.contacts.count == kept.count, "\(label): an address kept twice")
            #expect(Set(kept.keys) == Set(file.expected.keys), "\(label)\n\(file.text)")
            for (key, value) in file.expected {
                #expect(kept[key]?.0 == value.email && kept[key]?.1 == value.firstName, "\(label): \(key) stored as \(String(describing: kept[key])), expected \(value)")
            }
        }
    }

    @Test("hostile files that are not contact files at all are refused naming the file and line")
    func brokenHeaders() throws {
        for (text, expected) in [
            ("", "contacts.csv: the file is empty"), ("first_name\nAda\n", "contacts.csv: line 1: the header has no 'email' column"),
            ("email,Email\na@example.com,b\n", "contacts.csv: line 1: column 'email' appears twice"),
            ("\"email,first_name\n", "contacts.csv: line 1: a quoted field is not closed"),
        ] {
            do {
                _ = try ContactCSV.parse(Data(text.utf8), fileName: "contacts.csv")
                Issue.record("accepted \(text.debugDescription)")
            } catch {
                #expect(error.description.hasPrefix(expected), "\(error)")
            }
        }
        #expect(throws: ContactCSV.FileError.self) { try ContactCSV.parse(Data([0xFF, 0xFE, 0x00]), fileName: "contacts.csv") }
    }

    // MARK: The real CLI

    static func versions(_ connection: Connection) throws -> Int {
        try connection.query("SELECT count(*) AS n FROM seqd.sequence_versions")[0].decode("n")
    }

    @Test("seqd sequence apply with hostile files: exit 65 naming file and field, nothing stored; never a crash")
    func sequenceApplyCLI() async throws {
        let url = try await TestDatabase.shared.makeMigratedDatabase(prefix: "fault_hostile_seq")
        let seqd = try SeqdProcess(databaseURL: try await TestDatabase.shared.withRoles(url))
        let connection = try Connection(url)
        var generator = FuzzSeed.generator(5, case: 0)
        try seqd.write("good.yaml", SequenceFiles.render(SequenceFiles.valid(&generator), asJSON: false, &generator))
        // Structural mutations, each applied together with a valid file: all or nothing.
        for index in 0..<8 {
            var generator = FuzzSeed.generator(6, case: index)
            let mutation = SequenceFiles.mutate(SequenceFiles.valid(&generator), &generator)
            let asJSON = index % 2 == 1
            let file = try seqd.write("bad\(index).\(asJSON ? "json" : "yaml")", SequenceFiles.render(mutation.document, asJSON: asJSON, &generator))
            let result = try await seqd.run("sequence", "apply", "good.yaml", file)
            let label = "\(FuzzSeed.label(case: index)) (\(mutation.name))"
            #expect(result.status == 65, "\(label): \(result)")
            #expect(result.stderr.contains("\(file): \(mutation.path): "), "\(label): \(result)")
            for line in result.stderr.split(separator: "\n") {
                #expect(line.hasPrefix("\(file): "), "\(label): '\(line)' does not name the file")
            }
            #expect(try Self.versions(connection) == 0, "\(label): a rejected apply stored something")
        }
        // Byte damage and pathological documents: 0 or 65, never a crash, never a partial store.
        var samples = [(String, Data)]()
        for index in 0..<8 {
            var generator = FuzzSeed.generator(7, case: index)
            samples.append(("damaged\(index).yaml", SequenceFiles.damage(SequenceFiles.render(SequenceFiles.valid(&generator), asJSON: false, &generator), &generator)))
        }
        samples += [
            ("deep.yaml", Data((String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000)).utf8)),
            ("empty.yaml", Data()), ("nul.yaml", Data([0x6E, 0x00, 0x3A])), ("latin1.yaml", Data([0x6E, 0x61, 0x6D, 0x65, 0x3A, 0x20, 0xE9])),
            ("multi.yaml", Data("name: a\n---\nname: b\n".utf8)), ("scalar.json", Data("42".utf8)),
            ("huge-line.yaml", Data(("name: " + String(repeating: "x", count: 200_000) + "\n").utf8)),
        ]
        for (name, data) in samples {
            try data.write(to: seqd.directory.appendingPathComponent(name))
            let before = try Self.versions(connection)
            let result = try await seqd.run("sequence", "apply", name)
            #expect(result.status == 0 || result.status == 65, "seed=\(FuzzSeed.base) \(name): \(result)")
            if result.status == 65 {
                #expect(try Self.versions(connection) == before, "seed=\(FuzzSeed.base) \(name): rejected but stored")
                for line in result.stderr.split(separator: "\n") {
                    #expect(line.hasPrefix("\(name): "), "seed=\(FuzzSeed.base) \(name): '\(line)' does not name the file")
                }
            }
        }
        let good = try await seqd.run("sequence", "apply", "good.yaml")
        #expect(good.status == 0, "\(good)")
    }

    @Test("seqd contact import with hostile files: --strict stores nothing, otherwise exactly the good rows; FILE:LINE for each bad one")
    func contactImportCLI() async throws {
        for index in 0..<6 {
            var generator = FuzzSeed.generator(8, case: index)
            let file = ContactFileCase.generate(&generator, maxRows: 60, requireBad: true)
            let label = FuzzSeed.label(case: index)
            let url = try await TestDatabase.shared.makeMigratedDatabase(prefix: "fault_hostile_csv")
            let seqd = try SeqdProcess(databaseURL: try await TestDatabase.shared.withRoles(url))
            let connection = try Connection(url)
            let name = try seqd.write("hostile\(index).csv", file.text)
            func stored() throws -> [String: (String, String?)] {
                Dictionary(
                    try connection.query("SELECT email, first_name FROM seqd.contacts").rows.map {
                        let email = try $0.decode("email", as: String.self)
                        return (email.lowercased(), (email, try $0.decode("first_name", as: String?.self)))
                    }) { first, _ in first }
            }
            func reportedLines(_ result: SeqdProcess.Result) -> [Int] {
                result.stderr.split(separator: "\n").compactMap { line in
                    guard line.hasPrefix("\(name):") else { return nil }
                    return Int(line.dropFirst(name.count + 1).prefix { $0.isNumber })
                }
            }

            let strict = try await seqd.run("contact", "import", name, "--strict")
            #expect(strict.status == 65, "\(label): \(strict)")
            #expect(try stored().isEmpty, "\(label): --strict stored rows of a file with bad rows")
            #expect(reportedLines(strict) == file.rejectedLines, "\(label): \(strict)")

            let lenient = try await seqd.run("contact", "import", name)
            #expect(lenient.status == 65, "\(label): \(lenient)")
            #expect(reportedLines(lenient) == file.rejectedLines, "\(label): \(lenient)")
            let contacts = try stored()
            #expect(contacts.count == file.expected.count, "\(label): stored \(contacts.count), expected \(file.expected.count)\n\(file.text)")
            for (key, value) in file.expected {
                #expect(contacts[key]?.0 == value.email && contacts[key]?.1 == value.firstName,
                        "\(label): \(key) stored as \(String(describing: contacts[key])), expected \(value)\n\(file.text)")
            }
        }
    }
}

// MARK: - Raw inbound messages

/// Generated and mutated raw inbound messages: valid ones classify as built, every mutation is
/// refused naming the line it broke (or the whole-message problem), byte damage never crashes the
/// parser, and through the real `seqd inbound` a refused message changes nothing.
extension FaultSuiteHostileInputTests {
    /// Refusals that concern the whole message rather than one line.
    static let wholeMessageErrors = [
        "the message is empty", "the message is larger than", "the header section has no From, In-Reply-To or References",
    ]

    /// An inbound error "names where": the line it gives is in its text, or it is a whole-message problem.
    static func namesWhere(_ error: InboundMessageError) -> Bool {
        if let line = error.line { return line > 0 && error.description.hasPrefix("line \(line): ") && !error.message.isEmpty }
        return wholeMessageErrors.contains { error.message.hasPrefix($0) }
    }

    @Test("generated inbound messages (any header case, folding, CRLF or LF, MIME) parse and classify as built")
    func validInboundMessages() throws {
        let now = Date(timeIntervalSince1970: 1_796_025_000)
        let ours = "<seqd.0000-e1-hello@example.com>"
        for index in 0..<400 {
            var generator = FuzzSeed.generator(20, case: index)
            let message = InboundMessageCase.valid(&generator, messageID: ours)
            let label = FuzzSeed.label(case: index)
            do {
                let parsed = try InboundMessage.parse(Data(message.text.utf8))
                #expect(InboundClassifier.classify(parsed, now: now).kind == message.kind, "\(label)\n\(message.text)")
                let referred = message.text.contains("In-Reply-To") || message.text.lowercased().contains("references:")
                    || message.kind == "bounce" || message.kind == "ignored"
                if referred { #expect(parsed.matchReferences.map(\.messageID).contains(ours), "\(label)\n\(message.text)") }
                if message.kind != "bounce" && message.kind != "ignored" { #expect(parsed.from == "ada@example.org", "\(label)") }
            } catch {
                Issue.record("\(label): a valid message was refused: \(error)\n\(message.text)")
            }
        }
    }

    @Test("every mutation that breaks an inbound message is refused naming the line it broke")
    func mutatedInboundMessages() {
        for index in 0..<800 {
            var generator = FuzzSeed.generator(21, case: index)
            let mutation = InboundMessageCase.valid(&generator).mutate(&generator)
            let label = "\(FuzzSeed.label(case: index)) (\(mutation.name))"
            do {
                _ = try InboundMessage.parse(mutation.data)
                Issue.record("\(label): accepted\n\(String(decoding: mutation.data, as: UTF8.self))")
            } catch {
                #expect(error.description.hasPrefix(mutation.expected), "\(label): got '\(error)'\n\(String(decoding: mutation.data, as: UTF8.self))")
                #expect(Self.namesWhere(error), "\(label): '\(error)' does not say where")
            }
        }
    }

    @Test("byte-damaged inbound messages never crash the parser or the classifier; every refusal says where")
    func damagedInboundMessages() {
        var refused = 0
        for index in 0..<1_500 {
            var generator = FuzzSeed.generator(22, case: index)
            let data = SequenceFiles.damage(InboundMessageCase.valid(&generator).text, &generator)
            do {
                let message = try InboundMessage.parse(data)
                _ = InboundClassifier.classify(message, now: Date(timeIntervalSince1970: 1_796_025_000))
            } catch {
                refused += 1
                #expect(Self.namesWhere(error), "\(FuzzSeed.label(case: index)): '\(error)' does not say where\n\(String(decoding: data, as: UTF8.self))")
            }
        }
        print("hostile input: \(refused) of 1500 damaged inbound messages were refused, the rest read")
    }

    @Test("seqd inbound with hostile messages: exit 65 naming the line and nothing stored; damage gives 0, 1 or 65, never a crash")
    func inboundCLI() async throws {
        let contacts = (0..<24).map { "c\($0)@example.org" }
        let scenario = try await Scenario.prepare(
            prefix: "fault_hostile_inbound",
            sequence: """
                name: welcome
                sender: { address: team@example.com }
                steps:
                  - { key: hello, type: email, subject: "Welcome", body: "Hello" }
                  - { type: wait, duration: 2d }
                  - { key: again, type: email, subject: "Again", body: "Again" }
                """, name: "welcome", contacts: contacts)
        try await scenario.runOnce()
        let connection = try scenario.connect()
        let ids = Dictionary(
            uniqueKeysWithValues: try connection.query(
                "SELECT c.email, d.message_id FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id"
            ).rows.map { (try $0.decode("email", as: String.self), try $0.decode("message_id", as: String.self)) })
        try #require(ids.count == contacts.count)
        func snapshot() throws -> String {
            try connection.query(
                """
                SELECT (SELECT count(*) FROM seqd.signals) || '/' || (SELECT count(*) FROM seqd.suppressions) || '/'
                    || (SELECT string_agg(status::text || ':' || COALESCE(resume_at::text, '-'), ',' ORDER BY id) FROM seqd.enrollments) AS s
                """)[0].decode("s")
        }

        // Mutations: refused with the line, nothing stored.
        for index in 0..<10 {
            var generator = FuzzSeed.generator(23, case: index)
            let contact = contacts[index]
            let mutation = InboundMessageCase.valid(&generator, messageID: ids[contact]!, contact: contact).mutate(&generator)
            let label = "\(FuzzSeed.label(case: index)) (\(mutation.name))"
            let before = try snapshot()
            let result = try await scenario.seqd.run(["inbound"], input: mutation.data)
            #expect(result.status == 65, "\(label): \(result)")
            #expect(result.stderr.hasPrefix("seqd: stdin: \(mutation.expected)"), "\(label): \(result)")
            #expect(try snapshot() == before, "\(label): a refused message changed something")
        }
        // Byte damage of messages about real deliveries: applied, refused or malformed, never more.
        for index in 0..<12 {
            var generator = FuzzSeed.generator(24, case: index)
            let contact = contacts[10 + index]
            let data = SequenceFiles.damage(InboundMessageCase.valid(&generator, messageID: ids[contact]!, contact: contact).text, &generator)
            let before = try snapshot()
            let result = try await scenario.seqd.run(["inbound"], input: data)
            let label = FuzzSeed.label(case: index)
            #expect([0, 1, 65].contains(result.status), "\(label): \(result)")
            if result.status == 65 {
                #expect(result.stderr.hasPrefix("seqd: stdin: "), "\(label): \(result)")
                #expect(try snapshot() == before, "\(label): a refused message changed something")
            }
        }
        // Pathological shapes.
        let pathological: [(String, Data)] = [
            ("a 1 MiB header line", Data(("From: a@example.org\nSubject: " + String(repeating: "x", count: 1 << 20) + "\n\nhi\n").utf8)),
            ("20,000 header lines", Data(("From: a@example.org\n" + String(repeating: "X-Spam: y\n", count: 20_000) + "\nhi\n").utf8)),
            ("2,000 nested multiparts", Data(("From: a@example.org\nContent-Type: multipart/mixed; boundary=b0\n\n"
                + (1..<2_000).map { "--b\($0 - 1)\nContent-Type: multipart/mixed; boundary=b\($0)\n\n" }.joined()).utf8)),
            ("binary", Data((0..<65_536).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) })),
            ("only blank lines", Data(String(repeating: "\r\n", count: 1_000).utf8)),
        ]
        for (name, data) in pathological {
            let before = try snapshot()
            let result = try await scenario.seqd.run(["inbound"], input: data)
            #expect([0, 1, 65].contains(result.status), "\(name): \(result)")
            if result.status == 65 { #expect(try snapshot() == before, "\(name): a refused message changed something") }
        }
        let huge = try await scenario.seqd.run(["inbound"], input: Data(repeating: 0x41, count: (32 << 20) + 10))
        #expect(huge.status == 65, "\(huge)")
        #expect(huge.stderr.hasPrefix("seqd: stdin: the message is larger than 32 MiB"), "\(huge)")
        let check = try await scenario.seqd.run("check")
        #expect(check.status == 0, "\(check)")
    }
}
