import Foundation
import Testing
import TestSupport

/// A property-based run of schemathesis against the document `seqd serve` publishes at
/// `GET /v1/openapi.yaml`: generated requests, valid and invalid, for every operation. It fails on
/// any server error, any response outside the document's schemas, any schema-valid request
/// refused as malformed (400), any undeclared method not answered 405 with `Allow`, and anything
/// else schemathesis checks (`--checks all`). Scripts/test installs schemathesis from PyPI in a
/// virtual environment and names it in SEQD_SCHEMATHESIS; without it the test is skipped.
@Suite("OpenAPI document: property-based run with schemathesis")
struct OpenAPIPropertyTests {
    static var schemathesis: String? {
        if let path = ProcessInfo.processInfo.environment["SEQD_SCHEMATHESIS"], !path.isEmpty { return path }
        return (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/st" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static let settings = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/schemathesis.toml").path

    @Test(
        "every generated request gets a declared answer: no server error, no valid request refused, 405 for undeclared methods",
        .enabled(if: schemathesis != nil, "schemathesis is not installed (Scripts/test installs it from PyPI)"))
    func schemathesisFindsNothing() async throws {
        // Real rows, so requests that name contact 1 or the sequence reach the handlers' logic.
        let scenario = try await Scenario.prepare(
            prefix: "openapi", sequence: SignalTests.longWait, name: "slow", contacts: ["a@example.com", "b@example.com"])
        let port = try FixtureServer.freePort()
        let token = "schemathesis-\(UUID().uuidString)"
        let server = DaemonProcess(
            scenario.seqd, arguments: ["serve"],
            environment: ["SEQD_HTTP_PORT": String(port), "SEQD_HTTP_API_TOKEN": token, "SEQD_LOG_LEVEL": "warning"],
            name: "openapi")
        try server.start()
        defer { server.send(SIGTERM) }
        try await waitUntil(timeout: .seconds(30), "the listener") { FixtureServer.canConnect(port: port) }
        let result = try await ExternalCommand.run(
            [
                Self.schemathesis!, "--config-file", Self.settings, "run", "http://127.0.0.1:\(port)/v1/openapi.yaml",
                "--header", "Authorization: Bearer \(token)", "--checks", "all", "--max-examples", "50",
                // Raw RFC 5322 bodies are not something schemathesis can generate; the inbound
                // parser has its own hostile-input suite (FaultSuiteHostileInputTests).
                "--exclude-path", "/v1/inbound", "--seed", "20261207", "--no-color",
            ],
            check: false)
        #expect(result.status == 0, "schemathesis found problems:\n\(result.stdout.suffix(12_000))\n\(result.stderr.suffix(2_000))")
        #expect(result.stdout.contains("passed"), "\(result.stdout.suffix(4_000))")
    }
}
