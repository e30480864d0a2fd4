import Foundation
import Postgres
import SequenceEngine

/// Resumes paused enrollments whose `resume_at` has passed (out-of-office pauses), by the
/// database clock, through the state machine's `resume`.
public final class Resumer {
    private let actor: String
    private let installationID: String
    private let cache = DefinitionCache()

    public init(actor: String, installationID: String) {
        self.actor = actor
        self.installationID = installationID
    }

    /// Resumes up to `limit` enrollments; returns how many resumed.
    public func resumeDue(_ connection: Connection, limit: Int = 500) throws -> Int {
        try connection.transaction { connection in
            let ids = try connection.query(
                """
                SELECT id FROM seqd.enrollments
                WHERE status = 'paused' AND resume_at <= now()
                ORDER BY resume_at LIMIT $1
                FOR UPDATE SKIP LOCKED
                """, [limit]
            ).rows.map { try $0.decode("id", as: Int64.self) }
            let results = try EnrollmentEvents.apply(
                .resume, to: ids, using: connection, cache: cache, actor: actor, reason: "resume_at reached",
                installationID: installationID)
            return results.filter { $0.to == .active }.count
        }
    }
}
