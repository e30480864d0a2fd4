import Foundation
import Testing
@testable import SequenceEngine

@Suite struct SequenceParserTests {
    static let full = """
        name: onboarding
        description: Welcome new trial users
        sender: { address: hello@example.com, name: Acme Onboarding, daily_limit: 200 }
        time_zone: Europe/London
        exit_on_reply: true
        stop_company_on_reply: false
        send_window: { days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00" }
        skip_dates: [2026-12-26, 2026-12-25, 2026-12-25]
        steps:
          - key: intro
            type: email
            subject: "Welcome, {{first_name|there}}"
            body: |
              Hi {{first_name|there}}, ...
            html: "<p>Hi {{first_name|there}}</p>"
          - type: wait
            duration: 2 business days
          - type: branch
            when:
              - if: { attribute: plan, equals: pro }
                goto: followup
              - if: { not: { attribute: company, exists: true } }
                goto: end
              - if: { attribute: plan, in: [team, 10] }
                goto: webhook-5
          - type: email
            thread: true
            body: "Just checking in"
            send_window: { start: "10:00", end: "12:00" }
          - type: webhook
            url: https://example.com/hook
          - key: followup
            type: email
            subject: "..."
            body: "..."
        """

    @Test func parsesAndNormalises() throws {
        let def = try definition(Self.full, file: "onboarding.yaml")
        #expect(def.name == "onboarding")
        #expect(def.sender == .init(address: "hello@example.com", name: "Acme Onboarding", dailyLimit: 200))
        #expect(def.timeZone == "Europe/London")
        #expect(def.skipDates.map(\.description) == ["2026-12-25", "2026-12-26"])
        #expect(def.steps.map(\.key) == ["intro", "wait-2", "branch-3", "email-4", "webhook-5", "followup"])
        #expect(def.sendWindow?.days == [.mon, .tue, .wed, .thu, .fri])
        guard case .email(let threaded) = def.steps[3].kind else { Issue.record("not an email"); return }
        #expect(threaded.subject == "Re: Welcome, {{first_name|there}}")
        #expect(threaded.thread)
        #expect(threaded.sendWindow?.days == Weekday.allCases)
        #expect(def.threadParent(ofStepAt: 3) == "intro")
        #expect(def.threadParent(ofStepAt: 5) == nil)
        #expect(def.steps[1].kind == .wait(.businessDays(2)))
        guard case .branch(let rules) = def.steps[2].kind else { Issue.record("not a branch"); return }
        #expect(rules == [
            BranchRule(condition: .equals(.attribute("plan"), value: "pro"), target: "followup"),
            BranchRule(condition: .not(.exists(.attribute("company"), present: true)), target: "end"),
            BranchRule(condition: .oneOf(.attribute("plan"), values: ["team", "10"]), target: "webhook-5"),
        ])
        guard case .webhook(let webhook) = def.steps[4].kind else { Issue.record("not a webhook"); return }
        #expect(webhook.url == "https://example.com/hook")
        #expect(webhook.method == "POST")
        #expect(webhook.timeout == SequenceDefinition.Webhook.defaultTimeout)
        #expect(webhook.body == nil && webhook.headers.isEmpty && webhook.save.isEmpty)
    }

    @Test func defaults() throws {
        let def = try definition("""
            name: x
            sender: { address: a@b.co }
            steps: [{ type: wait, duration: 1h }]
            """)
        #expect(def.timeZone == "UTC")
        #expect(def.exitOnReply)
        #expect(!def.stopCompanyOnReply)
        #expect(def.sendWindow == nil)
        #expect(def.skipDates.isEmpty)
        #expect(def.description == nil)
    }

    @Test func canonicalJSONRoundTrips() throws {
        let def = try definition(Self.full)
        let json = def.canonicalJSON()
        #expect(try SequenceDefinition.decodeStored(json) == def)
        #expect(try SequenceDefinition.decodeStored(json).canonicalJSON() == json, "stable bytes")
        let text = try #require(String(data: json, encoding: .utf8))
        #expect(text.contains(#""duration":"2 business days""#))
        #expect(text.contains(#""key":"wait-2""#))
        #expect(text.contains(#""skip_dates":["2026-12-25","2026-12-26"]"#))
    }

    @Test func canonicalJSONIsValidInput() throws {
        // The stored form can be applied again as a file and means the same thing.
        let def = try definition(Self.full)
        let again = try SequenceDefinition.parse(def.canonicalJSON(), fileName: "stored.json")
        #expect(again == def)
    }

    @Test func acceptsJSON() throws {
        let json = #"{"name": "j", "sender": {"address": "a@b.co"}, "steps": [{"type": "email", "subject": "S", "body": "B"}]}"#
        let def = try SequenceDefinition.parse(Data(json.utf8), fileName: "j.json")
        #expect(def.steps.map(\.key) == ["email-1"])
    }

    @Test func lookups() throws {
        let def = try definition(threeSteps)
        #expect(def.index(ofStep: "followup") == 2)
        #expect(def.index(ofStep: "nope") == nil)
        #expect(def.key(at: 1) == "wait-2")
        #expect(def.key(at: 3) == nil)
        #expect(def.missingFields(for: ada).isEmpty)
    }

    @Test func missingFieldsCoverEveryEmailStep() throws {
        let def = try definition("""
            name: x
            sender: { address: a@b.co }
            steps:
              - { type: email, subject: "{{first_name}}", body: "b" }
              - { type: wait, duration: 1d }
              - { type: email, subject: "s", body: "b", html: "{{company}} {{plan|x}}" }
            """)
        #expect(def.missingFields(for: ContactFields(email: "a@b.co")) == ["company", "first_name"])
        #expect(def.missingFields(for: ContactFields(email: "a@b.co", firstName: "A", attributes: ["company": "C"])) == [])
    }

    @Test func contactZoneFallsBackToSequenceZone() throws {
        let def = try definition("""
            name: x
            sender: { address: a@b.co }
            time_zone: Asia/Tokyo
            steps: [{ type: wait, duration: 1h }]
            """)
        #expect(def.timeZone(for: ContactFields(email: "a@b.co", timeZone: "America/New_York")).identifier == "America/New_York")
        #expect(def.timeZone(for: ContactFields(email: "a@b.co", timeZone: "GMT+5")).identifier == "Asia/Tokyo")
        #expect(def.timeZone(for: ContactFields(email: "a@b.co")).identifier == "Asia/Tokyo")
    }

    // MARK: Rejections

    @Test func collectsEveryIssueWithFileAndPath() {
        let found = issues("""
            name: Bad Name
            sender: { address: not-an-address, daily_limit: 0 }
            time_zone: GMT+5
            exit_on_reply: maybe
            send_window: { days: [mon, funday], start: "17:00", end: "09:00" }
            skip_dates: [2026-02-30]
            steps:
              - type: email
                subjet: Hello
                body: "Hi {{first_name"
              - type: wait
                duration: 2x
              - type: teleport
              - key: intro
                type: webhook
                url: ftp://example.com
              - key: intro
                type: branch
                when:
                  - if: { attribute: plan, equals: pro }
                    goto: nowhere
            """, file: "onboarding.yaml")
        let expected = [
            "onboarding.yaml: name: 'Bad Name' is not allowed: use [a-z0-9][a-z0-9_-]*, at most 64 characters",
            "onboarding.yaml: sender.address: 'not-an-address' is not an email address",
            "onboarding.yaml: sender.daily_limit: must be at least 1, got 0",
            "onboarding.yaml: time_zone: 'GMT+5' is not an IANA time zone known to Foundation (e.g. Europe/London, America/New_York, UTC)",
            "onboarding.yaml: exit_on_reply: expected true or false, got 'maybe'",
            "onboarding.yaml: send_window.days[1]: 'funday' is not a day (mon, tue, wed, thu, fri, sat, sun)",
            "onboarding.yaml: send_window: end 09:00 must be after start 17:00 (windows do not cross midnight)",
            "onboarding.yaml: skip_dates[0]: '2026-02-30' is not a date (YYYY-MM-DD)",
            "onboarding.yaml: steps[0].subjet: unknown field — did you mean 'subject'? (allowed: key, type, subject, body, html, thread, send_window, variants)",
            "onboarding.yaml: steps[0].subject: missing required field",
            "onboarding.yaml: steps[0].body: malformed template: '{{' at offset 3 is never closed with '}}'",
            "onboarding.yaml: steps[1].duration: '2x' is not a duration (use <n>s|m|h|d|w such as 90s, 36h, 2d, or '<n> business days')",
            "onboarding.yaml: steps[2].type: unknown step type 'teleport' (expected email, wait, branch or webhook)",
            "onboarding.yaml: steps[3].url: 'ftp://example.com' is not an http(s) URL",
            "onboarding.yaml: steps[4].key: duplicate step key 'intro' (also steps[3])",
            "onboarding.yaml: steps[4].when[0].goto: 'nowhere' is not a step key (or 'end')",
        ]
        #expect(found == expected)
    }

    @Test func errorDescriptionIsOneIssuePerLine() {
        let error = SequenceValidationError(issues: [
            .init(file: "a.yaml", path: "steps[2].duration", message: "bad"),
            .init(file: "a.yaml", path: "", message: "worse"),
        ])
        #expect(error.description == "a.yaml: steps[2].duration: bad\na.yaml: worse")
    }

    @Test(arguments: [
        ("name: x\nsender: {address: a@b.co}\nsteps: []", "test.yaml: steps: must contain at least one step"),
        ("sender: {address: a@b.co}\nsteps: [{type: wait, duration: 1d}]", "test.yaml: name: missing required field"),
        ("name: x\nsteps: [{type: wait, duration: 1d}]", "test.yaml: sender: missing required field"),
        ("name: x\nsender: {name: A}\nsteps: [{type: wait, duration: 1d}]", "test.yaml: sender.address: missing required field"),
        ("name: x\nsender: {address: a@b.co}\nsteps: {type: wait}", "test.yaml: steps: expected a list, got a mapping"),
        ("name: [x]\nsender: {address: a@b.co}\nsteps: [{type: wait, duration: 1d}]", "test.yaml: name: expected text, got a list"),
        ("name: x\nsender: {address: a@b.co}\nsteps: [{duration: 1d}]", "test.yaml: steps[0].type: missing required field (email, wait, branch or webhook)"),
        ("name: x\nsender: {address: a@b.co}\nsteps: [{type: email, subject: s}]", "test.yaml: steps[0].body: missing required field"),
        ("name: x\nsender: {address: a@b.co}\nsteps: [{type: email, subject: '  ', body: b}]", "test.yaml: steps[0].subject: must not be empty"),
        ("name: x\nsender: {address: a@b.co}\nsteps: [{type: email, thread: true, body: b}]", "test.yaml: steps[0].thread: true needs an earlier email step to reply to"),
        ("name: x\nsender: {address: a@b.co}\nsteps: [{type: wait, duration: 1d, key: end}]", "test.yaml: steps[0].key: 'end' is reserved for goto"),
        ("name: x\nsender: {address: a@b.co, daily_limit: lots}\nsteps: [{type: wait, duration: 1d}]", "test.yaml: sender.daily_limit: expected a whole number, got 'lots'"),
        ("name: x\nname: y\nsender: {address: a@b.co}\nsteps: [{type: wait, duration: 1d}]", "test.yaml: is not valid YAML or JSON: line 1: field 'name' appears twice in one mapping"),
        ("", "test.yaml: is empty; a sequence needs at least name, sender and steps"),
        ("- just\n- a list", "test.yaml: expected a mapping, got a list"),
        ("name: x\nsender: {address: a@b.co}\nsteps: [{type: branch}]", "test.yaml: steps[0].when: missing required field (a list of { if: <condition>, goto: <key> })"),
        ("name: x\nsender: {address: a@b.co}\nsteps: [{type: branch, when: []}]", "test.yaml: steps[0].when: must contain at least one rule"),
        ("name: x\nsender: {address: a@b.co}\nsteps: [{type: wait}]", "test.yaml: steps[0].duration: missing required field (e.g. 2d, 36h, 3 business days)"),
        ("name: x\nsender: {address: a@b.co}\nsteps: [{type: wait, duration: ~}]", "test.yaml: steps[0].duration: missing required field (e.g. 2d, 36h, 3 business days)"),
        ("name: x\n\"\": y\nsender: {address: a@b.co}\nsteps: [{type: wait, duration: 1d}]", "test.yaml: line 2, column 1: a field name is empty"),
        ("name: x\nsender: {address: a@b.co}\nsteps: [{type: wait, duration: 1d, [k]: v}]", "test.yaml: steps[0]: line 3, column 36: field names must be plain text, got a list"),
        ("name: x\u{01}\nsender: {address: a@b.co}", "test.yaml: is not valid YAML or JSON: line 1, column 8: control characters are not allowed"),
    ])
    func rejects(_ yaml: String, _ expected: String) {
        #expect(issues(yaml) == [expected])
    }

    @Test func branchesJumpForwardOnly() {
        let found = issues("""
            name: x
            sender: { address: a@b.co }
            steps:
              - { key: a, type: wait, duration: 1d }
              - key: b
                type: branch
                when:
                  - { if: { attribute: plan, equals: pro }, goto: a }
                  - { if: { attribute: plan, equals: pro }, goto: b }
                  - { if: { attribute: plan, equals: pro }, goto: c }
                  - { if: { attribute: plan, equals: pro }, goto: end }
              - { key: c, type: wait, duration: 1d }
            """)
        #expect(found == [
            "test.yaml: steps[1].when[0].goto: 'a' is an earlier step; branches jump forward only",
            "test.yaml: steps[1].when[1].goto: 'b' is this step; branches jump forward only",
        ])
    }

    @Test func conditionShapes() {
        let found = issues("""
            name: x
            sender: { address: a@b.co }
            steps:
              - type: branch
                when:
                  - { if: { attribute: plan }, goto: end }
                  - { if: { attribute: plan, equals: a, exists: true }, goto: end }
                  - { if: { equals: a }, goto: end }
                  - { if: { attribute: plan, in: [] }, goto: end }
                  - { if: { attribute: plan, exists: sometimes }, goto: end }
                  - { if: { attribute: plan, equal: a }, goto: end }
                  - { if: { attribute: plan, equals: a } }
            """)
        #expect(found == [
            "test.yaml: steps[0].when[0].if: needs one of equals, in, exists, greater_than, less_than (or not)",
            "test.yaml: steps[0].when[1].if: has equals and exists; use exactly one",
            "test.yaml: steps[0].when[2].if.attribute: missing required field (or step_data, for a field a webhook step saved)",
            "test.yaml: steps[0].when[3].if.in: must list at least one value",
            "test.yaml: steps[0].when[4].if.exists: expected true or false, got 'sometimes'",
            "test.yaml: steps[0].when[5].if.equal: unknown field — did you mean 'equals'? (allowed: attribute, step_data, property, not, equals, in, exists, greater_than, less_than)",
            "test.yaml: steps[0].when[5].if: needs one of equals, in, exists, greater_than, less_than (or not)",
            "test.yaml: steps[0].when[6].goto: missing required field",
        ])
    }

    @Test func invalidYAMLIsReportedAgainstTheFile() {
        let found = issues("name: [unclosed\n")
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("test.yaml: is not valid YAML or JSON: line 2, column 1: ") == true, "\(found)")
    }

    @Test func threadedSubjectChainsDoNotStackRe() throws {
        let def = try definition("""
            name: x
            sender: { address: a@b.co }
            steps:
              - { type: email, subject: Hello, body: b }
              - { type: email, thread: true, body: b }
              - { type: email, thread: true, body: b }
            """)
        let subjects = def.steps.compactMap { step -> String? in
            if case .email(let email) = step.kind { return email.subject }
            return nil
        }
        #expect(subjects == ["Hello", "Re: Hello", "Re: Hello"])
        #expect(def.threadParent(ofStepAt: 2) == "email-2")
    }

    @Test func nullOptionalFieldsMeanAbsent() throws {
        let def = try definition("""
            name: x
            description:
            sender: { address: a@b.co, name: ~ }
            steps: [{ type: email, subject: s, body: b, html: }]
            """)
        #expect(def.description == nil)
        #expect(def.sender.name == nil)
        #expect(def.steps[0].kind == .email(.init(subject: "s", body: "b", html: nil, thread: false, sendWindow: nil)))
    }

    @Test(arguments: ["a", "onboarding", "q3-trial_2", "0day"])
    func allowedNames(_ name: String) {
        #expect(SequenceParser.isIdentifier(name))
    }

    @Test(arguments: ["", "Onboarding", "-x", "_x", "a b", "a.b", "é", String(repeating: "a", count: 65)])
    func rejectedNames(_ name: String) {
        #expect(!SequenceParser.isIdentifier(name))
    }
}
