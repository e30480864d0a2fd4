import Foundation
import Postgres
import Testing
import TestSupport

extension FaultSuite {
    /// The duplicate bound of issue 15, through a real SMTP server that takes its time to accept
    /// each message (so messages are on the wire when the faults hit): after a SIGKILL at most the
    /// killed process's sessions in flight reach the relay twice; after SIGTERM none; while
    /// PostgreSQL is down nothing new is handed to the relay, and when it is back sending resumes
    /// by itself.
    @Suite("SMTP: duplicates on the wire")
    struct SMTPWire {
        /// Sessions per daemon in these scenarios: the bound per kill.
        static let sessions = 4

        static func environment(port: Int, extra: [String: String] = [:]) -> [String: String] {
            FaultSuite.daemonEnvironment([
                "SEQD_DELIVERY_TRANSPORT": "smtp", "SEQD_DELIVERY_SMTP_URL": "smtp://127.0.0.1:\(port)",
                "SEQD_UNSUBSCRIBE_BASE_URL": "http://127.0.0.1:8080", "SEQD_DELIVERY_SMTP_TIMEOUT": "5s",
                "SEQD_DELIVERY_CONCURRENCY": "\(sessions)", "SEQD_DELIVERY_LEASE_TIMEOUT": "3s", "SEQD_DELIVERY_BACKOFF": "1s",
                "SEQD_LOG_LEVEL": "notice",
            ]).merging(extra) { $1 }
        }

        /// Copies of each Message-ID the server received (a message whose data reached the server
        /// counts, answered or not: the receiver may have kept it).
        static func copies(_ server: FixtureServer) throws -> [String: Int] {
            var copies: [String: Int] = [:]
            for file in try server.files(endingWith: ".eml") {
                let text = String(decoding: try server.contents(file), as: UTF8.self)
                let id = text.split(separator: "\r\n").first { $0.hasPrefix("Message-ID: ") }.map { String($0.dropFirst(12)) } ?? "(none)"
                copies[id, default: 0] += 1
            }
            return copies
        }

        static func twice(_ copies: [String: Int]) -> Int { copies.values.reduce(0) { $0 + max(0, $1 - 1) } }

        static func sentDeliveries(_ connection: Connection) throws -> Int {
            try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sent'")[0].decode("n")
        }

        /// Every message the server got belongs to a delivery, and every delivery was sent once in the database.
        static func expectAccounted(_ copies: [String: Int], _ connection: Connection, messages: Int) throws {
            let known = Set(try connection.query("SELECT message_id FROM seqd.deliveries WHERE message_id IS NOT NULL").rows
                .map { try $0.decode("message_id", as: String.self) })
            #expect(copies.keys.allSatisfy { known.contains($0) }, "a message arrived that no delivery explains")
            #expect(copies.count == messages, "\(copies.count) distinct messages on the wire, expected \(messages)")
        }

        @Test("three replicas, one SIGKILLed every 1.5 s while sending through a slow relay: per kill at most its sessions in flight reach the relay twice")
        func killsWhileSending() async throws {
            let start = ContinuousClock.now
            let server = try await FixtureServer.start("smtp_server.py", ["--delay", "0.1", "accept"])
            defer { server.stop() }
            let contacts = 300, emails = 2
            let scenario = try await Scenario.prepare(
                prefix: "smtp_kill", sequence: Scenario.drip(name: "kill", emails: emails, wait: "0s"), name: "kill",
                contacts: (0..<contacts).map { "kill\($0)@example.com" })
            let connection = try scenario.connect()
            let daemons = (0..<3).map { DaemonProcess(scenario.seqd, environment: Self.environment(port: server.port), name: "kill\($0)") }
            for daemon in daemons { try daemon.start() }
            try await waitUntil(timeout: .seconds(60), "the first sends") { try Self.sentDeliveries(connection) > 0 }
            var kills = 0
            while kills < 6, try Self.sentDeliveries(connection) < contacts * emails * 3 / 4 {
                try await Task.sleep(for: .milliseconds(1_500))
                let victim = daemons[kills % daemons.count]
                victim.send(SIGKILL)
                _ = try await victim.waitForExit()
                kills += 1
                try victim.start()
            }
            #expect(kills >= 3, "the run ended after \(kills) kills; make it longer")
            try await waitUntil(timeout: .seconds(180), "every enrollment to finish after the kills") {
                try RunOutcome.live(connection) == 0
            }
            try await FaultSuite.stop(daemons)
            let outcome = try RunOutcome.load(connection)
            FaultSuite.expectComplete(outcome, enrollments: contacts, emails: emails)
            let copies = try Self.copies(server)
            try Self.expectAccounted(copies, connection, messages: contacts * emails)
            let twice = Self.twice(copies)
            #expect(twice <= kills * Self.sessions, "\(twice) messages on the wire twice after \(kills) kills of \(Self.sessions) sessions each")
            try await FaultSuite.expectCheckClean(scenario.seqd)
            print("SMTP SIGKILL: \(kills) kills, \(twice) messages on the wire twice (\(String(format: "%.2f", Double(twice) / Double(kills))) per kill, "
                + "bound \(Self.sessions) per kill), \(copies.values.reduce(0, +)) messages for \(contacts * emails) deliveries; \(FaultSuite.elapsed(since: start))")
        }

        @Test("256 sessions through a relay that takes 0.5 s a message: about 256 in flight at once, on 6 database connections")
        func manySessionsFewConnections() async throws {
            let server = try await FixtureServer.start("smtp_server.py", ["--delay", "0.5", "accept"])
            defer { server.stop() }
            let contacts = 512
            let scenario = try await Scenario.prepare(
                prefix: "smtp_many", sequence: Scenario.drip(name: "many", emails: 1, wait: "0s"), name: "many",
                contacts: (0..<contacts).map { "many\($0)@example.com" })
            let connection = try scenario.connect()
            let daemon = DaemonProcess(
                scenario.seqd, environment: Self.environment(port: server.port, extra: [
                    "SEQD_DELIVERY_CONCURRENCY": "256", "SEQD_DELIVERY_LEASE_TIMEOUT": "30s",
                ]), name: "many")
            let started = ContinuousClock.now
            try daemon.start()
            var peak = 0
            while try RunOutcome.live(connection) > 0 {
                peak = max(peak, try connection.query(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'seqd %'"
                )[0].decode("n", as: Int.self))
                #expect(ContinuousClock.now - started < .seconds(120), "512 messages through 256 sessions took too long")
                if ContinuousClock.now - started > .seconds(120) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let took = ContinuousClock.now - started
            try await FaultSuite.stop([daemon])
            FaultSuite.expectComplete(try RunOutcome.load(connection), enrollments: contacts, emails: 1)
            #expect(peak <= 7, "\(peak) database connections for 256 sessions (worker.concurrency 2 + 5)")
            // Serially, 512 messages at 0.5 s would take 256 s: only concurrent sessions finish in time.
            #expect(took < .seconds(60), "512 messages took \(took)")
            print("SMTP 256 sessions: \(contacts) messages at 0.5 s each in \(took), peak \(peak) database connections")
        }

        @Test("SIGTERM during a burst through a slow relay: exit 0, nothing on the wire twice, a second daemon finishes")
        func termDuringBurst() async throws {
            let server = try await FixtureServer.start("smtp_server.py", ["--delay", "0.2", "accept"])
            defer { server.stop() }
            let contacts = 200
            let scenario = try await Scenario.prepare(
                prefix: "smtp_term", sequence: Scenario.drip(name: "term", emails: 1, wait: "0s"), name: "term",
                contacts: (0..<contacts).map { "term\($0)@example.com" })
            let connection = try scenario.connect()
            let environment = Self.environment(port: server.port, extra: ["SEQD_DELIVERY_CONCURRENCY": "8", "SEQD_DELIVERY_LEASE_TIMEOUT": "30s"])
            let first = DaemonProcess(scenario.seqd, environment: environment, name: "term-first")
            try first.start()
            try await waitUntil(timeout: .seconds(60), "a burst under way") { try Self.sentDeliveries(connection) >= 20 }
            first.send(SIGTERM)
            let stopped = ContinuousClock.now
            #expect(try await first.waitForExit(timeout: .seconds(30)) == 0, "\(first.log)")
            let took = ContinuousClock.now - stopped
            #expect(took < .seconds(10), "SIGTERM took \(took) (grace 10s)")
            #expect(try connection.query("SELECT count(*) AS n FROM seqd.deliveries WHERE status = 'sending'")[0].decode("n", as: Int.self) == 0,
                    "the stopped daemon left leases behind")
            let second = DaemonProcess(scenario.seqd, environment: environment, name: "term-second")
            try second.start()
            try await waitUntil(timeout: .seconds(120), "the second daemon to finish") { try RunOutcome.live(connection) == 0 }
            try await FaultSuite.stop([second])
            FaultSuite.expectComplete(try RunOutcome.load(connection), enrollments: contacts, emails: 1)
            let copies = try Self.copies(server)
            try Self.expectAccounted(copies, connection, messages: contacts)
            #expect(Self.twice(copies) == 0, "SIGTERM put \(Self.twice(copies)) messages on the wire twice")
            print("SMTP SIGTERM: stopped in \(took) mid-burst, 0 of \(contacts) messages on the wire twice")
        }

        @Test("PostgreSQL down for 4 s while sending: nothing new reaches the relay until it is back, sending resumes by itself, duplicates within the bound")
        func databaseDownWhileSending() async throws {
            let start = ContinuousClock.now
            let server = try await FixtureServer.start("smtp_server.py", ["--delay", "0.05", "accept"])
            defer { server.stop() }
            try await PrivateCluster.with { cluster in
                let url = try await cluster.makeMigratedDatabase("smtp_down")
                let contacts = 400
                let scenario = try await Scenario.prepare(
                    databaseURL: url, sequence: Scenario.drip(name: "down", emails: 1, wait: "0s"), name: "down",
                    contacts: (0..<contacts).map { "down\($0)@example.com" })
                var connection = try scenario.connect()
                let daemons = (0..<2).map {
                    DaemonProcess(scenario.seqd, environment: Self.environment(port: server.port, extra: ["SEQD_DELIVERY_LEASE_TIMEOUT": "10s"]), name: "down\($0)")
                }
                for daemon in daemons { try daemon.start() }
                try await waitUntil(timeout: .seconds(60), "sending under way") { try Self.sentDeliveries(connection) >= 40 }
                try await cluster.stopServer()
                // What was on the wire when the server went away may still arrive; after that, nothing.
                try await Task.sleep(for: .seconds(1))
                let settled = try server.files(endingWith: ".eml").count
                try await Task.sleep(for: .seconds(3))
                let during = try server.files(endingWith: ".eml").count - settled
                try await cluster.startServer()
                #expect(during == 0, "\(during) messages reached the relay while outcomes could not be recorded")
                connection = try scenario.connect()
                let reconnected = connection
                try await waitUntil(timeout: .seconds(120), "every enrollment to finish after the outage") {
                    try RunOutcome.live(reconnected) == 0
                }
                try await FaultSuite.stop(daemons)
                FaultSuite.expectComplete(try RunOutcome.load(connection), enrollments: contacts, emails: 1)
                let copies = try Self.copies(server)
                try Self.expectAccounted(copies, connection, messages: contacts)
                let twice = Self.twice(copies)
                #expect(twice <= daemons.count * Self.sessions, "\(twice) on the wire twice after one outage of \(daemons.count) daemons")
                try await FaultSuite.expectCheckClean(scenario.seqd)
                print("SMTP database outage: \(during) messages handed to the relay during the 3 s checked, \(twice) on the wire twice "
                    + "(bound \(daemons.count * Self.sessions)); \(FaultSuite.elapsed(since: start))")
            }
        }
    }
}
