import Foundation
import Postgres
import Testing
import TestSupport

/// `sender.daily_limit` with real `seqd run` replicas (issue 7): three processes with small
/// batches race on one sender's enrollments; the day's count never exceeds the limit and every
/// enrollment left over is deferred to the next day with its reason.
@Suite("sender daily limit across replicas", .serialized)
struct SenderLimitDaemonTests {
    @Test("three daemons never queue more than the sender's daily limit, and defer every other enrollment with its reason")
    func threeReplicas() async throws {
        let count = 600, limit = 150
        let sequence = """
            name: limited
            sender: { address: team@example.com, daily_limit: \(limit) }
            time_zone: Europe/Berlin
            steps:
              - { key: m1, type: email, subject: "Hello {{first_name|you}}", body: "body" }
              - { type: wait, duration: 1s }
              - { key: m2, type: email, subject: "Again", body: "body" }
            """
        let scenario = try await Scenario.prepare(
            prefix: "limit_replicas", sequence: sequence, name: "limited", contacts: (0..<count).map { "lim\($0)@example.com" })
        let connection = try scenario.connect()
        let environment = [
            "SEQD_DELIVERY_TRANSPORT": "null", "SEQD_WORKER_POLL_INTERVAL": "1s", "SEQD_LOG_LEVEL": "warning",
            "SEQD_WORKER_SHUTDOWN_GRACE": "10s", "SEQD_WORKER_BATCH_SIZE": "20",
        ]
        let daemons = (0..<3).map { DaemonProcess(scenario.seqd, environment: environment, name: "limit\($0)") }
        for daemon in daemons { try daemon.start() }
        // Settled: every enrollment waits for the sender's next day (Berlin's), having sent m1 and
        // been refused m2, or been refused m1; and nothing is left in the outbox.
        try await waitUntil(timeout: .seconds(120), "every enrollment to be deferred to the next day") {
            try connection.query(
                """
                SELECT count(*) AS n FROM seqd.enrollments
                WHERE status <> 'active' OR next_run_at IS NULL
                   OR next_run_at < ((now() AT TIME ZONE 'Europe/Berlin')::date + 1)::timestamp AT TIME ZONE 'Europe/Berlin'
                   OR EXISTS (SELECT 1 FROM seqd.deliveries d WHERE d.status IN ('pending', 'sending'))
                """)[0].decode("n", as: Int.self) == 0
        }
        for daemon in daemons { daemon.send(SIGTERM) }
        for daemon in daemons {
            let status = try await daemon.waitForExit()
            #expect(status == 0, "daemon exited \(status):\n\(daemon.log)")
        }
        let outcome = try connection.query(
            """
            SELECT (SELECT count(*) FROM seqd.deliveries) AS queued,
                   (SELECT count(*) FROM seqd.deliveries WHERE status = 'sent') AS sent,
                   (SELECT max(reserved) FROM seqd.sender_daily_counts
                    WHERE day = (now() AT TIME ZONE 'Europe/Berlin')::date) AS reserved,
                   (SELECT count(DISTINCT enrollment_id) FROM seqd.enrollment_events
                    WHERE event = 'deferred' AND reason = 'sender_daily_limit') AS deferred,
                   (SELECT count(*) FROM seqd.enrollments e
                    WHERE e.status = 'active' AND e.next_run_at > now()
                      AND NOT EXISTS (SELECT 1 FROM seqd.enrollment_events v WHERE v.enrollment_id = e.id
                                      AND v.event = 'deferred' AND v.reason = 'sender_daily_limit')) AS waiting_without_reason,
                   (SELECT count(DISTINCT actor) FROM seqd.enrollment_events WHERE event = 'deferred') AS deferring_processes
            """)[0]
        let queued = try outcome.decode("queued", as: Int.self)
        // Both emails of an enrollment count: 150 slots, never more, all used.
        #expect(queued == limit, "\(queued) emails queued for a limit of \(limit)")
        #expect(try outcome.decode("sent", as: Int.self) == limit)
        #expect(try outcome.decode("reserved", as: Int.self) == limit)
        let deferred = try outcome.decode("deferred", as: Int.self)
        #expect(deferred == count, "only \(deferred) enrollments deferred")
        #expect(try outcome.decode("waiting_without_reason", as: Int.self) == 0)
        print("sender limit: \(queued) queued of \(limit); \(deferred) enrollments deferred; "
            + "deferrals written by \(try outcome.decode("deferring_processes", as: Int.self)) process(es)")
        let check = try await scenario.seqd.run("check")
        #expect(check.status == 0, "\(check)")
    }
}
