import Foundation
import Metrics
import NIOHTTP1
import Postgres
import SequenceHTTP
import SequenceStore
import Testing
import TestSupport

@Suite("probes and metrics")
struct ProbeTests {
    @Test("/healthz answers from the health closure without touching the database")
    func healthz() async throws {
        // An unreachable database: liveness must not depend on it.
        let unreachable = "postgresql://postgres@/postgres?host=/nonexistent-seqd-socket-dir&connect_timeout=2"
        let alive = try await Harness.start(prefix: "healthz", databaseURL: unreachable)
        let ok = try await alive.request(.GET, "/healthz", token: nil)
        #expect(ok.status == 200)
        #expect(ok.json["status"] as? String == "ok")
        try await alive.stop()

        let stuck = try await Harness.start(
            prefix: "healthz", databaseURL: unreachable, health: { HealthState(isAlive: false, reason: "advance-0 stopped ticking") })
        let down = try await stuck.request(.GET, "/healthz", token: nil)
        #expect(down.status == 503)
        #expect(down.json["reason"] as? String == "advance-0 stopped ticking")
        try await stuck.stop()
    }

    /// `/readyz` once the background check has answered at least once.
    static func settledReadyz(_ harness: Harness) async throws -> Harness.Reply {
        var reply = try await harness.request(.GET, "/readyz", token: nil)
        let deadline = ContinuousClock.now + .seconds(15)
        while (reply.json["reason"] as? String)?.contains("has not completed yet") == true, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            reply = try await harness.request(.GET, "/readyz", token: nil)
        }
        return reply
    }

    @Test("/readyz is 200 on a migrated database and says which schema it found")
    func ready() async throws {
        let harness = try await Harness.start(prefix: "readyz")
        let reply = try await Self.settledReadyz(harness)
        #expect(reply.status == 200, "\(reply)")
        #expect(reply.json["schema_version"] as? Int == Migrations.latestVersion)
        #expect(reply.json["minimum_schema_version"] as? Int == Migrations.minimumVersion)
        try await harness.stop()
    }

    @Test("/readyz is 503 with a reason: no schema, an old schema, an unreachable database")
    func notReady() async throws {
        let empty = try await Harness.start(prefix: "readyz", databaseURL: try await TestDatabase.shared.makeEmptyDatabase(prefix: "readyzempty"))
        let unmigrated = try await Self.settledReadyz(empty)
        #expect(unmigrated.status == 503)
        #expect((unmigrated.json["reason"] as? String)?.contains("seqd migrate") == true, "\(unmigrated)")
        try await empty.stop()

        let old = try await TestDatabase.shared.makeMigratedDatabase(prefix: "readyzold")
        try Connection(old).execute("DELETE FROM seqd.schema_migrations WHERE version >= \(Migrations.minimumVersion)")
        let outdated = try await Harness.start(prefix: "readyz", databaseURL: old)
        let reply = try await Self.settledReadyz(outdated)
        #expect(reply.status == 503)
        #expect((reply.json["reason"] as? String)?.contains("needs at least \(Migrations.minimumVersion)") == true, "\(reply)")
        try await outdated.stop()

        let gone = try await Harness.start(
            prefix: "readyz", databaseURL: "postgresql://postgres@/postgres?host=/nonexistent-seqd-socket-dir&connect_timeout=2")
        let unreachable = try await Self.settledReadyz(gone)
        #expect(unreachable.status == 503)
        #expect(unreachable.json["reason"] as? String == "database unreachable", "\(unreachable)")
        try await gone.stop()
    }

    @Test("/readyz answers from state refreshed in the background, not a query per request")
    func readyzFromMemory() async throws {
        // A check every 60 s: after the first, requests cannot reach the database at all.
        let slow = try await Harness.start(prefix: "readyzmem", readinessInterval: .seconds(60))
        #expect(try await Self.settledReadyz(slow).status == 200)
        let connection = try slow.connect()
        func lastReadinessQuery() throws -> Date? {
            try connection.query(
                """
                SELECT max(query_start) AS t FROM pg_stat_activity
                WHERE application_name = 'seqd http readyz' AND datname = current_database()
                """)[0].decode("t", as: Date?.self)
        }
        let before = try lastReadinessQuery()
        #expect(before != nil, "the background check has run on its own session")
        try connection.execute("DELETE FROM seqd.schema_migrations")
        for _ in 0..<50 { #expect(try await slow.request(.GET, "/readyz", token: nil).status == 200) }
        // The readiness session ran no statement for any of the 50 probes.
        #expect(try lastReadinessQuery() == before)
        try await slow.stop()
        // Refreshed every 200 ms, the same change shows within a second or two.
        let fast = try await Harness.start(prefix: "readyzfast", readinessInterval: .milliseconds(200))
        #expect(try await Self.settledReadyz(fast).status == 200)
        try fast.connect().execute("DELETE FROM seqd.schema_migrations")
        var status = 200
        let deadline = ContinuousClock.now + .seconds(5)
        while status == 200, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            status = try await fast.request(.GET, "/readyz", token: nil).status
        }
        #expect(status == 503, "the background check noticed the schema went away")
        try await fast.stop()
    }

    @Test("/metrics: the SQL gauges follow the database, and swift-metrics counters appear")
    func metricsMove() async throws {
        // The daemon records through swift-metrics into the process registry; this listener
        // renders that registry, as `seqd run` will.
        let registry = SeqdMetrics.bootstrap()
        let harness = try await Harness.start(prefix: "metrics", registry: registry)
        let before = try await harness.request(.GET, "/metrics", token: nil)
        #expect(before.status == 200)
        #expect(before.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        for name in ["seqd_due_backlog", "seqd_oldest_due_age_seconds", "seqd_expired_leases", "seqd_oldest_transaction_age_seconds"] {
            #expect(before.body.contains("# TYPE \(name) gauge"), "\(name) missing")
        }

        Counter(label: "seqd_test_work_total").increment(by: 3)
        _ = try await harness.enroll("ada@example.com")
        _ = try await harness.enroll("bob@example.com")
        var scraped = ""
        try await eventually("the gauges to see two due enrollments") {
            scraped = try await harness.request(.GET, "/metrics", token: nil).body
            return scraped.contains("\nseqd_due_backlog 2.0\n")
        }
        #expect(scraped.contains("\nseqd_test_work_total 3\n"))
        #expect(scraped.contains("\nseqd_gauges_database_up 1.0\n"))
        #expect(scraped.contains(#"seqd_http_requests_total{method="POST",route="/v1/enrollments",status="201"}"#))

        // An old open transaction shows up in its gauge.
        let holder = try harness.connect()
        try holder.execute("BEGIN")
        try holder.query("SELECT 1")
        try await Task.sleep(for: .milliseconds(1_100))
        try await eventually("the oldest transaction gauge to pass one second") {
            let body = try await harness.request(.GET, "/metrics", token: nil).body
            let line = body.split(separator: "\n").first { $0.hasPrefix("seqd_oldest_transaction_age_seconds ") }
            return line.flatMap { Double($0.split(separator: " ")[1]) }.map { $0 >= 1 } ?? false
        }
        try holder.execute("ROLLBACK")
        // No label or value carries an address.
        #expect(!scraped.contains("@"))
        try await harness.stop()
    }
}
