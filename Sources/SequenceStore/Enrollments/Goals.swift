import Foundation
import Postgres
import SequenceEngine

/// A sequence's goals (`exit_when`) in the store: which events an enrollment's contact sent since
/// it was enrolled, and converting the live enrollments that meet a goal. The advance transaction
/// checks before it runs a step (`Advancer`); a contact update and an arriving event check at
/// once (`convertMet`), so a goal met between two steps never lets the next email go out.
enum Goals {
    /// The event names each enrollment's contact sent after it was enrolled, for the records whose
    /// sequence has event goals (no query when none has). The event that enrolled the contact
    /// does not count: it was received in the enrolling transaction, at the same `now()`.
    static func eventsSinceEnrollment(
        _ connection: Connection, _ records: [EnrollmentRecord], cache: DefinitionCache
    ) throws -> [Int64: Set<String>] {
        let wanting = records.filter { record in
            let definition = try? cache.definition(sequenceID: record.sequenceID, version: record.sequenceVersion, using: connection)
            return !(definition?.goalEvents.isEmpty ?? true)
        }
        guard !wanting.isEmpty else { return [:] }
        let rows = try connection.query(
            """
            SELECT DISTINCT e.id, ev.name
            FROM seqd.enrollments e
            JOIN seqd.events ev ON ev.contact_id = e.contact_id AND ev.received_at > e.created_at
                                AND ev.id IS DISTINCT FROM e.trigger_event_id
            WHERE e.id = ANY($1::bigint[])
            """, [wanting.map(\.id)])
        var names = [Int64: Set<String>]()
        for row in rows.rows {
            names[try row.decode("id"), default: []].insert(try row.decode("name"))
        }
        return names
    }

    /// Locks the live enrollments of these contacts whose pinned version has goals, in id order
    /// like every other locker. A version without `exit_when` is never locked: an import that
    /// updates many contacts must not hold every enrollment they have.
    private static let lockLive = """
        SELECT \(EnrollmentRecord.columns)
        FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id
        WHERE e.contact_id = ANY($1::bigint[]) AND e.status IN ('active', 'paused', 'failed')
          AND (SELECT v.definition ? 'exit_when' FROM seqd.sequence_versions v
               WHERE v.sequence_id = e.sequence_id AND v.version = e.sequence_version)
        ORDER BY e.id
        FOR UPDATE OF e
        """

    /// Ends `converted`, in the caller's transaction, every live enrollment of these contacts
    /// that meets a goal of its pinned version now; each is audited (`goal_met`) with the goal
    /// that matched as its reason, and its pending deliveries are cancelled. A delivery already
    /// being sent is not called back: it settles as sent and changes nothing more.
    static func convertMet(
        _ connection: Connection, contactIDs: [Int64], actor: String, cache: DefinitionCache
    ) throws -> [Conversion] {
        guard !contactIDs.isEmpty else { return [] }
        let records = try connection.query(lockLive, [contactIDs]).rows.map(EnrollmentRecord.init(row:))
        var candidates = [(record: EnrollmentRecord, definition: SequenceDefinition)]()
        for record in records {
            let definition = try cache.definition(sequenceID: record.sequenceID, version: record.sequenceVersion, using: connection)
            if !definition.exitWhen.isEmpty { candidates.append((record, definition)) }
        }
        guard !candidates.isEmpty else { return [] }
        let events = try eventsSinceEnrollment(connection, candidates.map(\.record), cache: cache)
        var byGoal = [String: [Int64]]()
        for (record, definition) in candidates {
            guard let goal = definition.metGoal(
                by: record.contact, stepData: record.stepData, eventsSinceEnrollment: events[record.id] ?? [])
            else { continue }
            byGoal[definition.goalDescription(at: goal), default: []].append(record.id)
        }
        var conversions = [Conversion]()
        for (goal, ids) in byGoal.sorted(by: { $0.key < $1.key }) {
            // No delivery is created by a goal, so no installation id is needed for keys.
            let results = try EnrollmentEvents.apply(
                .goalMet(goal: goal), to: ids, using: connection, cache: cache, actor: actor, reason: goal, installationID: "")
            conversions += results.filter { $0.to == .converted }.map {
                Conversion(enrollmentID: $0.enrollmentID, sequence: $0.sequenceName, goal: goal)
            }
        }
        return conversions.sorted { $0.enrollmentID < $1.enrollmentID }
    }
}

/// An enrollment that ended `converted` because its contact met a goal.
public struct Conversion: Sendable, Equatable, Codable {
    public let enrollmentID: Int64
    public let sequence: String
    /// `exit_when[N] <the goal as JSON>`, as recorded in the audit reason.
    public let goal: String

    enum CodingKeys: String, CodingKey {
        case sequence, goal
        case enrollmentID = "enrollment_id"
    }
}
