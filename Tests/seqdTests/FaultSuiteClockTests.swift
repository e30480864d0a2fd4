import Foundation
import Postgres
import Testing
import TestSupport

extension FaultSuite {
    /// Scenario 10: daemons whose local clocks are hours off behave exactly like one whose clock is
    /// right, because every time decision uses the database's `now()` (design.md invariant 6).
    @Suite("clock skew")
    struct ClockSkew {
        static let count = 300, emails = 3, waitSeconds = 3.0

        /// libfaketime, the library the `faketime` command preloads (Debian package `faketime`,
        /// installed by Scripts/lib.sh). Preloaded directly because `DaemonProcess` runs the seqd
        /// binary itself; `FAKETIME=+5h` is exactly what `faketime +5h` sets.
        static func libfaketime() throws -> String {
            var candidates = ["/usr/lib/faketime/libfaketime.so.1"]
            let multiarch = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib")) ?? []
            candidates += multiarch.sorted().map { "/usr/lib/\($0)/faketime/libfaketime.so.1" }
            guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                throw ExternalCommand.Failed(
                    description: "libfaketime not found (looked in /usr/lib/*/faketime): install the Debian package "
                        + "`faketime` (Scripts/lib.sh does)")
            }
            return found
        }

        /// A daemon whose wall clock runs `offset` (libfaketime syntax, e.g. "+5h") from the real one;
        /// its monotonic clock stays true, as on a host whose clock is merely set wrong. JSON logs:
        /// their `at` comes from Foundation's `Date()`, the clock Swift code would misuse.
        ///
        /// Two libfaketime details: without `FAKETIME_SHARED` its constructor calls setenv(), which
        /// moves `environ` — and the Swift runtime finds argv by walking back from `environ`, so seqd
        /// would start without its arguments; the placeholder value (no such shared memory) keeps
        /// `environ` where it is. And libfaketime's timerfd/epoll wrappers stop Dispatch timers from
        /// firing, so such a daemon's poll timer and `Task.sleep` never return: it works through its
        /// loops' idle timeouts and LISTEN wake-ups, and must be stopped with SIGKILL, not SIGTERM.
        /// Claims of 10 rather than 100: the steps fall due 300 at a time and both daemons are woken
        /// by the same NOTIFY, so with large claims the one that wakes first takes nearly all of a
        /// burst (856 of 900 sends in one full-suite run), and the other's clock is barely tested.
        static func skewedDaemon(_ seqd: SeqdProcess, offset: String, name: String) throws -> DaemonProcess {
            DaemonProcess(
                seqd,
                environment: FaultSuite.daemonEnvironment([
                    "LD_PRELOAD": try libfaketime(), "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                    "FAKETIME_SHARED": "/seqd_no_sem /seqd_no_shm", "SEQD_LOG_LEVEL": "info", "SEQD_LOG_FORMAT": "json",
                    "SEQD_WORKER_BATCH_SIZE": "10",
                ]), name: name)
        }

        /// Fails clearly unless the daemon's own clock (its log timestamps) is `expected` seconds
        /// off the database's: otherwise the test would prove nothing.
        static func expectSkew(_ daemon: DaemonProcess, expected: TimeInterval, _ connection: Connection) async throws {
            try await waitUntil(timeout: .seconds(30), "the skewed daemon to log that it runs") { daemon.log.contains("seqd running") }
            let databaseNow = try connection.query("SELECT now() AS now")[0].decode("now", as: Date.self)
            let line = daemon.log.split(separator: "\n").first { $0.contains("seqd running") }.map(String.init) ?? ""
            struct LogLine: Decodable { let at: String }
            let stamp = (try? JSONDecoder().decode(LogLine.self, from: Data(line.utf8)))?.at ?? ""
            // The JSON handler writes UTC without a zone designator: 2026-11-30T10:00:06.711.
            let format = DateFormatter()
            format.locale = Locale(identifier: "en_US_POSIX")
            format.timeZone = TimeZone(identifier: "UTC")
            format.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSS"
            guard let logged = format.date(from: stamp) else {
                Issue.record("cannot read the skewed daemon's log timestamp from \(line)")
                return
            }
            let skew = logged.timeIntervalSince(databaseNow)
            try #require(
                abs(skew - expected) < 300,
                "faketime did not move the seqd binary's clock: its log says \(stamp), the database says \(databaseNow), a skew of \(Int(skew))s instead of \(Int(expected))s (is libfaketime preloaded, and does it intercept this binary's clock calls?)"
            )
        }

        @Test("daemons at +5h and -5h send every step exactly once, never before its wait is over by the database's clock")
        func hoursOff() async throws {
            let start = ContinuousClock.now
            let scenario = try await Scenario.prepare(
                prefix: "fault_clock", sequence: Scenario.drip(name: "clock", emails: Self.emails, wait: "3s"), name: "clock",
                contacts: (0..<Self.count).map { "clock\($0)@example.com" })
            let connection = try scenario.connect()
            // Enrolled but held, so the skew is proven before anything is sent.
            #expect(try await scenario.seqd.run("sequence", "pause", "clock").status == 0)
            // Only skewed daemons, so all the work is theirs: a right clock anywhere would hide a wrong one.
            let ahead = try Self.skewedDaemon(scenario.seqd, offset: "+5h", name: "ahead")
            let behind = try Self.skewedDaemon(scenario.seqd, offset: "-5h", name: "behind")
            for daemon in [ahead, behind] { try daemon.start() }
            try await Self.expectSkew(ahead, expected: 5 * 3_600, connection)
            try await Self.expectSkew(behind, expected: -5 * 3_600, connection)
            #expect(try await scenario.seqd.run("sequence", "resume", "clock").status == 0)

            // libfaketime stops Dispatch timers, so neither daemon polls: work reaches a daemon only
            // through its own loops and NOTIFY. Without this NOTIFY every 100 ms (what `enroll` and
            // resume send), whichever daemon was woken first by the resume kept all of it: in one
            // clean-clone run the other sent nothing. A skewed clock on a real host has its timers.
            try await waitUntil(timeout: .seconds(120), interval: .milliseconds(100), "every enrollment to finish") {
                _ = try connection.query("SELECT pg_notify('seqd_wakeup', '')")
                return try RunOutcome.live(connection) == 0
            }
            for daemon in [ahead, behind] {
                daemon.send(SIGKILL)  // see skewedDaemon: under libfaketime, SIGTERM's graceful stop never wakes
                _ = try await daemon.waitForExit()
            }
            let outcome = try RunOutcome.load(connection)
            FaultSuite.expectComplete(outcome, enrollments: Self.count, emails: Self.emails)
            #expect(outcome.attempts == outcome.sent, "\(outcome)")
            // Both skewed processes sent a real share.
            let sends = try RunOutcome.attemptsPerProcess(connection)
            #expect(sends.count == 2, "attempts per process: \(sends)")
            for (pid, n) in sends { #expect(n * 10 >= outcome.sent, "process \(pid) sent only \(n): \(sends)") }

            // The gap between a contact's consecutive sends, by the database's timestamps: from the
            // previous message's sent_at to the first attempt at the next one. Grouped by the process
            // that claimed the next message.
            let gaps = try connection.query(
                """
                WITH sends AS (
                    SELECT d.enrollment_id, d.step_key, d.sent_at,
                           (SELECT min(a.started_at) FROM seqd.delivery_attempts a WHERE a.delivery_id = d.id) AS started_at,
                           (SELECT split_part(a.worker, ':', 3) FROM seqd.delivery_attempts a WHERE a.delivery_id = d.id
                            ORDER BY a.id LIMIT 1) AS pid
                    FROM seqd.deliveries d
                ), pairs AS (
                    SELECT extract(epoch FROM n.started_at - p.sent_at)::float8 AS gap, n.pid
                    FROM sends p JOIN sends n ON n.enrollment_id = p.enrollment_id
                     AND n.step_key = 'm' || (substr(p.step_key, 2)::int + 1)
                )
                SELECT pid, count(*) AS n, min(gap) AS shortest, avg(gap) AS average, max(gap) AS longest
                FROM pairs GROUP BY pid ORDER BY pid
                """)
            var pairs = 0
            var report = [String]()
            for row in gaps.rows {
                let shortest = try row.decode("shortest", as: Double.self)
                let pid = try row.decode("pid", as: String.self)
                pairs += try row.decode("n", as: Int.self)
                #expect(shortest >= Self.waitSeconds, "process \(pid) sent a next step \(shortest)s after the previous one; the wait is 3s")
                report.append(
                    "pid \(pid): \(try row.decode("n", as: Int.self)) gaps, shortest \(String(format: "%.3f", shortest))s, "
                        + "mean \(String(format: "%.3f", try row.decode("average", as: Double.self)))s, "
                        + "longest \(String(format: "%.3f", try row.decode("longest", as: Double.self)))s")
            }
            #expect(pairs == Self.count * (Self.emails - 1))
            try await FaultSuite.expectCheckClean(scenario.seqd)
            print("fault 10 (clock skew +5h and -5h): \(outcome); sends per process \(sends); \(report.joined(separator: "; ")); "
                + FaultSuite.elapsed(since: start))
        }
    }
}
