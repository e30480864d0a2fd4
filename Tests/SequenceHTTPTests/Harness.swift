import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Postgres
import Prometheus
import SequenceEngine
import SequenceHTTP
import SequenceStore
import Synchronization
import TestSupport

/// A listener serving a database of its own on 127.0.0.1 with a port the system picked, and a
/// real HTTP client to talk to it.
final class Harness: Sendable {
    static let token = "test-token-0123456789abcdef"

    let databaseURL: String
    let listener: HTTPListener
    let port: Int
    let logs: LogCapture
    let registry: PrometheusCollectorRegistry
    let secret: String
    let installationID: String
    private let serving: Task<Void, any Error>

    /// The simple sequence the tests enroll into: one email, a day's wait, another email.
    static let sequence = """
        name: welcome
        sender: { address: team@example.com }
        steps:
          - { key: hello, type: email, subject: "Hi {{first_name|there}}", body: "Hello" }
          - { type: wait, duration: 1d }
          - { key: again, type: email, subject: "Again", body: "Hello again" }
        """

    /// - Parameters:
    ///   - databaseURL: nil for a fresh migrated database with `sequence` applied.
    static func start(
        prefix: String, databaseURL: String? = nil, apiToken: String? = Harness.token,
        health: @escaping @Sendable () -> HealthState = { .alive }, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        gaugeInterval: Duration = .milliseconds(100), inFlightWait: Duration = .seconds(5), trustedAuthservID: String? = nil,
        readinessInterval: Duration = .milliseconds(200), idleTimeout: Duration = .seconds(60)
    ) async throws -> Harness {
        let url: String
        var secret = "test-unsubscribe-secret"
        var installationID = "test"
        if let databaseURL {
            url = databaseURL
        } else {
            url = try await TestDatabase.shared.makeMigratedDatabase(prefix: prefix)
            let connection = try Connection(url)
            try SequenceCatalog.apply(connection, [try SequenceDefinition.parse(sequence, fileName: "welcome.yaml")])
            let settings = try InstallationSettings.load(connection)
            secret = settings.storedUnsubscribeSecret ?? secret
            installationID = settings.installationID
        }
        let logs = LogCapture()
        let listener = try HTTPListener(
            host: "127.0.0.1", port: 0, databaseURL: url, apiToken: apiToken, unsubscribeSecret: secret,
            health: health, logger: logs.logger, registry: registry,
            gaugeInterval: gaugeInterval, inFlightWait: inFlightWait, trustedAuthservID: trustedAuthservID,
            readinessInterval: readinessInterval, idleTimeout: idleTimeout)
        let serving = Task { try await listener.run() }
        guard let port = await listener.boundPort() else {
            try await serving.value
            throw HarnessError(description: "the listener did not bind")
        }
        return Harness(
            databaseURL: url, listener: listener, port: port, logs: logs, registry: registry, secret: secret,
            installationID: installationID, serving: serving)
    }

    private init(
        databaseURL: String, listener: HTTPListener, port: Int, logs: LogCapture, registry: PrometheusCollectorRegistry,
        secret: String, installationID: String, serving: Task<Void, any Error>
    ) {
        self.databaseURL = databaseURL
        self.listener = listener
        self.port = port
        self.logs = logs
        self.registry = registry
        self.secret = secret
        self.installationID = installationID
        self.serving = serving
    }

    /// Shuts the listener down and waits for `run()` to return.
    func stop() async throws {
        await listener.shutdown()
        try await serving.value
    }

    func connect() throws -> Connection { try Connection(databaseURL) }

    struct Reply: Sendable, CustomStringConvertible {
        let status: Int
        let body: String
        let headers: [String: String]

        /// The body as a JSON object (empty when it is not one).
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }

        var description: String { "\(status) \(body)" }
    }

    /// Sends one request; `token` nil sends no Authorization header.
    func request(
        _ method: HTTPMethod, _ path: String, json: String? = nil, body: String? = nil, contentType: String? = nil,
        token: String? = Harness.token, authorization: String? = nil, headers: [String: String] = [:]
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let authorization { request.headers.replaceOrAdd(name: "Authorization", value: authorization) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        } else if let body {
            request.headers.add(name: "Content-Type", value: contentType ?? "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let buffer = try await response.body.collect(upTo: 4 << 20)
        var headers = [String: String]()
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return Reply(status: Int(response.status.code), body: String(buffer: buffer), headers: headers)
    }

    /// Creates a contact through the API and returns its id.
    func createContact(_ email: String, firstName: String? = "Ada") async throws -> Int64 {
        let name = firstName.map { ", \"first_name\": \"\($0)\"" } ?? ""
        let reply = try await request(.POST, "/v1/contacts", json: #"{"email": "\#(email)"\#(name)}"#)
        guard reply.status == 201 || reply.status == 200, let id = reply.json["id"] as? Int else {
            throw HarnessError(description: "creating \(email) failed: \(reply)")
        }
        return Int64(id)
    }

    /// Creates and enrolls a contact through the API and returns the enrollment id.
    func enroll(_ email: String, sequence: String = "welcome") async throws -> Int64 {
        _ = try await createContact(email)
        let reply = try await request(.POST, "/v1/enrollments", json: #"{"sequence": "\#(sequence)", "email": "\#(email)"}"#)
        guard reply.status == 201, let id = reply.json["enrollment_id"] as? Int else {
            throw HarnessError(description: "enrolling \(email) failed: \(reply)")
        }
        return Int64(id)
    }
}

/// Polls an async condition with a deadline instead of sleeping a fixed time.
func eventually(
    timeout: Duration = .seconds(20), _ description: String, _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw HarnessError(description: "timed out waiting for \(description)") }
        try await Task.sleep(for: .milliseconds(50))
    }
}

/// An in-memory swift-log handler, so tests can assert on what the listener logs.
final class LogCapture: Sendable {
    struct Entry: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]

        /// The whole line as a log shipper would see it.
        var text: String { "\(level) \(message) " + metadata.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: " ") }
    }

    private let storage = Mutex<[Entry]>([])

    var entries: [Entry] { storage.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "seqd-http-test") { _ in Handler(capture: self) }
        // Everything, so a leak at any level is caught.
        logger.logLevel = .trace
        return logger
    }

    fileprivate func append(_ entry: Entry) { storage.withLock { $0.append(entry) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata.merging(event.metadata ?? [:]) { $1 }
            if let error = event.error { merged["error"] = "\(error)" }
            capture.append(Entry(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
        }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
}
