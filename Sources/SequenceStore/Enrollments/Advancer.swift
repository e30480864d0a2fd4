import Foundation
import Postgres
import SequenceEngine

/// What one advance transaction did.
public struct AdvanceSummary: Sendable, Equatable {
    /// Enrollments claimed (0 means nothing was due).
    public var claimed = 0
    public var deliveriesCreated = 0
    public var completed = 0
    public var failed = 0
    public var optedOut = 0
    public init() {}
}

/// Advances due enrollments: one transaction claims up to `limit` of them with `FOR UPDATE SKIP
/// LOCKED`, runs each through the state machine, and writes every result set-based before commit.
/// Any number of workers and replicas can run this at once; none claims another's rows.
///
/// Not thread-safe: one per worker thread, with that worker's connection.
public final class Advancer {
    private let actor: String
    private let installationID: String
    private let cache = DefinitionCache()

    public init(actor: String, installationID: String) {
        self.actor = actor
        self.installationID = installationID
    }

    /// Claims due active enrollments, oldest due first. MATERIALIZED keeps the LIMIT and the lock
    /// together (a plain `IN (SELECT …)` can be re-evaluated and lock more than `limit` rows); the
    /// due condition uses the database clock. Enrollments of a paused sequence are held in place.
    static let claim = PreparedStatement(
        name: "advance_claim",
        sql: """
            WITH due AS MATERIALIZED (
                SELECT e.id FROM seqd.enrollments e
                WHERE e.status = 'active' AND e.next_run_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM seqd.sequences s WHERE s.id = e.sequence_id AND s.paused_at IS NOT NULL)
                ORDER BY e.next_run_at
                LIMIT $1
                FOR UPDATE OF e SKIP LOCKED
            )
            SELECT \(EnrollmentRecord.columns), now() AS now,
                   EXISTS (SELECT 1 FROM seqd.suppressions s WHERE s.email = lower(c.email)) AS suppressed
            FROM due JOIN seqd.enrollments e ON e.id = due.id JOIN seqd.contacts c ON c.id = e.contact_id
            """)

    /// Runs one advance transaction.
    public func advanceBatch(_ connection: Connection, limit: Int) throws -> AdvanceSummary {
        try connection.transaction { connection in
            let rows = try connection.query(Self.claim, [limit])
            var summary = AdvanceSummary()
            summary.claimed = rows.count
            guard rows.count > 0 else { return summary }
            let now = try rows[0].decode("now", as: Date.self)
            let records = try rows.rows.map { (record: try EnrollmentRecord(row: $0), suppressed: try $0.decode("suppressed", as: Bool.self)) }
            let definitions = try cache.definitions(
                for: Set(records.map { DefinitionCache.VersionKey(sequenceID: $0.record.sequenceID, version: $0.record.sequenceVersion) }),
                using: connection)

            var advanced = [(id: Int64, state: EnrollmentState)]()
            var optedOut = [(id: Int64, state: EnrollmentState)]()
            var outbox = OutboxRows()
            var cancelFor = [Int64]()
            for (record, suppressed) in records {
                guard let definition = definitions[.init(sequenceID: record.sequenceID, version: record.sequenceVersion)] else {
                    throw StoreError(.notFound, "enrollment \(record.id): its sequence version \(record.sequenceVersion) is missing")
                }
                var machine = EnrollmentMachine(definition: definition, contact: record.contact, state: record.state)
                // Invariant 3: the suppression list is checked when a step executes, not only at claim.
                let outcome = suppressed ? machine.optOut(now: now) : machine.due(now: now)
                guard case .accepted(let actions) = outcome else { continue }
                for action in actions {
                    switch action {
                    case .createDelivery(let request):
                        outbox.add(request, record: record, definition: definition, installationID: installationID)
                    case .cancelPendingDeliveries:
                        cancelFor.append(record.id)
                    case .recordSend, .recordReply, .resetFailedDelivery, .stopCompanyEnrollments:
                        break  // never produced by `due` or `optOut`
                    }
                }
                if suppressed {
                    optedOut.append((record.id, machine.state))
                } else {
                    advanced.append((record.id, machine.state))
                }
                switch machine.state.status {
                case .completed: summary.completed += 1
                case .failed: summary.failed += 1
                case .optedOut: summary.optedOut += 1
                case .active, .paused, .replied, .bounced, .stopped: break
                }
            }
            summary.deliveriesCreated = try outbox.insert(connection)
            try EnrollmentWriter.write(connection, states: advanced, event: "due", actor: actor)
            try EnrollmentWriter.write(
                connection, states: optedOut, event: "opt_out", actor: actor, reason: "the address is suppressed")
            try DeliveryOutbox.cancelPending(connection, enrollmentIDs: cancelFor)
            return summary
        }
    }
}
