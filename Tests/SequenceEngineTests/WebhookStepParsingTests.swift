import Foundation
import Testing
@testable import SequenceEngine

/// Webhook steps at apply time: every field validated with its path, the body checked as JSON for
/// a sample contact, and what is accepted rendered for a real one.
@Suite("webhook steps: validation and rendering")
struct WebhookStepParsingTests {
    static func file(_ step: String, extra: String = "") -> String {
        """
        name: x
        sender: { address: a@b.co }
        \(extra)
        steps:
          - \(step)
        """
    }

    @Test("each bad field is named with its path and what is wrong", arguments: [
        ("{ type: webhook, url: 'ftp://example.com/x' }", "steps[0].url: 'ftp://example.com/x' is not an http(s) URL"),
        ("{ type: webhook, url: '{{site}}/x' }", "steps[0].url: 'sample/x' (for a sample contact) is not an http(s) URL"),
        ("{ type: webhook, url: 'https://u:p@example.com/' }", "steps[0].url: must not hold credentials; send them in a header naming a secret (${ENV_NAME})"),
        ("{ type: webhook, url: 'https://example.com/{{x' }", "steps[0].url: malformed template: '{{' at offset 20 is never closed with '}}'"),
        ("{ type: webhook, url: 'https://example.com/', method: TRACE }", "steps[0].method: 'TRACE' is not allowed: use GET, POST, PUT, PATCH, DELETE"),
        ("{ type: webhook, url: 'https://example.com/', headers: { Idempotency-Key: x } }", "steps[0].headers.Idempotency-Key: seqd sets Idempotency-Key itself"),
        ("{ type: webhook, url: 'https://example.com/', headers: { 'Bad Name': x } }", "steps[0].headers.Bad Name: 'Bad Name' is not a header name"),
        ("{ type: webhook, url: 'https://example.com/', headers: { Authorization: 'Bearer ${token}' } }",
         "steps[0].headers.Authorization: '${token}' is not a secret reference: use ${ENV_NAME} (A-Z, 0-9, _)"),
        ("{ type: webhook, url: 'https://example.com/', body: '{\"score\": {{score}}}' }",
         "steps[0].body: is not JSON after rendering a sample contact (put each {{field}} inside a JSON string): {\"score\": sample}"),
        ("{ type: webhook, url: 'https://example.com/', timeout: 90s }", "steps[0].timeout: '90s' is not allowed: seconds from 1 to 60 (10 or 10s)"),
        ("{ type: webhook, url: 'https://example.com/', save: [ok, 'not ok'] }", "steps[0].save[1]: 'not ok' is not a field name (letters, digits, _)"),
        ("{ type: webhook, url: 'https://example.com/', retries: 3 }",
         "steps[0].retries: unknown field (allowed: key, type, url, method, headers, body, timeout, save)"),
    ])
    func rejects(_ step: String, _ expected: String) {
        #expect(issues(Self.file(step)) == ["test.yaml: " + expected])
    }

    @Test("on_failure takes stop or skip")
    func onFailure() throws {
        #expect(issues(Self.file("{ type: wait, duration: 1d }", extra: "on_failure: retry"))
            == ["test.yaml: on_failure: 'retry' is not allowed: use stop (the enrollment fails) or skip (it goes on with the next step)"])
        #expect(try definition(Self.file("{ type: wait, duration: 1d }", extra: "on_failure: skip")).onFailure == .skip)
        #expect(try definition(Self.file("{ type: wait, duration: 1d }")).onFailure == .stop)
    }

    @Test("a sequence without on_failure stores the same bytes as before webhook steps existed")
    func canonicalBytesUnchanged() throws {
        let json = String(decoding: try definition(Self.file("{ type: wait, duration: 1d }")).canonicalJSON(), as: UTF8.self)
        #expect(!json.contains("on_failure"))
        let stored = try SequenceDefinition.decodeStored(Data(json.utf8))
        #expect(stored.onFailure == .stop)
    }

    @Test("a YAML body becomes JSON text; rendering escapes values inside strings and fills the request fields")
    func renders() throws {
        let def = try definition(Self.file("""
            key: crm
                type: webhook
                url: "https://crm.example.com/contacts/{{email}}?seq={{sequence}}"
                headers: { Authorization: "Bearer ${CRM_TOKEN}" }
                body: { name: "{{first_name}}", enrollment: "{{enrollment_id}}", plan: "{{plan|free}}", n: 3 }
                save: [score]
            """))
        guard case .webhook(let webhook) = def.steps[0].kind else { Issue.record("not a webhook"); return }
        #expect(webhook.body == #"{"enrollment":"{{enrollment_id}}","n":3,"name":"{{first_name}}","plan":"{{plan|free}}"}"#)
        let contact = ContactFields(email: "ada@example.com", firstName: "Ada \"The\" \\ Countess\n")
        let rendered = try webhook.render(
            for: contact, request: WebhookRequestFields(enrollmentID: 42, stepKey: "crm", sequence: "x", deliveryKey: "k"))
        #expect(rendered.url == "https://crm.example.com/contacts/ada@example.com?seq=x")
        #expect(rendered.headers == [.init(name: "Authorization", value: "Bearer ${CRM_TOKEN}")], "secrets stay named")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(rendered.body!.utf8)) as? [String: Any])
        #expect(body["name"] as? String == "Ada \"The\" \\ Countess\n")
        #expect(body["enrollment"] as? String == "42")
        #expect(body["plan"] as? String == "free")
        #expect(webhook.missingFields(for: ContactFields(email: "b@example.com")) == ["first_name"])
    }

    @Test("step_data conditions compare saved fields; a non-number is neither greater nor less")
    func stepDataConditions() {
        let contact = ContactFields(email: "a@b.co", attributes: ["seats": "12"])
        #expect(BranchCondition.greaterThan(.stepData("score"), 50).matches(contact, stepData: ["score": "80"]))
        #expect(!BranchCondition.greaterThan(.stepData("score"), 50).matches(contact, stepData: ["score": "50"]))
        #expect(!BranchCondition.lessThan(.stepData("score"), 50).matches(contact, stepData: ["score": "high"]))
        #expect(!BranchCondition.greaterThan(.stepData("score"), 50).matches(contact))
        #expect(BranchCondition.lessThan(.attribute("seats"), 20).matches(contact))
        #expect(BranchCondition.equals(.stepData("tier"), value: "gold").matches(contact, stepData: ["tier": "gold"]))
        #expect(BranchCondition.exists(.stepData("tier"), present: false).matches(contact, stepData: [:]))
    }

    @Test("secret references resolve from the lookup; a missing one names itself")
    func secretReferences() throws {
        #expect(try SecretReferences.resolve("Bearer ${A} and ${B_2}", lookup: { ["A": "x", "B_2": "y"][$0] }) == "Bearer x and y")
        #expect(throws: SecretReferences.Unresolved.self) { try SecretReferences.resolve("${MISSING}", lookup: { _ in nil }) }
        #expect(try SecretReferences.resolve("no references", lookup: { _ in nil }) == "no references")
    }
}
