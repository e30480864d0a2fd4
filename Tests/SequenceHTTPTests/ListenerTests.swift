import AsyncHTTPClient
import Delivery
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOHTTP1
import Postgres
import SequenceEngine
import SequenceHTTP
import SequenceStore
import Testing
import TestSupport
import Yams

@Suite("the listener")
struct ListenerTests {
    @Test("shutdown lets a request in flight finish, then run() returns and the port is closed")
    func gracefulShutdown() async throws {
        let harness = try await Harness.start(prefix: "shutdown", inFlightWait: .seconds(2))
        let enrollmentID = try await harness.enroll("ada@example.com")
        #expect(acceptsConnections(port: harness.port))
        let connection = try harness.connect()
        _ = try Advancer(actor: "test", installationID: harness.installationID).advanceBatch(connection, limit: 10)
        // A send under way: the stop signal waits for it (up to inFlightWait) before answering.
        let claimed = try DeliveryOutbox(worker: "test", installationID: harness.installationID, policy: DeliveryPolicy())
            .claim(connection, limit: 10, leaseSeconds: 60)
        #expect(claimed.count == 1)
        let inFlight = Task {
            try await harness.request(.POST, "/v1/signals", json: #"{"type": "stop", "enrollment_id": \#(enrollmentID)}"#)
        }
        try await waitUntil("the stop to be committed") {
            try connection.query("SELECT status::text AS s FROM seqd.enrollments")[0].decode("s", as: String.self) == "stopped"
        }
        let started = ContinuousClock.now
        try await harness.stop()
        let reply = try await inFlight.value
        #expect(reply.status == 200, "\(reply)")
        #expect(reply.json["in_flight_settled"] as? Bool == false)
        #expect(ContinuousClock.now - started < .seconds(10))
        // A raw connect, not an HTTP client: AsyncHTTPClient retries refused connections until its deadline.
        #expect(!acceptsConnections(port: harness.port))
        // The listener's sessions are gone.
        try await waitUntil("the listener's connections to close") {
            try connection.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'seqd http%' AND datname = current_database()"
            )[0].decode("n", as: Int.self) == 0
        }
    }

    @Test("the listener closes a client connection that stays idle past idleTimeout")
    func idleConnectionsClosed() async throws {
        let harness = try await Harness.start(prefix: "idle", idleTimeout: .milliseconds(500))
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(descriptor >= 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(harness.port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        // Send nothing; a read returns 0 (EOF) once the server closed the connection, or times out.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let started = ContinuousClock.now
        var byte: UInt8 = 0
        let read = recv(descriptor, &byte, 1, 0)
        let waited = ContinuousClock.now - started
        #expect(read == 0, "the server should have closed the idle connection (recv returned \(read), errno \(errno))")
        #expect(waited < .seconds(4), "closed after \(waited)")
        try await harness.stop()
    }

    @Test("requests waiting for a send in flight hold no pooled connection: the API answers meanwhile; waiting has its own bound")
    func waitingHoldsNoConnection() async throws {
        let harness = try await Harness.start(prefix: "inflightwait", inFlightWait: .seconds(4))
        var enrollments = [Int64]()
        for index in 0..<5 { enrollments.append(try await harness.enroll("p\(index)@example.com")) }
        let connection = try harness.connect()
        _ = try Advancer(actor: "test", installationID: harness.installationID).advanceBatch(connection, limit: 10)
        // Every contact has a send under way, with a lease well past the wait.
        let claimed = try DeliveryOutbox(worker: "test", installationID: harness.installationID, policy: DeliveryPolicy())
            .claim(connection, limit: 10, leaseSeconds: 120)
        #expect(claimed.count == 5)
        let started = ContinuousClock.now
        // More waiting signals than the API has connections (3).
        let waiting = enrollments.map { id in
            Task { try await harness.request(.POST, "/v1/signals", json: #"{"type": "pause", "enrollment_id": \#(id)}"#) }
        }
        try await waitUntil("the pauses to be committed") {
            try connection.query("SELECT count(*) AS n FROM seqd.enrollments WHERE status = 'paused'")[0].decode("n", as: Int.self) == 5
        }
        let committed = ContinuousClock.now
        // Meanwhile the API and one-click unsubscribes still get a connection at once.
        let created = try await harness.request(.POST, "/v1/contacts", json: #"{"email": "meanwhile@example.com"}"#)
        #expect(created.status == 200 || created.status == 201, "\(created)")
        let token = UnsubscribeToken.make(enrollmentID: enrollments[0], secret: harness.secret)
        let page = try await harness.request(.GET, "/u/\(token)", token: nil)
        #expect(page.status == 200, "\(page)")
        #expect(ContinuousClock.now - committed < .seconds(4), "answered while five requests were still waiting (4 s)")
        for task in waiting {
            let reply = try await task.value
            #expect(reply.status == 200, "\(reply)")
            #expect(reply.json["in_flight_settled"] as? Bool == false, "\(reply)")
        }
        // The bound proven is "inFlightWait, not the 120 s lease": a loaded CI machine running the
        // whole suite at once took 13.9 s here (each 100 ms poll waits its turn for a pooled connection).
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .seconds(4) && elapsed < .seconds(60), "the wait is bounded by inFlightWait, not the lease: \(elapsed)")
        try await harness.stop()
    }

    @Test("shutdown before run makes run return at once")
    func shutdownFirst() async throws {
        let listener = try HTTPListener(
            host: "127.0.0.1", port: 0, databaseURL: "postgresql:///unused", apiToken: nil, unsubscribeSecret: "s",
            logger: LogCapture().logger)
        await listener.shutdown()
        try await listener.run()
        #expect(await listener.boundPort() == nil)
    }

    @Test("a port already in use makes run() throw, and boundPort() says nil")
    func portInUse() async throws {
        let harness = try await Harness.start(prefix: "portinuse")
        let second = try HTTPListener(
            host: "127.0.0.1", port: harness.port, databaseURL: harness.databaseURL, apiToken: nil, unsubscribeSecret: "s",
            logger: LogCapture().logger)
        await #expect(throws: (any Error).self) { try await second.run() }
        #expect(await second.boundPort() == nil)
        #expect(try await harness.request(.GET, "/healthz", token: nil).status == 200)
        try await harness.stop()
    }

    @Test("access logs name route templates and never an address, a token or the bearer secret")
    func accessLogs() async throws {
        let harness = try await Harness.start(prefix: "logs")
        let enrollmentID = try await harness.enroll("ada.secret@example.com")
        let contactID = try harness.connect().query("SELECT id FROM seqd.contacts")[0].decode("id", as: Int64.self)
        let token = UnsubscribeToken.make(enrollmentID: enrollmentID, secret: harness.secret)
        _ = try await harness.request(.GET, "/v1/contacts/\(contactID)/enrollments")
        _ = try await harness.request(.POST, "/v1/signals", json: #"{"type": "pause", "email": "ada.secret@example.com"}"#)
        _ = try await harness.request(.POST, "/v1/contacts", json: #"{"email": "not an address@"}"#)
        _ = try await harness.request(.POST, "/v1/contacts", json: #"{"email": "x@example.com"}"#, token: "wrong-token")
        _ = try await harness.request(.GET, "/u/\(token)", token: nil)
        _ = try await harness.request(.POST, "/u/\(token)", body: "List-Unsubscribe=One-Click", token: nil)
        _ = try await harness.request(.GET, "/nowhere/ada.secret@example.com", token: nil)
        try await harness.stop()

        let lines = harness.logs.entries.map(\.text)
        let requests = harness.logs.entries.filter { $0.message == "request" }
        #expect(requests.count >= 9)
        #expect(requests.contains { $0.metadata["http.route"] == "/u/{token}" && $0.metadata["http.method"] == "POST" })
        #expect(requests.contains { $0.metadata["http.route"] == "/v1/contacts/{id}/enrollments" })
        #expect(requests.contains { $0.metadata["http.route"] == "unmatched" && $0.metadata["http.status"] == "404" })
        for line in lines {
            #expect(!line.contains("@"), "\(line)")
            #expect(!line.contains(token), "\(line)")
            #expect(!line.contains(Harness.token), "\(line)")
            #expect(!line.contains("wrong-token"), "\(line)")
        }
    }

    @Test("unknown routes get a JSON 404; a known path asked with a method it does not serve gets 405 and Allow")
    func notFound() async throws {
        let harness = try await Harness.start(prefix: "notfound")
        let reply = try await harness.request(.GET, "/v2/whatever", token: nil)
        #expect(reply.status == 404)
        #expect(reply.json["error"] as? String == "not_found")
        for (method, path, allow) in [
            (HTTPMethod.DELETE, "/v1/contacts", "POST"), (.GET, "/v1/signals", "POST"), (.PUT, "/u/abc", "GET, POST"),
            (.POST, "/v1/contacts/7/enrollments", "GET"), (.OPTIONS, "/healthz", "GET"),
        ] {
            // No token: the method is refused before anything else is looked at.
            let wrongMethod = try await harness.request(method, path, token: nil)
            #expect(wrongMethod.status == 405, "\(method) \(path): \(wrongMethod)")
            #expect(wrongMethod.headers["allow"] == allow, "\(method) \(path): \(wrongMethod.headers)")
            #expect(wrongMethod.json["error"] as? String == "method_not_allowed")
        }
        try await harness.stop()
    }

    @Test("the server matches its OpenAPI document: every documented operation is served, every route documented")
    func openAPI() async throws {
        let document = try #require(try Yams.load(yaml: OpenAPIDocument.yaml) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let methods: Set<String> = ["get", "post", "put", "patch", "delete", "head", "options"]
        var documented = Set<String>()
        for (path, item) in paths {
            for method in item.keys where methods.contains(method) { documented.insert("\(method.uppercased()) \(path)") }
        }
        let served = Set(Route.all.map { "\($0.methodName) \($0.path)" })
        #expect(documented == served)

        let harness = try await Harness.start(prefix: "openapi")
        let contactID = try await harness.createContact("ada@example.com")
        for operation in documented.sorted() {
            let parts = operation.split(separator: " ", maxSplits: 1).map(String.init)
            let path = parts[1].replacingOccurrences(of: "{id}", with: "\(contactID)").replacingOccurrences(of: "{token}", with: "x")
                .replacingOccurrences(of: "{name}", with: "welcome")
            let method = HTTPMethod(rawValue: parts[0])
            let reply = try await harness.request(method, path, json: ["POST", "PUT"].contains(parts[0]) ? "{}" : nil)
            // Served: never 405, and never the router's own 404 (a handler's 404 names what is missing).
            #expect(reply.status != 405 && !reply.body.contains("no such endpoint"), "\(operation) → \(reply)")
            // Every status the server gave is one the document lists for the operation.
            let responses = (paths[parts[1]]?[parts[0].lowercased()] as? [String: Any])?["responses"] as? [String: Any]
            #expect(responses?.keys.contains(String(reply.status)) == true, "\(operation) answered \(reply.status), not documented")
        }
        let served200 = try await harness.request(.GET, "/v1/openapi.yaml", token: nil)
        #expect(served200.status == 200)
        #expect(served200.body == OpenAPIDocument.yaml)
        try await harness.stop()
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` (loopback answers at once).
func acceptsConnections(port: Int) -> Bool {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return result == 0
}
