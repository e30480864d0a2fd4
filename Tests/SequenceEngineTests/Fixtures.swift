import Foundation
@testable import SequenceEngine

/// An instant from RFC 3339 text; tests spell times the way operators read them.
func at(_ text: String) -> Date {
    guard let date = try? Date(text, strategy: .iso8601) else { fatalError("bad test date \(text)") }
    return date
}

func zone(_ identifier: String) -> TimeZone {
    guard let zone = TimeZone(identifier: identifier) else { fatalError("unknown zone \(identifier)") }
    return zone
}

func definition(_ yaml: String, file: String = "test.yaml") throws -> SequenceDefinition {
    try SequenceDefinition.parse(yaml, fileName: file)
}

/// The issues a definition is rejected with, as printed lines.
func issues(_ yaml: String, file: String = "test.yaml") -> [String] {
    do {
        _ = try SequenceDefinition.parse(yaml, fileName: file)
        return []
    } catch {
        return error.issues.map(\.description)
    }
}

let ada = ContactFields(email: "ada@example.com", firstName: "Ada", lastName: "Lovelace", timeZone: "Europe/London", attributes: ["plan": "pro"])

/// email → wait 2d → email, exit on reply.
let threeSteps = """
    name: onboarding
    sender: { address: hello@example.com }
    steps:
      - key: intro
        type: email
        subject: "Welcome, {{first_name|there}}"
        body: "Hi {{first_name|there}}"
      - type: wait
        duration: 2d
      - key: followup
        type: email
        subject: "How is it going?"
        body: "Plan: {{plan|unknown}}"
    """
