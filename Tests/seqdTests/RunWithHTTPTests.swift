import Foundation
import Postgres
import Testing
import TestSupport

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `seqd run` with `http.port`: the listener runs in the daemon's process, reports the loops'
/// health, exposes the daemon's metrics, and stops with it.
@Suite("seqd run with its HTTP listener")
struct RunWithHTTPTests {
    func get(_ url: String) async throws -> (status: Int, body: String) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    @Test("healthz, readyz and metrics answer while the daemon works; SIGTERM stops both, exit 0")
    func probesAndMetrics() async throws {
        let scenario = try await Scenario.prepare(
            prefix: "runhttp", sequence: SignalTests.longWait, name: "slow", contacts: ["a@example.com", "b@example.com"])
        let port = try FixtureServer.freePort()
        let daemon = DaemonProcess(
            scenario.seqd,
            environment: ["SEQD_HTTP_PORT": String(port), "SEQD_DELIVERY_TRANSPORT": "null", "SEQD_LOG_LEVEL": "warning"],
            name: "runhttp")
        try daemon.start()
        let base = "http://127.0.0.1:\(port)"
        try await waitUntil(timeout: .seconds(30), "the listener") { FixtureServer.canConnect(port: port) }
        #expect(try await get(base + "/healthz").status == 200)
        let ready = try await get(base + "/readyz")
        #expect(ready.status == 200, "\(ready.body)")
        let connection = try scenario.connect()
        try await waitUntil(timeout: .seconds(30), "the first emails") {
            try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'")[0].decode("n", as: Int.self) == 2
        }
        let metrics = try await get(base + "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("seqd_advances_total"), "\(metrics.body.prefix(2_000))")
        #expect(metrics.body.contains("seqd_deliveries_total"))
        #expect(!metrics.body.contains("@example.com"))
        daemon.send(SIGTERM)
        #expect(try await daemon.waitForExit() == 0, "\(daemon.log)")
        #expect(!FixtureServer.canConnect(port: port))
    }
}
