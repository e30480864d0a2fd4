import Foundation
import Postgres
import SequenceEngine

/// The result of applying one event to one enrollment.
public struct EventResult: Sendable {
    public let enrollmentID: Int64
    public let sequenceName: String
    /// The status before the event.
    public let from: EnrollmentStatus
    /// nil when the machine refused the event.
    public let to: EnrollmentStatus?
    /// The machine's reason for refusing, when it did.
    public let refusal: InvalidTransition?
    /// For a reply under `stop_company_on_reply`: the colleagues' enrollments it stopped.
    public var companyStops: [EventResult] = []
}

/// Applies an event to chosen enrollments through the state machine, in the caller's transaction:
/// the rows are locked, each machine decides, the new states are written set-based and the
/// machine's actions performed. The daemon (delivered, failed), the CLI and the API all use it.
enum EnrollmentEvents {
    /// Locks the enrollments in id order (concurrent callers never deadlock) with what their
    /// machines need. Prepared: the daemon runs it for every settled batch.
    static let lock = PreparedStatement(
        name: "enrollments_lock_for_event",
        sql: """
            SELECT \(EnrollmentRecord.columns), s.name AS sequence_name, now() AS now
            FROM seqd.enrollments e
            JOIN seqd.contacts c ON c.id = e.contact_id
            JOIN seqd.sequences s ON s.id = e.sequence_id
            WHERE e.id = ANY($1::bigint[])
            ORDER BY e.id
            FOR UPDATE OF e
            """)

    static func apply(
        _ event: EnrollmentEvent, to enrollmentIDs: [Int64], using connection: Connection, cache: DefinitionCache,
        actor: String, reason: String? = nil, installationID: String
    ) throws -> [EventResult] {
        guard !enrollmentIDs.isEmpty else { return [] }
        let rows = try connection.query(lock, [enrollmentIDs])
        guard rows.count > 0 else { return [] }
        let now = try rows[0].decode("now", as: Date.self)
        var changed = [(id: Int64, state: EnrollmentState)]()
        var results = [EventResult]()
        var outbox = OutboxRows()
        var cancelFor = [Int64]()
        var resets = [(enrollmentID: Int64, stepKey: String)]()
        var deferrals = [(enrollmentID: Int64, deferral: Deferral)]()
        var companyStops = [(result: Int, record: EnrollmentRecord, domain: String)]()
        for row in rows.rows {
            let record = try EnrollmentRecord(row: row)
            let definition = try cache.definition(
                sequenceID: record.sequenceID, version: record.sequenceVersion, using: connection)
            var machine = EnrollmentMachine(definition: definition, contact: record.contact, state: record.state, stepData: record.stepData,
            enrollmentID: record.id)
            let sequenceName = try row.decode("sequence_name", as: String.self)
            switch machine.handle(event, now: now) {
            case .rejected(let refusal):
                results.append(
                    EventResult(
                        enrollmentID: record.id, sequenceName: sequenceName, from: record.state.status, to: nil,
                        refusal: refusal))
                continue
            case .accepted(let actions):
                for action in actions {
                    switch action {
                    case .createDelivery(let request):
                        outbox.add(request, record: record, definition: definition, installationID: installationID)
                    case .cancelPendingDeliveries:
                        cancelFor.append(record.id)
                    case .resetFailedDelivery(let stepKey):
                        resets.append((record.id, stepKey))
                    case .recordSend, .recordReply:
                        break  // the attempt row and the signal row are written by the caller
                    case .stopCompanyEnrollments:
                        if let domain = FreeMailDomains.companyDomain(ofAddress: record.contact.email) {
                            companyStops.append((results.count, record, domain))
                        }
                    case .deferred(let deferral):
                        deferrals.append((record.id, deferral))
                    }
                }
            }
            if machine.state != record.state { changed.append((record.id, machine.state)) }
            results.append(
                EventResult(
                    enrollmentID: record.id, sequenceName: sequenceName, from: record.state.status,
                    to: machine.state.status, refusal: nil))
        }
        _ = try outbox.insert(connection, now: now)
        try EnrollmentWriter.write(connection, states: changed, event: event.name, actor: actor, reason: reason)
        try DeliveryOutbox.cancelPending(connection, enrollmentIDs: cancelFor)
        for reset in resets {
            try DeliveryOutbox.resetFailed(connection, enrollmentID: reset.enrollmentID, stepKey: reset.stepKey)
        }
        try DeferralLog.write(connection, deferrals, actor: actor)
        for stop in companyStops {
            results[stop.result].companyStops = try stopColleagues(
                of: stop.record, domain: stop.domain, using: connection, cache: cache, actor: actor, installationID: installationID)
        }
        return results
    }

    /// `stop_company_on_reply`: stops the live enrollments in the same sequence of the other
    /// contacts whose address has the replying contact's domain (the caller has ruled out free
    /// mail). They go through the machine's `stop` like an operator's, by the same actor, with a
    /// reason naming the reply (ids, never addresses: reasons end up in logs and exports).
    private static func stopColleagues(
        of record: EnrollmentRecord, domain: String, using connection: Connection, cache: DefinitionCache, actor: String,
        installationID: String
    ) throws -> [EventResult] {
        let colleagues = try connection.query(
            """
            SELECT e.id FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id
            WHERE e.sequence_id = $1 AND e.status IN ('active', 'paused', 'failed') AND e.contact_id <> $2
              AND lower(split_part(c.email, '@', 2)) = $3
            ORDER BY e.id
            """, [record.sequenceID, record.contactID, domain]
        ).rows.map { try $0.decode("id", as: Int64.self) }
        return try apply(
            .stop, to: colleagues, using: connection, cache: cache, actor: actor,
            reason: "stop_company_on_reply: contact \(record.contactID) replied (enrollment \(record.id))",
            installationID: installationID)
    }
}
