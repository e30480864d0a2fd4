import Foundation
import Postgres
import SequenceEngine

/// One delivery as `seqd deliveries list` shows it.
public struct DeliveryListing: Sendable, Codable {
    public let id: Int64
    public let enrollmentID: Int64
    public let sequence: String
    public let stepKey: String
    public let status: String
    public let attempts: Int
    public let nextAttemptAt: Date?
    public let leaseExpiresAt: Date?
    public let sentAt: Date?
    public let lastError: String?
}

/// What the operator wants done with the enrollment after cancelling its delivery.
public enum AfterCancel: String, Sendable, CaseIterable {
    /// End the enrollment (status stopped).
    case stop
    /// Move past the step as if it were done, without recording a send.
    case skip
}

/// Operator actions on single deliveries: list, release a held `unknown`, cancel. Each goes through
/// the delivery state machine and, for cancel, the enrollment's.
public final class DeliveryAdmin {
    private let actor: String
    private let installationID: String
    private let policy: DeliveryPolicy
    private let cache = DefinitionCache()

    public init(actor: String, installationID: String, policy: DeliveryPolicy) {
        self.actor = actor
        self.installationID = installationID
        self.policy = policy
    }

    public static func list(_ connection: Connection, status: String?, limit: Int) throws -> [DeliveryListing] {
        try SchemaCheck.requireSupported(connection)
        if let status, DeliveryStatus(rawValue: status) == nil {
            throw StoreError(
                .badInput, "'\(status)' is not a delivery status (\(DeliveryStatus.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return try connection.query(
            select + "WHERE $1::text IS NULL OR d.status::text = $1 ORDER BY d.id DESC LIMIT $2", [status, limit]
        ).rows.map(listing)
    }

    /// Releases a held `unknown` delivery: pending now, attempts kept, same key and Message-ID.
    public func release(_ connection: Connection, id: Int64) throws -> DeliveryListing {
        try connection.transaction { connection in
            let (state, now) = try lock(connection, id)
            var machine = DeliveryMachine(policy: policy, state: state)
            if case .rejected(let refusal) = machine.release(now: now) {
                throw StoreError(.refused, "delivery \(id): \(refusal)")
            }
            try DeliveryRecord.write(connection, states: [(id, machine.state)])
            try connection.query("SELECT pg_notify('seqd_wakeup', '')")
            return try Self.find(connection, id)
        }
    }

    /// Cancels a delivery that is not being sent, then stops the enrollment or skips the step.
    public func cancel(_ connection: Connection, id: Int64, then after: AfterCancel, reason: String?) throws
        -> (delivery: DeliveryListing, enrollment: EventResult?)
    {
        try connection.transaction { connection in
            let (state, now) = try lock(connection, id)
            var machine = DeliveryMachine(policy: policy, state: state)
            if case .rejected(let refusal) = machine.cancel(now: now) {
                throw StoreError(.refused, "delivery \(id): \(refusal)")
            }
            try DeliveryRecord.write(connection, states: [(id, machine.state)])
            let enrollmentID = try connection.query("SELECT enrollment_id FROM seqd.deliveries WHERE id = $1", [id])[0]
                .decode("enrollment_id", as: Int64.self)
            let results = try EnrollmentEvents.apply(
                after == .stop ? .stop : .skipStep, to: [enrollmentID], using: connection, cache: cache, actor: actor,
                reason: reason ?? "delivery \(id) cancelled", installationID: installationID)
            if let refusal = results.first?.refusal {
                throw StoreError(.refused, "delivery \(id) cannot be cancelled with --then \(after.rawValue): \(refusal)")
            }
            try connection.query("SELECT pg_notify('seqd_wakeup', '')")
            return (try Self.find(connection, id), results.first)
        }
    }

    private func lock(_ connection: Connection, _ id: Int64) throws -> (DeliveryState, Date) {
        let rows = try connection.query(
            "SELECT \(DeliveryRecord.stateColumns), now() AS now FROM seqd.deliveries d WHERE d.id = $1 FOR UPDATE", [id])
        guard rows.count == 1 else { throw StoreError(.notFound, "no delivery with id \(id)") }
        return (try DeliveryRecord.state(rows[0]), try rows[0].decode("now"))
    }

    private static func find(_ connection: Connection, _ id: Int64) throws -> DeliveryListing {
        try listing(connection.query(select + "WHERE d.id = $1", [id])[0])
    }

    private static let select = """
            SELECT d.id, d.enrollment_id, s.name AS sequence, d.step_key, d.status::text AS status, d.attempts,
                   CASE WHEN d.status IN ('pending', 'unknown') THEN d.next_attempt_at END AS next_attempt_at,
                   d.lease_expires_at, d.sent_at, d.last_error
            FROM seqd.deliveries d
            JOIN seqd.enrollments e ON e.id = d.enrollment_id JOIN seqd.sequences s ON s.id = e.sequence_id
        """ + "\n"

    private static func listing(_ row: Row) throws -> DeliveryListing {
        DeliveryListing(
            id: try row.decode("id"), enrollmentID: try row.decode("enrollment_id"), sequence: try row.decode("sequence"),
            stepKey: try row.decode("step_key"), status: try row.decode("status"), attempts: try row.decode("attempts"),
            nextAttemptAt: try row.decode("next_attempt_at", as: Date?.self),
            leaseExpiresAt: try row.decode("lease_expires_at", as: Date?.self),
            sentAt: try row.decode("sent_at", as: Date?.self), lastError: try row.decode("last_error", as: String?.self))
    }
}
