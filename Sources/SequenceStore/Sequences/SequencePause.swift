import Foundation
import Postgres

/// What pausing or resuming a whole sequence did.
public struct SequencePauseResult: Sendable, Equatable, Codable {
    public let name: String
    /// When the pause began.
    public let pausedAt: Date
    /// When it ended; nil after `pause`.
    public let resumedAt: Date?
    /// Waiting enrollments whose due time moved forward on resume.
    public let shiftedEnrollments: Int

    enum CodingKeys: String, CodingKey {
        case name
        case pausedAt = "paused_at"
        case resumedAt = "resumed_at"
        case shiftedEnrollments = "shifted_enrollments"
    }
}

/// Holding a whole sequence (`seqd sequence pause|resume`). The advance claim skips enrollments of a
/// paused sequence, so they keep their place without any per-enrollment write; resume then moves
/// their due times forward so that no wait runs out while the sequence was held (invariant 7).
public enum SequencePause {
    /// Marks the sequence paused. Refused when it already is, so the recorded start of the pause
    /// (which resume measures from) is never moved.
    public static func pause(_ connection: Connection, name: String) throws -> SequencePauseResult {
        try SchemaCheck.requireSupported(connection)
        return try connection.transaction { connection in
            let (_, pausedAt) = try lock(connection, name: name)
            if let pausedAt {
                throw StoreError(.refused, "sequence '\(name)' is already paused (since \(pausedAt.formatted(.iso8601)))")
            }
            let row = try connection.query(
                "UPDATE seqd.sequences SET paused_at = now() WHERE name = $1 RETURNING paused_at", [name])[0]
            return SequencePauseResult(
                name: name, pausedAt: try row.decode("paused_at"), resumedAt: nil, shiftedEnrollments: 0)
        }
    }

    /// Clears the pause and shifts the due time of the sequence's waiting active enrollments by the
    /// time they spent held, then wakes running daemons.
    ///
    /// The shift is `now() - greatest(paused_at, updated_at)`: a wait that started during the pause
    /// (a contact enrolled while paused, a send that settled while paused) is held only from its own
    /// start, so an enrollment made during the pause is due at resume, not a whole pause later.
    /// Only `next_run_at` changes, not status or step, so the audit trigger rightly records nothing;
    /// rows awaiting delivery (`next_run_at` NULL) and individually paused ones (which keep a
    /// `remaining_wait`) are untouched.
    public static func resume(_ connection: Connection, name: String) throws -> SequencePauseResult {
        try SchemaCheck.requireSupported(connection)
        return try connection.transaction { connection in
            let (sequenceID, pausedAt) = try lock(connection, name: name)
            guard let pausedAt else { throw StoreError(.refused, "sequence '\(name)' is not paused") }
            let shifted = try connection.query(
                """
                UPDATE seqd.enrollments e
                SET next_run_at = e.next_run_at + (now() - greatest($2::timestamptz, e.updated_at)), updated_at = now()
                WHERE e.sequence_id = $1 AND e.status = 'active' AND e.next_run_at IS NOT NULL
                """, [sequenceID, pausedAt]
            ).affectedRows
            let row = try connection.query(
                "UPDATE seqd.sequences SET paused_at = NULL WHERE id = $1 RETURNING now() AS resumed_at", [sequenceID])[0]
            try connection.query("SELECT pg_notify('seqd_wakeup', '')")
            return SequencePauseResult(
                name: name, pausedAt: pausedAt, resumedAt: try row.decode("resumed_at"), shiftedEnrollments: shifted)
        }
    }

    /// Locks the sequence row against a concurrent pause, resume or apply.
    private static func lock(_ connection: Connection, name: String) throws -> (id: Int64, pausedAt: Date?) {
        guard let row = try connection.query(
            "SELECT id, paused_at FROM seqd.sequences WHERE name = $1 FOR UPDATE", [name]
        ).rows.first else {
            throw StoreError(.notFound, "no sequence named '\(name)'")
        }
        return (try row.decode("id"), try row.decode("paused_at", as: Date?.self))
    }
}
