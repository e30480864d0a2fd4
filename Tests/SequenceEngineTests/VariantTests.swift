import Foundation
import Testing
@testable import SequenceEngine

/// A/B variants of an email step (issue 19 item 3): parsing, the deterministic weighted pick, and
/// threaded replies that keep each contact's variant subject.
@Suite struct VariantTests {
    static let yaml = """
        name: split
        sender: { address: team@example.com }
        steps:
          - key: intro
            type: email
            body: "Hi {{first_name|there}}"
            variants:
              - { key: a, weight: 3, subject: "Quick question, {{first_name|there}}" }
              - { key: b, subject: "An idea for {{company|your team}}", body: "Hello {{first_name|there}}", html: "<p>Hello</p>" }
          - { type: wait, duration: 1d }
          - { key: bump, type: email, thread: true, body: "Any thoughts?" }
          - { key: last, type: email, thread: true, subject: "Closing the loop", body: "Last one" }
        """

    func email(_ definition: SequenceDefinition, _ key: String) throws -> SequenceDefinition.Email {
        let step = try #require(definition.steps.first { $0.key == key })
        guard case .email(let email) = step.kind else { throw ParseFailure.notAnEmail }
        return email
    }

    enum ParseFailure: Error { case notAnEmail }

    @Test("variants fill what they leave out from the step; a threaded reply inherits the parent's variants as Re: subjects")
    func parsing() throws {
        let parsed = try definition(Self.yaml)
        let intro = try email(parsed, "intro")
        #expect(intro.variants.map(\.key) == ["a", "b"])
        #expect(intro.variants.map(\.weight) == [3, 1])
        #expect(intro.variants[0].body == "Hi {{first_name|there}}")
        #expect(intro.variants[0].html == nil)
        #expect(intro.variants[1].body == "Hello {{first_name|there}}" && intro.variants[1].html == "<p>Hello</p>")
        #expect(intro.variantsOf == nil)
        let bump = try email(parsed, "bump")
        #expect(bump.variantsOf == "intro")
        #expect(bump.variants.map(\.subject) == ["Re: Quick question, {{first_name|there}}", "Re: An idea for {{company|your team}}"])
        #expect(bump.variants.map(\.weight) == [3, 1])
        #expect(bump.variants.allSatisfy { $0.body == "Any thoughts?" })
        // A reply with its own subject has no variants: the author chose one subject for everyone.
        #expect(try email(parsed, "last").variants.isEmpty)
        // The canonical JSON a version stores decodes to the same definition.
        #expect(try SequenceDefinition.decodeStored(parsed.canonicalJSON()) == parsed)
    }

    @Test("1,000 enrollments split within a few percent of the weights, the same way every time; each reply keeps its variant's subject")
    func split() throws {
        let parsed = try definition(Self.yaml)
        let intro = try email(parsed, "intro")
        let bump = try email(parsed, "bump")
        var counts = [String: Int]()
        for id in Int64(1)...1_000 {
            let pick = try #require(intro.variant(for: id, stepKey: "intro"))
            counts[pick.key, default: 0] += 1
            #expect(intro.variant(for: id, stepKey: "intro") == pick, "the pick is stable")
            let first = try parsed.render(intro, at: 0, for: ada, enrollmentID: id)
            let reply = try parsed.render(bump, at: 2, for: ada, enrollmentID: id)
            #expect(first.variant == pick.key && reply.variant == pick.key)
            #expect(reply.subject == "Re: " + first.subject)
            #expect(reply.threadParentKey == "intro")
        }
        // Weights 3:1 → 750 / 250; a binomial standard deviation is 13.7, so ±40 is about 3σ.
        let a = counts["a", default: 0]
        #expect(abs(a - 750) <= 40, "a got \(a) of 1000")
        #expect(a + counts["b", default: 0] == 1_000)
        // Steps pick independently: a later step with its own variants does not mirror intro's split.
        let independent = try definition("""
            name: two
            sender: { address: team@example.com }
            steps:
              - { key: one, type: email, body: x, variants: [{ key: a, subject: A }, { key: b, subject: B }] }
              - { key: two, type: email, body: y, variants: [{ key: a, subject: A }, { key: b, subject: B }] }
            """)
        let one = try email(independent, "one"), two = try email(independent, "two")
        let same = (Int64(1)...1_000).count { one.variant(for: $0, stepKey: "one")?.key == two.variant(for: $0, stepKey: "two")?.key }
        #expect(abs(same - 500) <= 60, "\(same) of 1000 got the same key at both steps")
        // Weight 0 switches a variant off.
        let off = try definition("""
            name: off
            sender: { address: team@example.com }
            steps:
              - { key: one, type: email, body: x, variants: [{ key: a, subject: A, weight: 0 }, { key: b, subject: B }] }
            """)
        let only = try email(off, "one")
        #expect((Int64(1)...200).allSatisfy { only.variant(for: $0, stepKey: "one")?.key == "b" })
    }

    @Test("a forced variant renders that variant; its own html replaces the step's")
    func forced() throws {
        let parsed = try definition(Self.yaml)
        let intro = try email(parsed, "intro")
        let b = try parsed.render(intro, at: 0, for: ada, enrollmentID: 1, variant: intro.variant(named: "b"))
        #expect(b.subject == "An idea for your team" && b.text == "Hello Ada" && b.html == "<p>Hello</p>" && b.variant == "b")
        #expect(intro.variant(named: "c") == nil)
    }

    @Test("bad variants are refused at apply time with their field paths")
    func refused() {
        func problems(_ variants: String, thread: String = "") -> [String] {
            issues("""
                name: bad
                sender: { address: team@example.com }
                steps:
                  - key: intro
                    type: email
                    body: "Hi"
                    variants: [{ key: a, subject: A }, { key: b, subject: B }]
                  - key: next
                    type: email
                    \(thread)
                    variants: \(variants)
                """)
        }
        #expect(problems("[{ key: a, subject: A, body: x }]")
            == ["test.yaml: steps[1].variants: must list 2 to 10 variants, got 1"])
        #expect(problems("[{ key: a, subject: A, body: x }, { key: a, subject: B, body: y }]")
            == ["test.yaml: steps[1].variants[1].key: duplicate variant key 'a' (also steps[1].variants[0])"])
        #expect(problems("[{ key: A!, subject: A, body: x }, { key: b, subject: B, body: y, weight: 1001 }]") == [
            "test.yaml: steps[1].variants[0].key: 'A!' is not allowed: use [a-z0-9][a-z0-9_-]*, at most 64 characters",
            "test.yaml: steps[1].variants[1].weight: 1001 is out of range (0 to 1000; 0 sends this variant to nobody)",
        ])
        #expect(problems("[{ key: a, subject: A, body: x, weight: 0 }, { key: b, subject: B, body: y, weight: 0 }]")
            == ["test.yaml: steps[1].variants: every weight is 0: at least one variant must be sent"])
        #expect(problems("[{ key: a, body: x }, { key: b, subject: B, body: y, colour: red }]") == [
            "test.yaml: steps[1].variants[0].subject: missing required field (the step has none)",
            "test.yaml: steps[1].variants[1].colour: unknown field (allowed: key, weight, subject, body, html)",
        ])
        #expect(problems("[{ key: a, subject: A }, { key: b, subject: B, body: \"{{oops\" }]") == [
            "test.yaml: steps[1].variants[0].body: missing required field (the step has none)",
            "test.yaml: steps[1].variants[1].body: malformed template: '{{' at offset 0 is never closed with '}}'",
        ])
        // A reply to a parent with variants, with variants of its own, must give each its subject.
        #expect(problems("[{ key: a, body: x }, { key: b, subject: B, body: y }]", thread: "thread: true")
            == ["test.yaml: steps[1].variants[0].subject: missing required field (the thread's parent has variants, so give each reply variant its own subject)"])
        #expect(problems("oops") == ["test.yaml: steps[1].variants: expected a list, got 'oops'"])
    }
}
