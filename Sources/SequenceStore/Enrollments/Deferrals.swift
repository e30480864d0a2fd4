import Foundation
import Postgres
import SequenceEngine

/// Records the machine's deferrals as `deferred` audit events (design.md §3 invariant 2 asks
/// for every change; a deferral changes neither status nor step, so the audit trigger does not
/// see it and the driver writes the row). One set-based insert per transaction, after the state
/// update, so each row repeats the status and step the enrollment now has and `seqd check`'s
/// replay reads it as a step in place.
enum DeferralLog {
    static let insert = PreparedStatement(
        name: "enrollment_deferrals_insert",
        sql: """
            INSERT INTO seqd.enrollment_events
                (enrollment_id, event, from_status, to_status, from_step, to_step, actor, reason, detail)
            SELECT e.id, 'deferred', e.status, e.status, e.current_step_index, e.current_step_index, $1, u.reason,
                   u.detail::jsonb
            FROM unnest($2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY AS u(id, reason, detail, n)
            JOIN seqd.enrollments e ON e.id = u.id
            ORDER BY u.n
            """)

    /// The `detail` of a deferral row: which step, when it came due, and the new time in UTC and
    /// on the contact's wall clock.
    struct Detail: Encodable {
        let step: String
        let due: String
        let until: String
        let untilLocal: String
        let timeZone: String

        enum CodingKeys: String, CodingKey {
            case step, due, until
            case untilLocal = "until_local"
            case timeZone = "time_zone"
        }

        init(_ deferral: Deferral) {
            let utc = TimeZone(identifier: "UTC")!
            step = deferral.stepKey
            due = WallClock.rfc3339(deferral.due, in: utc)
            until = WallClock.rfc3339(deferral.until, in: utc)
            untilLocal = WallClock.rfc3339(deferral.until, in: deferral.timeZone)
            timeZone = deferral.timeZone.identifier
        }
    }

    static func write(_ connection: Connection, _ deferrals: [(enrollmentID: Int64, deferral: Deferral)], actor: String) throws {
        guard !deferrals.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let details = try deferrals.map { String(decoding: try encoder.encode(Detail($0.deferral)), as: UTF8.self) }
        try connection.query(
            insert, [actor, deferrals.map(\.enrollmentID), deferrals.map(\.deferral.reason.rawValue), details])
    }
}
