import Foundation
import Postgres
import SequenceEngine

/// What one advance transaction did.
public struct AdvanceSummary: Sendable {
    /// Enrollments claimed (0 means nothing was due).
    public var claimed = 0
    public var deliveriesCreated = 0
    public var completed = 0
    public var failed = 0
    public var optedOut = 0
    /// Ended `converted`: a goal (`exit_when`) was met before the step ran.
    public var converted = 0
    /// Emails moved later: outside their window, on a skip date, or over the sender's daily limit.
    public var deferred = 0
    /// The deliveries written already leased to the caller's senders (`DirectLease`), committed.
    public var leased = [ClaimedDelivery]()
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
    /// Slots left on each sender's day after this advancer's last reservation: where it was short
    /// of what a batch wants, the batch reserves before writing instead of after.
    private var roomLeft = [SenderLimits.Demand: Int]()

    public init(actor: String, installationID: String) {
        self.actor = actor
        self.installationID = installationID
    }

    /// Claims due active enrollments, oldest due first. MATERIALIZED keeps the LIMIT and the lock
    /// together (a plain `IN (SELECT …)` can be re-evaluated and lock more than `limit` rows); the
    /// due condition uses the database clock. Enrollments of a paused sequence are held in place.
    static let claim = PreparedStatement(name: "advance_claim", sql: claimSQL)

    /// The claim's SQL text, public so a test can check its plan with EXPLAIN.
    public static let claimSQL = """
            WITH due AS MATERIALIZED (
                SELECT e.id FROM seqd.enrollments e
                WHERE e.status = 'active' AND e.next_run_at <= now()
                  -- A correlated subquery, not an anti-join, so the plan always walks the due index
                  -- in order and stops at the LIMIT (see DeliveryOutbox.claimSQL).
                  AND (SELECT s.paused_at IS NULL FROM seqd.sequences s WHERE s.id = e.sequence_id)
                ORDER BY e.next_run_at
                LIMIT $1
                FOR UPDATE OF e SKIP LOCKED
            )
            SELECT \(EnrollmentRecord.columns), now() AS now,
                   \(Suppressions.isSuppressed("c.email")) AS suppressed,
                   -- `seqd sending pause`: nothing is written leased while sending is off.
                   EXISTS (SELECT 1 FROM seqd.settings x WHERE x.name = 'sending.paused' AND x.value = 'true')
                       AS sending_paused
            FROM due JOIN seqd.enrollments e ON e.id = due.id JOIN seqd.contacts c ON c.id = e.contact_id
            """

    /// Runs one advance transaction. If one of its statements fails, the same claim is redone with
    /// each enrollment under its own savepoint, so the enrollment at fault fails alone (with its
    /// error recorded) and never blocks the batch. A cancel (shutdown), deadlock or lost
    /// connection is not the data's fault: it is thrown, so shutdown is not delayed by a redo.
    ///
    /// With `lease`, as many of the emails it writes as `lease.room` has room for are leased to the
    /// caller's senders in the same transaction (`AdvanceSummary.leased`); the caller must send or
    /// give back each. On return exactly `leased.count` places stay reserved, for the caller to
    /// fill; on a throw none do.
    public func advanceBatch(_ connection: Connection, limit: Int, lease: DirectLease? = nil) throws -> AdvanceSummary {
        var reserved = 0
        do {
            let summary = try connection.transaction { try advance($0, limit: limit, lease: lease, reserved: &reserved) }
            // Room asked for rows that were not written leased (an existing row kept) goes back.
            lease?.room.release(reserved - summary.leased.count)
            return summary
        } catch let error as PostgresError where error.isAboutTheData {
            lease?.room.release(reserved)
            reserved = 0
            // The redo keeps it simple: nothing leased, every delivery waits for a sender's claim.
            return try connection.transaction { try advance($0, limit: limit, lease: nil, isolating: true, reserved: &reserved) }
        } catch {
            lease?.room.release(reserved)
            throw error
        }
    }

    /// A `DirectLease` with the room its batch got.
    private struct Grant {
        let lease: DirectLease
        let limit: Int
    }

    private struct AuditKey: Hashable {
        let event: String
        let reason: String?
    }

    /// What the machine decided for one claimed enrollment.
    private struct Plan {
        let record: EnrollmentRecord
        let state: EnrollmentState
        let event: String
        let reason: String?
        var outbox = OutboxRows()
        var cancelsDeliveries = false
        var deferrals = [Deferral]()
        /// Set when the plan queues an email whose sender has a daily limit.
        var senderSlot: SenderLimits.Demand?
        /// Events the contact sent since enrolling, for goals; kept for a re-plan.
        var goalEvents = Set<String>()
    }

    private func advance(
        _ connection: Connection, limit: Int, lease: DirectLease?, isolating: Bool = false, reserved: inout Int
    ) throws -> AdvanceSummary {
        let rows = try connection.query(Self.claim, [limit])
        var summary = AdvanceSummary()
        summary.claimed = rows.count
        guard rows.count > 0 else { return summary }
        let now = try rows[0].decode("now", as: Date.self)
        let lease = try rows[0].decode("sending_paused", as: Bool.self) ? nil : lease
        var plans = [Plan]()
        let records = try rows.rows.map { (record: try EnrollmentRecord(row: $0), suppressed: try $0.decode("suppressed", as: Bool.self)) }
        let goalEvents = try Goals.eventsSinceEnrollment(connection, records.map(\.record), cache: cache)
        for (record, suppressed) in records {
            plans.append(plan(record, suppressed: suppressed, goalEvents: goalEvents[record.id] ?? [], now: now, connection))
        }
        if let lease { reserved = lease.room.reserve(upTo: plans.reduce(0) { $0 + $1.outbox.leasable }) }
        let grant = lease.flatMap { reserved > 0 ? Grant(lease: $0, limit: reserved) : nil }
        if isolating {
            try reserveSenderSlots(&plans, now: now, connection)
            for (index, plan) in plans.enumerated() {
                try connection.execute("SAVEPOINT advance_one")
                do {
                    summary.deliveriesCreated += try write([plan], lease: nil, now: now, connection).created
                    try connection.execute("RELEASE SAVEPOINT advance_one")
                } catch let error as PostgresError where error.isAboutTheData {
                    try connection.execute("ROLLBACK TO SAVEPOINT advance_one")
                    plans[index] = failed(plan.record, because: "advancing failed: \(error.message)")
                    _ = try write([plans[index]], lease: nil, now: now, connection)
                }
            }
        } else if !plans.contains(where: { $0.senderSlot != nil }) {
            (summary.deliveriesCreated, summary.leased) = try write(plans, lease: grant, now: now, connection)
        } else if !roomWasLeft(for: plans) {
            try reserveSenderSlots(&plans, now: now, connection)
            (summary.deliveriesCreated, summary.leased) = try write(plans, lease: grant, now: now, connection)
        } else {
            // The counter row of a sender limit stays locked from its reservation to the commit,
            // and every batch of that sender needs it: reserved after the writes, it is held for
            // the commit alone, and batches write side by side (held for the writes too, it cost
            // about 15% of the email rate). When a slot is refused, which only happens near the
            // limit, the writes are undone and redone with the refused emails deferred; once a
            // day is seen short, its batches reserve first (`roomWasLeft`).
            try connection.execute("SAVEPOINT before_writes")
            let written = try write(plans, lease: grant, now: now, connection)
            var withSlots = plans
            if try reserveSenderSlots(&withSlots, now: now, connection) {
                (summary.deliveriesCreated, summary.leased) = written
            } else {
                try connection.execute("ROLLBACK TO SAVEPOINT before_writes")
                try reserveSenderSlots(&plans, now: now, connection)
                (summary.deliveriesCreated, summary.leased) = try write(plans, lease: grant, now: now, connection)
            }
        }
        for plan in plans {
            switch plan.state.status {
            case .completed: summary.completed += 1
            case .failed: summary.failed += 1
            case .optedOut: summary.optedOut += 1
            case .converted: summary.converted += 1
            case .active, .paused, .replied, .bounced, .stopped: break
            }
            summary.deferred += plan.deferrals.count
        }
        return summary
    }

    /// Runs the state machine for one enrollment: `due`, or `optOut` when the address is
    /// suppressed (invariant 3: the suppression list is checked when a step executes, too), or
    /// `goalMet` when the contact meets a goal of the sequence: checked before every step, so a
    /// goal met since the last step (by a change made in psql, say) sends nothing more.
    private func plan(
        _ record: EnrollmentRecord, suppressed: Bool, goalEvents: Set<String>, now: Date, senderLimitReached: Bool = false,
        _ connection: Connection
    ) -> Plan {
        let definition: SequenceDefinition
        do {
            definition = try cache.definition(sequenceID: record.sequenceID, version: record.sequenceVersion, using: connection)
        } catch {
            return failed(record, because: "sequence version \(record.sequenceVersion) cannot be read: \(error)")
        }
        var machine = EnrollmentMachine(definition: definition, contact: record.contact, state: record.state, stepData: record.stepData,
            enrollmentID: record.id)
        let outcome: EnrollmentOutcome
        let event: String
        let reason: String?
        if suppressed {
            (outcome, event, reason) = (machine.optOut(now: now), "opt_out", "the address is suppressed")
        } else if let goal = definition.metGoal(by: record.contact, stepData: record.stepData, eventsSinceEnrollment: goalEvents) {
            let description = definition.goalDescription(at: goal)
            (outcome, event, reason) = (machine.handle(.goalMet(goal: description), now: now), "goal_met", description)
        } else {
            (outcome, event, reason) = (machine.due(now: now, senderLimitReached: senderLimitReached), "due", nil)
        }
        var plan = Plan(record: record, state: machine.state, event: event, reason: reason)
        plan.goalEvents = goalEvents
        guard case .accepted(let actions) = outcome else { return plan }
        for action in actions {
            switch action {
            case .createDelivery(let request):
                plan.outbox.add(request, record: record, definition: definition, installationID: installationID)
                if case .email = request.payload, let limit = definition.sender.dailyLimit {
                    plan.senderSlot = SenderLimits.Demand(
                        sender: definition.sender.address.lowercased(), day: definition.senderLimitDay(at: now), limit: limit)
                }
            case .cancelPendingDeliveries:
                plan.cancelsDeliveries = true
            case .deferred(let deferral):
                plan.deferrals.append(deferral)
            case .recordSend, .recordReply, .resetFailedDelivery, .stopCompanyEnrollments:
                break  // never produced by `due` or `optOut`
            }
        }
        return plan
    }

    /// Reserves the daily-limit slots the batch's emails need, one statement per sender (in a
    /// fixed order, so two batches never wait on each other's counters in a cycle). Oldest due
    /// first get the slots; the others are planned again with the limit reached, which the
    /// machine turns into a deferral to the sender's next day. Returns whether every email got one.
    @discardableResult
    private func reserveSenderSlots(_ plans: inout [Plan], now: Date, _ connection: Connection) throws -> Bool {
        var grantedAll = true
        let wanting = Dictionary(grouping: plans.indices.filter { plans[$0].senderSlot != nil }) { plans[$0].senderSlot! }
        for demand in wanting.keys.sorted() {
            let indices = wanting[demand]!.sorted {
                (plans[$0].record.state.nextRunAt ?? .distantPast) < (plans[$1].record.state.nextRunAt ?? .distantPast)
            }
            let (granted, left) = try SenderLimits.reserve(connection, demand, count: indices.count)
            if roomLeft.count > 1_000 { roomLeft = [:] }  // old days; one entry per sender and day
            roomLeft[demand] = left
            if granted < indices.count { grantedAll = false }
            for index in indices.dropFirst(granted) {
                plans[index] = plan(
                    plans[index].record, suppressed: false, goalEvents: plans[index].goalEvents, now: now, senderLimitReached: true,
                    connection)
            }
        }
        return grantedAll
    }

    /// Whether every sender the batch needs slots of had at least that many left when this
    /// advancer last reserved (or has not been asked yet): the case for writing first.
    private func roomWasLeft(for plans: [Plan]) -> Bool {
        let wanted = Dictionary(plans.compactMap { $0.senderSlot.map { ($0, 1) } }, uniquingKeysWith: +)
        return wanted.allSatisfy { demand, count in roomLeft[demand].map { $0 >= count } ?? true }
    }

    /// The driver's own failure path, for errors outside the machine's reach (an unreadable
    /// definition, a statement the database refused): the step could not run, so the enrollment
    /// fails where it stands; `retry` runs the step again.
    private func failed(_ record: EnrollmentRecord, because reason: String) -> Plan {
        var state = record.state
        state.status = .failed
        state.lastError = reason
        return Plan(record: record, state: state, event: "advance_error", reason: reason)
    }

    /// Writes plans set-based: one insert for all deliveries, one update per event name.
    private func write(
        _ plans: [Plan], lease: Grant?, now: Date, _ connection: Connection
    ) throws -> (created: Int, leased: [ClaimedDelivery]) {
        var outbox = OutboxRows()
        for plan in plans { outbox.append(plan.outbox) }
        if let lease { outbox.lease(upTo: lease.limit) }
        let inserted = try outbox.insert(connection, lease: lease?.lease, now: now)
        // The audit trigger takes event and reason per statement, so one update per distinct pair
        // (in the common case just `due`).
        let changed = plans.filter { $0.state != $0.record.state }
        for group in Dictionary(grouping: changed, by: { AuditKey(event: $0.event, reason: $0.reason) }).values {
            try EnrollmentWriter.write(
                connection, states: group.map { ($0.record.id, $0.state) }, event: group[0].event, actor: actor,
                reason: group[0].reason)
        }
        try DeliveryOutbox.cancelPending(connection, enrollmentIDs: plans.filter(\.cancelsDeliveries).map(\.record.id))
        try DeferralLog.write(connection, plans.flatMap { plan in plan.deferrals.map { (plan.record.id, $0) } }, actor: actor)
        return inserted
    }
}
