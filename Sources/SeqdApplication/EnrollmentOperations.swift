import Delivery
import Mail
import SequenceEngine
import SequenceStore

/// A contact named by address or by id.
public enum ContactReference: Sendable {
    case email(String)
    case id(Int64)
}

/// One contact's enrollment attempt, as the API reports it.
public struct SingleEnrollment: Sendable {
    public let summary: EnrollmentSummary
    public let contactID: Int64
    /// The enrollment it made, or the one that made it skip (live first).
    public let latest: (id: Int64, status: String)?
}

/// Enrollment: enroll contacts, and the actions that change enrollments (operator signals,
/// inbound mail), each answering once the sends they stopped have settled.
extension Operations {
    /// Enrolls the selection in one transaction, or (`dryRun`) counts what would happen.
    /// Unknown sequence: `.notFound`.
    public func enroll(
        sequence: String, selection: EnrollmentSelection, allowReenroll: Bool, dryRun: Bool = false
    ) async throws -> EnrollmentSummary {
        let actor = actor.name
        return try await database.run {
            try Enroller.enroll(
                $0, sequence: sequence, selection: selection, allowReenroll: allowReenroll, dryRun: dryRun, actor: actor)
        }
    }

    /// Enrolls one existing contact; nil when no such contact exists.
    public func enroll(
        sequence: String, contact: ContactReference, allowReenroll: Bool
    ) async throws -> SingleEnrollment? {
        let actor = actor.name
        return try await database.run { connection -> SingleEnrollment? in
            let contactID: Int64
            let address: String
            switch contact {
            case .email(let email):
                guard let id = try ContactEnrollments.contactID(connection, email: email) else { return nil }
                (contactID, address) = (id, email)
            case .id(let id):
                guard let email = try ContactEnrollments.address(connection, contactID: id) else { return nil }
                (contactID, address) = (id, email)
            }
            let summary = try Enroller.enroll(
                connection, sequence: sequence, selection: .emails([address]), allowReenroll: allowReenroll, actor: actor)
            return SingleEnrollment(
                summary: summary, contactID: contactID,
                latest: try ContactEnrollments.latest(connection, contactID: contactID, sequence: sequence))
        }
    }

    /// Records an event once per key: upserts its contact, enrolls it into every sequence whose
    /// trigger the event meets, and converts live enrollments whose goal it meets. A key seen
    /// before changes nothing (`duplicate`).
    public func recordEvent(_ event: IncomingEvent) async throws -> EventOutcome {
        let actor = self.actor
        return try await database.run { try EventIntake.record($0, event, source: actor.source, actor: actor.name) }
    }

    /// One enrollment with its history and its contact's id. Unknown: `.notFound`.
    public func enrollment(id: Int64) async throws -> (contactID: Int64, enrollment: Inspection.Enrollment) {
        try await database.run { try Inspection.enrollment($0, id: id) }
    }

    /// A page of enrollments in id order after `cursor`, of `sequence` and in `status` when given.
    public func enrollments(sequence: String?, status: EnrollmentStatus?, after cursor: Int64, limit: Int) async throws -> EnrollmentPage {
        try await database.run { try EnrollmentPage.load($0, sequence: sequence, status: status, after: cursor, limit: limit) }
    }

    /// An operator signal's outcomes and whether the sends it stopped had settled when it answered.
    public struct SignalResult: Sendable {
        public let outcomes: [OperatorOutcome]
        /// False when a send of these contacts was still in flight at the wait's timeout.
        public let inFlightSettled: Bool
    }

    /// Applies `event` (pause, stop, reply, opt-out, …) to `target`. Events that stop mail answer
    /// only after a send already under way has settled (invariant 3), so "stopped" means no
    /// further mail; `waitingForInFlightSends: false` answers at once (a one-click unsubscribe
    /// page, whose click cannot recall a message already on the wire). Unknown enrollment or
    /// sequence: `.notFound`.
    public func signal(
        _ event: OperatorEvent, to target: OperatorTarget, reason: String?, waitingForInFlightSends: Bool = true
    ) async throws -> SignalResult {
        let actor = self.actor
        let outcomes = try await database.run { connection in
            try OperatorActions(
                actor: actor.name, source: actor.source, installationID: try InstallationSettings.load(connection).installationID
            ).apply(event, to: target, reason: reason, using: connection)
        }
        guard event.waitsForInFlightSends, waitingForInFlightSends else { return SignalResult(outcomes: outcomes, inFlightSettled: true) }
        let settled: Bool
        switch target {
        case .contacts(let emails, _): settled = await inFlight.wait(contacts: emails, enrollmentIDs: [])
        case .enrollment(let id): settled = await inFlight.wait(contacts: [], enrollmentIDs: [id])
        }
        return SignalResult(outcomes: outcomes, inFlightSettled: settled)
    }

    /// How inbound mail is trusted: Message-IDs verified with the unsubscribe secret (configured,
    /// else the stored one), and `Authentication-Results` from `authservID` when configured.
    public func inboundTrust(configuredSecret: String?, authservID: String?) async throws -> InboundTrust {
        let secret = try await installation().unsubscribeSecret(configured: configuredSecret)
        let key = MessageID.Key(secret: secret)
        return InboundTrust(verifyReference: { MessageID.verify($0, deliveryKey: $1, key: key) }, trustedAuthservID: authservID)
    }

    /// Inbound mail's result and whether the sends it stopped had settled when it answered.
    public struct InboundOutcome: Sendable {
        public let result: InboundResult
        public let inFlightSettled: Bool
    }

    /// Classifies and applies an inbound message (reply, bounce, out-of-office, unsubscribe).
    /// `parse` runs on the connection's thread: parsing a large message is real work that must not
    /// run on an event loop.
    public func inbound(
        _ parse: @escaping @Sendable () throws -> InboundMessage, trust: InboundTrust, oooResumeAfter: Double
    ) async throws -> InboundOutcome {
        let actor = actor.name
        let result = try await database.run { connection in
            try InboundMail(
                actor: actor, installationID: try InstallationSettings.load(connection).installationID,
                oooResumeAfter: oooResumeAfter, trust: trust
            ).process(try parse(), using: connection)
        }
        guard result.outcome == .applied else { return InboundOutcome(result: result, inFlightSettled: true) }
        let settled = await inFlight.wait(contacts: [], enrollmentIDs: result.enrollments.filter { $0.refused == nil }.map(\.id))
        return InboundOutcome(result: result, inFlightSettled: settled)
    }
}
