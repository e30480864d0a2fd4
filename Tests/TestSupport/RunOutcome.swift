import Foundation
import Postgres

extension Scenario {
    /// The same setup as `prepare`, in a database that already exists and is migrated (one of a
    /// `PrivateCluster`, say): the runtime role's grants, then the sequence, the contacts and their
    /// enrollments through the CLI, which (like the daemons) runs as the runtime role.
    public static func prepare(databaseURL: String, sequence: String, name: String, contacts: [String]) async throws -> Scenario {
        let runtimeURL = try await TestDatabase.shared.withRoles(databaseURL)
        let seqd = try SeqdProcess(databaseURL: runtimeURL)
        try seqd.write("sequence.yaml", sequence)
        try seqd.write("contacts.csv", "email,first_name\n" + contacts.enumerated().map { "\($1),Name\($0)\n" }.joined())
        for arguments in [["sequence", "apply", "sequence.yaml"], ["contact", "import", "contacts.csv"], ["enroll", "--sequence", name, "--all"]] {
            let result = try await seqd.run(arguments)
            guard result.status == 0 else { throw TimedOut(description: "setup step \(arguments) failed: \(result)") }
        }
        return Scenario(seqd: seqd, databaseURL: databaseURL, runtimeURL: runtimeURL)
    }

    /// A sequence of `emails` email steps (keys `m1`, `m2`, …) separated by waits of `wait`.
    public static func drip(name: String, emails: Int, wait: String) -> String {
        var steps = [String]()
        for index in 1...emails {
            if index > 1 { steps.append("  - { type: wait, duration: \(wait) }") }
            steps.append("  - { key: m\(index), type: email, subject: \"Message \(index) for {{first_name|you}}\", body: \"body \(index)\" }")
        }
        return "name: \(name)\nsender: { address: team@example.com, name: Team }\nsteps:\n" + steps.joined(separator: "\n") + "\n"
    }
}

/// Where a run stands, read with SQL: what every fault scenario asserts at its end.
public struct RunOutcome: Sendable, CustomStringConvertible {
    public let enrollments: Int
    public let completed: Int
    /// active or paused: not finished yet.
    public let live: Int
    public let deliveries: Int
    public let sent: Int
    /// Distinct (enrollment, step key) pairs among the deliveries; equals `deliveries` when no step has two rows.
    public let distinctSteps: Int
    /// Rows of `delivery_attempts` (not counting `skipped`, claimed then given back unsent, nor
    /// `throttled`, refused before anything was accepted): more
    /// than `sent` when a delivery was handed to the transport again.
    public let attempts: Int
    /// Deliveries with more than one attempt.
    public let retriedDeliveries: Int
    /// Deliveries with more than one attempt and no attempt of outcome 'unknown' to explain it.
    public let unexplainedRetries: Int

    public static func load(_ connection: Connection) throws -> RunOutcome {
        let row = try connection.query(
            """
            SELECT (SELECT count(*) FROM seqd.enrollments) AS enrollments,
                   (SELECT count(*) FROM seqd.enrollments WHERE status = 'completed') AS completed,
                   (SELECT count(*) FROM seqd.enrollments WHERE status IN ('active', 'paused')) AS live,
                   (SELECT count(*) FROM seqd.deliveries) AS deliveries,
                   (SELECT count(*) FROM seqd.deliveries WHERE status = 'sent') AS sent,
                   (SELECT count(*) FROM (SELECT DISTINCT enrollment_id, step_key FROM seqd.deliveries) d) AS distinct_steps,
                   (SELECT count(*) FROM seqd.delivery_attempts WHERE COALESCE(outcome, '') NOT IN ('skipped', 'throttled')) AS attempts,
                   (SELECT count(*) FROM (SELECT delivery_id FROM seqd.delivery_attempts WHERE COALESCE(outcome, '') NOT IN ('skipped', 'throttled')
                                          GROUP BY delivery_id HAVING count(*) > 1) r) AS retried,
                   (SELECT count(*) FROM (SELECT delivery_id FROM seqd.delivery_attempts WHERE COALESCE(outcome, '') NOT IN ('skipped', 'throttled')
                                          GROUP BY delivery_id HAVING count(*) > 1 AND NOT bool_or(outcome = 'unknown')) u) AS unexplained
            """)[0]
        return RunOutcome(
            enrollments: try row.decode("enrollments"), completed: try row.decode("completed"), live: try row.decode("live"),
            deliveries: try row.decode("deliveries"), sent: try row.decode("sent"), distinctSteps: try row.decode("distinct_steps"),
            attempts: try row.decode("attempts"), retriedDeliveries: try row.decode("retried"),
            unexplainedRetries: try row.decode("unexplained"))
    }

    public var description: String {
        "enrollments=\(enrollments) completed=\(completed) live=\(live) deliveries=\(deliveries) sent=\(sent) "
            + "distinct_steps=\(distinctSteps) attempts=\(attempts) retried=\(retriedDeliveries) unexplained=\(unexplainedRetries)"
    }

    /// Active or paused enrollments left.
    public static func live(_ connection: Connection) throws -> Int {
        try connection.query("SELECT count(*) AS n FROM seqd.enrollments WHERE status IN ('active', 'paused')")[0].decode("n")
    }

    /// How many attempts each daemon process made, by the pid in `delivery_attempts.worker`
    /// (`daemon:<host>:<pid>:<thread>`).
    public static func attemptsPerProcess(_ connection: Connection) throws -> [String: Int] {
        var shares = [String: Int]()
        for row in try connection.query(
            "SELECT split_part(worker, ':', 3) AS pid, count(*) AS n FROM seqd.delivery_attempts GROUP BY 1"
        ).rows {
            shares[try row.decode("pid")] = try row.decode("n")
        }
        return shares
    }
}
