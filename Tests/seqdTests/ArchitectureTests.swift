import Foundation
import Testing

/// The layering rule of the application layer (issue 20): the front ends — the CLI (`Sources/seqd`)
/// and the HTTP listener (`Sources/SequenceHTTP`) — reach the database only through
/// `SeqdApplication`, and SQL lives only in the store (`Sources/SequenceStore`) and the driver.
@Suite("Architecture: front ends go through the application layer")
struct ArchitectureTests {
    static let sources = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources")

    /// Every Swift file below `Sources/<target>`, as (path relative to Sources, text).
    static func files(in target: String) throws -> [(path: String, text: String)] {
        let root = sources.appendingPathComponent(target)
        let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        var files = [(String, String)]()
        while let url = enumerator?.nextObject() as? URL {
            guard url.pathExtension == "swift" else { continue }
            files.append((target + "/" + url.lastPathComponent, try String(contentsOf: url, encoding: .utf8)))
        }
        return files
    }

    @Test("the CLI and the HTTP listener never import the Postgres layer nor name its connections", arguments: ["seqd", "SequenceHTTP"])
    func frontEndsUseTheApplicationLayer(target: String) throws {
        let files = try Self.files(in: target)
        #expect(files.count > 5, "found no sources for \(target) under \(Self.sources.path)")
        let forbidden = try Regex(#"import Postgres|\b(ConfinedConnection|Connection|SessionOptions|PostgresError)\b"#)
        for (path, text) in files {
            let found = text.firstMatch(of: forbidden).map { String(text[$0.range]) }
            #expect(found == nil, "\(path) uses \(found ?? ""): go through SeqdApplication")
        }
    }

    @Test("SQL appears only in the store and the driver")
    func sqlOnlyInTheStore() throws {
        let statements = ["SELECT ", "INSERT INTO", "DELETE FROM", "UPDATE seqd.", "pg_notify"]
        for target in ["seqd", "SequenceHTTP", "SeqdApplication", "SequenceDaemon", "SequenceEngine", "Mail", "Delivery", "SeqdConfig"] {
            for (path, text) in try Self.files(in: target) {
                let found = statements.first { text.contains($0) }
                #expect(found == nil, "\(path) holds SQL (\(found ?? "")): move it into SequenceStore")
            }
        }
    }
}
