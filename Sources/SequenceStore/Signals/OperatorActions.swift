import Foundation
import Postgres
import SequenceEngine

/// An operator's (or an API client's) request about chosen enrollments.
public enum OperatorEvent: Sendable, Equatable {
    case pause(until: Date?)
    case resume
    case stop
    case retry
    case reply
    case optOut
    case bounce

    /// opt-out and bounce act on the global suppression list, not on chosen enrollments.
    public var isGlobal: Bool { self == .optOut || self == .bounce }

    /// Commands that stop mail return only after sends already in flight have settled (invariant 3).
    public var waitsForInFlightSends: Bool {
        switch self {
        case .pause, .stop, .reply, .optOut, .bounce: true
        case .resume, .retry: false
        }
    }

    var machineEvent: EnrollmentEvent {
        switch self {
        case .pause(let until): .pause(resumeAt: until)
        case .resume: .resume
        case .stop: .stop
        case .retry: .retry
        case .reply: .reply
        case .optOut: .optOut
        case .bounce: .bounce
        }
    }

    var signalKind: String {
        switch self {
        case .pause: "pause"
        case .resume: "resume"
        case .stop: "stop"
        case .retry: "retry"
        case .reply: "reply"
        case .optOut: "opt_out"
        case .bounce: "bounce"
        }
    }
}

/// Which enrollments a request names.
public enum OperatorTarget: Sendable {
    /// Each address; with a sequence, the contact's enrollment in it, otherwise every live one.
    case contacts([String], sequence: String?)
    case enrollment(Int64)
}

/// What happened for one address (or one enrollment id).
public struct OperatorOutcome: Sendable {
    /// The address or `enrollment N` as the operator named it.
    public let subject: String
    public let contactFound: Bool
    /// For opt-out and bounce: the address is (now) on the suppression list.
    public let suppressed: Bool
    public let results: [EventResult]
    /// Statuses of the contact's enrollments when none was live (to explain "nothing to do").
    public let finishedStatuses: [String]
    /// For a reply when no enrollment was live: emails of completed enrollments the reply was
    /// credited to (`CompletedReplies`), 0 or 1.
    public var repliesCredited = 0
}

/// Applies operator requests through the state machine in one transaction per request, records
/// each as a signal, and can wait until the contacts' sends in flight have settled.
public final class OperatorActions {
    private let actor: String
    private let installationID: String
    private let source: String
    private let cache = DefinitionCache()

    /// - Parameters:
    ///   - actor: recorded in the audit trail, e.g. `cli:alice`.
    ///   - source: recorded on the signal row: `cli`, `http`, `inbound`.
    public init(actor: String, source: String, installationID: String) {
        self.actor = actor
        self.source = source
        self.installationID = installationID
    }

    public func apply(
        _ event: OperatorEvent, to target: OperatorTarget, reason: String? = nil, using connection: Connection
    ) throws -> [OperatorOutcome] {
        // Stopping mail locks enrollments, then their deliveries; a sender settling locks them the
        // other way round, so the server may pick this transaction to break a deadlock.
        try connection.transaction(retryingConflicts: 5) { try applyInTransaction(event, to: target, reason: reason, using: $0) }
    }

    /// `apply` inside the caller's transaction, so several requests (one inbound message acting
    /// on several enrollments) commit together or not at all.
    func applyInTransaction(
        _ event: OperatorEvent, to target: OperatorTarget, reason: String?, using connection: Connection
    ) throws -> [OperatorOutcome] {
        var outcomes = [OperatorOutcome]()
        switch target {
        case .enrollment(let id):
            let rows = try connection.query(
                "SELECT e.contact_id, c.email FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id WHERE e.id = $1",
                [id])
            guard rows.count == 1 else { throw StoreError(.notFound, "no enrollment with id \(id)") }
            let contactID = try rows[0].decode("contact_id", as: Int64.self)
            if event.isGlobal {
                outcomes.append(
                    try suppress(event, address: try rows[0].decode("email"), contactID: contactID, subject: "enrollment \(id)", reason: reason, connection))
            } else {
                let results = try EnrollmentEvents.apply(
                    event.machineEvent, to: [id], using: connection, cache: cache, actor: actor, reason: reason,
                    installationID: installationID)
                try recordSignal(event, contactID: contactID, enrollmentIDs: [id], reason: reason, connection)
                outcomes.append(
                    OperatorOutcome(subject: "enrollment \(id)", contactFound: true, suppressed: false, results: results, finishedStatuses: []))
            }
        case .contacts(let addresses, let sequence):
            var sequenceID: Int64?
            if let sequence {
                let rows = try connection.query("SELECT id FROM seqd.sequences WHERE name = $1", [sequence])
                guard rows.count == 1 else { throw StoreError(.notFound, "no sequence named '\(sequence)'") }
                sequenceID = try rows[0].decode("id")
            }
            if addresses.count > 1 {
                // Every enrollment these requests may change, locked up front in id order, as a
                // sender settling a batch locks them: taken address by address, two addresses
                // whose enrollments one settle holds in the other order would deadlock.
                try connection.query(
                    """
                    SELECT e.id FROM seqd.enrollments e JOIN seqd.contacts c ON c.id = e.contact_id
                    WHERE lower(c.email) = ANY(SELECT lower(a) FROM unnest($1::text[]) AS a)
                      AND ($2::bigint IS NULL OR e.sequence_id = $2)
                    ORDER BY e.id
                    FOR UPDATE OF e
                    """, [addresses, sequenceID])
            }
            for address in addresses {
                outcomes.append(try apply(event, address: address, sequenceID: sequenceID, reason: reason, connection))
            }
        }
        if event == .resume || event == .retry {
            try connection.query("SELECT pg_notify('seqd_wakeup', '')")
        }
        return outcomes
    }

    private func apply(
        _ event: OperatorEvent, address: String, sequenceID: Int64?, reason: String?, _ connection: Connection
    ) throws -> OperatorOutcome {
        let contact = try connection.query("SELECT id FROM seqd.contacts WHERE lower(email) = lower($1)", [address])
        let contactID = contact.count == 1 ? try contact[0].decode("id", as: Int64.self) : nil
        if event.isGlobal {
            return try suppress(event, address: address, contactID: contactID, subject: address, reason: reason, connection)
        }
        guard let contactID else {
            return OperatorOutcome(subject: address, contactFound: false, suppressed: false, results: [], finishedStatuses: [])
        }
        // With a sequence: the live enrollment there, else the latest one (so the machine can say
        // why it refuses). Without: every live enrollment.
        let enrollments = try connection.query(
            """
            SELECT id, status::text AS status FROM seqd.enrollments
            WHERE contact_id = $1 AND ($2::bigint IS NULL OR sequence_id = $2)
            ORDER BY (status IN ('active', 'paused', 'failed')) DESC, id DESC
            """, [contactID, sequenceID]
        ).rows.map { (id: try $0.decode("id", as: Int64.self), status: try $0.decode("status", as: String.self)) }
        let live = enrollments.filter { ["active", "paused", "failed"].contains($0.status) }
        let chosen = sequenceID != nil ? Array(enrollments.prefix(1)) : live
        let results = try EnrollmentEvents.apply(
            event.machineEvent, to: chosen.map(\.id), using: connection, cache: cache, actor: actor, reason: reason,
            installationID: installationID)
        try recordSignal(event, contactID: contactID, enrollmentIDs: chosen.map(\.id), reason: reason, connection)
        var outcome = OperatorOutcome(
            subject: address, contactFound: true, suppressed: false, results: results,
            finishedStatuses: chosen.isEmpty ? enrollments.map(\.status) : [])
        if event == .reply, results.allSatisfy({ $0.refusal != nil }) {
            let completed = (sequenceID != nil ? Array(enrollments.prefix(1)) : enrollments).filter { $0.status == "completed" }
            outcome.repliesCredited = try CompletedReplies.credit(connection, enrollmentIDs: completed.map(\.id), latestOnly: true)
        }
        return outcome
    }

    private func suppress(
        _ event: OperatorEvent, address: String, contactID: Int64?, subject: String, reason: String?, _ connection: Connection
    ) throws -> OperatorOutcome {
        let results = try Suppressions.add(
            connection, address: address, reason: event == .bounce ? .bounce : .optOut, source: source, actor: actor,
            detail: reason, cache: cache, installationID: installationID)
        try recordSignal(event, contactID: contactID, enrollmentIDs: results.map(\.enrollmentID), reason: reason, connection)
        return OperatorOutcome(subject: subject, contactFound: contactID != nil, suppressed: true, results: results, finishedStatuses: [])
    }

    private func recordSignal(
        _ event: OperatorEvent, contactID: Int64?, enrollmentIDs: [Int64], reason: String?, _ connection: Connection
    ) throws {
        let detail = reason.map { "{\"reason\": \(jsonString($0))}" }
        if enrollmentIDs.isEmpty {
            try connection.query(
                "INSERT INTO seqd.signals (kind, source, contact_id, detail) VALUES ($1, $2, $3, $4::jsonb)",
                [event.signalKind, source, contactID, detail])
        } else {
            try connection.query(
                """
                INSERT INTO seqd.signals (kind, source, contact_id, enrollment_id, detail)
                SELECT $1, $2, $3, unnest($4::bigint[]), $5::jsonb
                """, [event.signalKind, source, contactID, enrollmentIDs, detail])
        }
    }

    /// Whether a delivery to one of `addresses` or of one of `enrollmentIDs` is being sent now
    /// (leased and not expired; after a lease expires no confirmation can land). One short query,
    /// for callers that wait without holding a connection between checks (`InFlightWaiter`).
    public static func sendsInFlight(contacts addresses: [String], enrollmentIDs: [Int64], using connection: Connection) throws -> Bool {
        try connection.query(
            """
            SELECT EXISTS (
                SELECT 1 FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id
                WHERE d.status = 'sending' AND d.lease_expires_at > now()
                  AND (lower(c.email) = ANY(SELECT lower(a) FROM unnest($1::text[]) AS a) OR d.enrollment_id = ANY($2::bigint[]))
            ) AS busy
            """, [addresses, enrollmentIDs])[0].decode("busy", as: Bool.self)
    }
}

/// A JSON string literal for `text` (the only JSON the signals table needs from us).
func jsonString(_ text: String) -> String {
    let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
    return String(decoding: data, as: UTF8.self)
}
