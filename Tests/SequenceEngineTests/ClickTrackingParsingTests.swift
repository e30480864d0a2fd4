import Foundation
import Testing
@testable import SequenceEngine

/// `tracking: { clicks: true }` in sequence files.
@Suite struct ClickTrackingParsingTests {
    static let base = "name: a\nsender: { address: a@example.com }\nsteps: [{ type: email, subject: s, body: b }]\n"

    @Test func parsesStoresAndDefaultsOff() throws {
        let tracked = try SequenceDefinition.parse(Self.base + "tracking: { clicks: true }\n", fileName: "a.yaml")
        #expect(tracked.tracking.clicks)
        #expect(try SequenceDefinition.decodeStored(tracked.canonicalJSON()) == tracked)
        #expect(String(decoding: tracked.canonicalJSON(), as: UTF8.self).contains(#""tracking":{"clicks":true}"#))

        let plain = try SequenceDefinition.parse(Self.base, fileName: "a.yaml")
        #expect(!plain.tracking.clicks)
        #expect(try SequenceDefinition.parse(Self.base + "tracking: { clicks: false }\n", fileName: "a.yaml") == plain)
        // Definitions stored before tracking existed keep their bytes (no new version) and decode as off.
        #expect(!String(decoding: plain.canonicalJSON(), as: UTF8.self).contains("tracking"))
        #expect(try SequenceDefinition.decodeStored(plain.canonicalJSON()).tracking == .off)
    }

    @Test func rejectsWhatItDoesNotKnow() {
        for (yaml, path, words) in [
            ("tracking: { clicks: yes please }\n", "tracking.clicks", "true or false"),
            ("tracking: { opens: true }\n", "tracking.opens", "unknown field"),
            ("tracking: true\n", "tracking", "mapping"),
        ] {
            #expect(throws: SequenceValidationError.self, "\(yaml)") {
                try SequenceDefinition.parse(Self.base + yaml, fileName: "a.yaml")
            }
            do {
                _ = try SequenceDefinition.parse(Self.base + yaml, fileName: "a.yaml")
            } catch {
                #expect(error.issues.contains { $0.path == path && $0.message.contains(words) }, "\(yaml): \(error)")
            }
        }
    }
}
