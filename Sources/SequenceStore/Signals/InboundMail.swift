import Foundation
import Mail
import Postgres
import SequenceEngine

/// What processing one inbound message did: `seqd inbound` prints it, `POST /v1/inbound` answers
/// with it. Holds no email address (the output of an MTA pipe can end up in logs and bounces).
public struct InboundResult: Sendable, Encodable {
    /// What came of the message.
    public enum Outcome: String, Sendable, Encodable {
        /// At least one enrollment changed, or an address was suppressed.
        case applied
        /// Deliberately not acted on (a delayed-delivery report, a read receipt).
        case ignored
        /// Nothing of seqd's matched: reported, never guessed.
        case unmatched
        /// It matched, but every enrollment it matched refused the event (e.g. already finished).
        case refused
    }

    /// One enrollment the message matched, and what the state machine did with it.
    public struct Enrollment: Sendable, Encodable {
        public let id: Int64
        public let sequence: String
        public let from: String
        /// nil when refused.
        public let to: String?
        /// Why the state machine refused, with the current status.
        public let refused: String?
        /// Why this enrollment changed although the message did not match it:
        /// `stop_company_on_reply` (a colleague at the same company replied).
        public let note: String?
    }

    public let outcome: Outcome
    /// `reply`, `out_of_office`, `bounce`, `ignored`.
    public let classification: String
    /// The auto-reply marker, the failed status codes, or why the message was ignored.
    public let detail: String?
    /// The inbound message's own Message-ID.
    public let messageID: String?
    /// How it matched: `In-Reply-To <id>`, `References <id>`, `Message-ID of the returned
    /// message <id>`, or `sender address and sequence sender`.
    public let matchedBy: String?
    /// The return date an out-of-office message stated, when it stated one clearly.
    public let returnDate: String?
    /// When out-of-office pauses end (database clock).
    public let resumeAt: Date?
    /// Addresses put on the suppression list (bounces); counted, not named.
    public let suppressed: Int
    /// Failed recipients a bounce report listed that are not the recipient of the delivery it
    /// matched: reported (counted) and ignored, since a report proves nothing about them.
    public let ignoredRecipients: Int
    public let enrollments: [Enrollment]
    /// Why nothing was done, for unmatched and refused messages.
    public let note: String?

    enum CodingKeys: String, CodingKey {
        case outcome, classification, detail, enrollments, suppressed, note
        case ignoredRecipients = "ignored_recipients"
        case messageID = "message_id", matchedBy = "matched_by", returnDate = "return_date", resumeAt = "resume_at"
    }

}

/// What inbound mail must prove before it changes anything (design.md, invariant 9).
public struct InboundTrust: Sendable {
    /// Whether `messageID`, a msg-id the message refers to, is the one seqd minted for the delivery
    /// with `deliveryKey`: the MAC in it verifies (`Delivery.MessageID.verify`). Delivery keys are
    /// guessable, so a reference without a valid MAC proves nothing.
    public let verifyReference: @Sendable (_ messageID: String, _ deliveryKey: String) -> Bool
    /// `inbound.authserv_id` when `inbound.trust_from` is on; nil leaves the From fallback off.
    public let trustedAuthservID: String?

    public init(
        verifyReference: @escaping @Sendable (_ messageID: String, _ deliveryKey: String) -> Bool, trustedAuthservID: String?
    ) {
        self.verifyReference = verifyReference
        self.trustedAuthservID = trustedAuthservID
    }
}

/// Applies inbound mail (design.md §7): classifies the message, matches it to enrollments by the
/// Message-IDs it refers to — only those whose MAC verifies — or, when the operator trusts it,
/// by the contact's address and the sequence's sender with authenticated sender evidence, and
/// applies reply, bounce or out-of-office pause through `OperatorActions` (the state machine, the
/// audit trail and a `signals` row with source `inbound`), all in one transaction.
public final class InboundMail {
    private let actions: OperatorActions
    private let oooResumeAfter: TimeInterval
    private let trust: InboundTrust

    /// - Parameters:
    ///   - actor: recorded in the audit trail (`inbound`, `http:inbound`).
    ///   - oooResumeAfter: `inbound.ooo_resume_after`, for auto-replies that state no return date.
    ///   - trust: how references and senders are verified.
    public init(actor: String, installationID: String, oooResumeAfter: TimeInterval, trust: InboundTrust) {
        actions = OperatorActions(actor: actor, source: "inbound", installationID: installationID)
        self.oooResumeAfter = oooResumeAfter
        self.trust = trust
    }

    /// Classifies, matches and applies `message` in one transaction; unmatched and ignored mail
    /// changes nothing.
    public func process(_ message: InboundMessage, using connection: Connection) throws -> InboundResult {
        try SchemaCheck.requireSupported(connection)
        return try connection.transaction(retryingConflicts: 5) { connection in
            let now = try connection.query("SELECT now() AS now")[0].decode("now", as: Date.self)
            let classification = InboundClassifier.classify(message, now: now)
            var result = Draft(classification: classification, messageID: message.messageID)
            switch classification {
            case .ignored(let reason):
                result.outcome = .ignored
                result.detail = reason
                return result.finished
            case .reply:
                break
            case .outOfOffice(let returnDate, let marker):
                result.detail = marker
                result.returnDate = returnDate?.description
            case .bounce(let recipients):
                result.detail = Set(recipients.compactMap(\.status)).sorted().joined(separator: ", ")
            }

            guard let match = try self.match(message, bounce: classification.isBounce, connection) else {
                result.outcome = .unmatched
                result.note = self.unmatchedNote(message, bounce: classification.isBounce)
                return result.finished
            }
            result.matchedBy = match.how
            // A bounce still suppresses the address when its enrollments have all finished.
            guard !match.live.isEmpty || classification.isBounce else {
                result.outcome = .refused
                result.note = "no live enrollment (finished: \(match.finishedStatuses.joined(separator: ", ")))"
                // A message naming our mail is the email it answers; a sender match, the newest.
                if case .reply = classification,
                    try CompletedReplies.credit(connection, enrollmentIDs: match.completed, latestOnly: match.kind == "sender address") > 0
                {
                    result.note! += "; counted as a reply to the completed sequence's last email (seqd report)"
                }
                return result.finished
            }

            switch classification {
            case .ignored:
                break
            case .reply:
                for id in match.live {
                    result.add(try actions.applyInTransaction(.reply, to: .enrollment(id), reason: "inbound reply, matched by \(match.kind)", using: connection))
                }
            case .outOfOffice(let returnDate, let marker):
                let zones = try Self.zones(match.live, connection)
                for id in match.live {
                    let zone = zones[id] ?? (contact: nil, sequence: "UTC")
                    let resumeAt = InboundClassifier.resumeAt(
                        returnDate: returnDate, contactZone: zone.contact, sequenceZone: zone.sequence, now: now,
                        defaultDelay: oooResumeAfter)
                    result.resumeAt = resumeAt
                    result.add(
                        try actions.applyInTransaction(
                            .pause(until: resumeAt), to: .enrollment(id), reason: "inbound auto-reply (\(marker)), matched by \(match.kind)",
                            using: connection))
                }
            case .bounce(let recipients):
                // A report proves at most that the message it returns bounced: only the recipient
                // of the matched delivery is bounced, and only when a Final-Recipient names it.
                // Anyone else it lists is counted and ignored (a forged report could list anyone).
                let named = Self.unique(recipients.compactMap(\.address))
                let addresses = named.filter { match.contactEmails.contains($0) }
                result.ignoredRecipients = named.count - addresses.count
                guard !addresses.isEmpty else {
                    result.outcome = .ignored
                    result.note = "no Final-Recipient of the report is the recipient of the matched delivery"
                        + (named.isEmpty ? "" : " (\(named.count) other recipient(s) ignored)")
                    return result.finished
                }
                for address in addresses {
                    let status = recipients.first { $0.address == address }?.status ?? result.detail ?? ""
                    result.add(
                        try actions.applyInTransaction(
                            .bounce, to: .contacts([address], sequence: nil), reason: "inbound bounce \(status), matched by \(match.kind)",
                            using: connection))
                }
            }
            result.outcome = result.changed ? .applied : .refused
            if result.outcome == .refused {
                result.note = "every matched enrollment refused the \(classification.kind == "out_of_office" ? "pause" : classification.kind)"
            }
            return result.finished
        }
    }

    // MARK: Matching

    private struct Match {
        /// `In-Reply-To`, `References`, … for the audit trail.
        let kind: String
        /// `kind` and the msg-id, for output.
        let how: String
        let live: [Int64]
        let finishedStatuses: [String]
        /// Matched enrollments that completed (a reply to them is credited, `CompletedReplies`).
        let completed: [Int64]
        /// The addresses the matched deliveries went to (for reports that name no recipient).
        let contactEmails: [String]
    }

    private func match(_ message: InboundMessage, bounce: Bool, _ connection: Connection) throws -> Match? {
        let references = message.matchReferences
        if !references.isEmpty {
            let rows = try connection.query(
                """
                SELECT d.message_id, d.idempotency_key, d.enrollment_id, e.status::text AS status, lower(c.email) AS email
                FROM seqd.deliveries d
                JOIN seqd.enrollments e ON e.id = d.enrollment_id
                JOIN seqd.contacts c ON c.id = d.contact_id
                WHERE d.message_id = ANY($1::text[])
                ORDER BY d.enrollment_id
                """, [references.map(\.messageID)])
            // A stored id is only as good as its MAC: ids minted before Message-IDs carried one are
            // guessable, and do not verify.
            let found = try rows.rows.map {
                (messageID: try $0.decode("message_id", as: String.self), key: try $0.decode("idempotency_key", as: String.self),
                 enrollment: try $0.decode("enrollment_id", as: Int64.self),
                 status: try $0.decode("status", as: String.self), email: try $0.decode("email", as: String.self))
            }.filter { trust.verifyReference($0.messageID, $0.key) }
            // The most specific reference that is ours decides: In-Reply-To before the returned
            // original before References (newest first).
            for reference in references {
                let hits = found.filter { $0.messageID == reference.messageID }
                guard !hits.isEmpty else { continue }
                return Match(
                    kind: reference.header, how: "\(reference.header) \(reference.messageID)",
                    live: Self.unique(hits.filter { Self.isLive($0.status) }.map(\.enrollment)),
                    finishedStatuses: Self.unique(hits.filter { !Self.isLive($0.status) }.map(\.status)),
                    completed: Self.unique(hits.filter { $0.status == "completed" }.map(\.enrollment)),
                    contactEmails: Self.unique(hits.map(\.email)))
            }
        }
        // A bounce comes from a mail system, never from the contact: no fallback for it. Anyone can
        // write any From: it counts only with the operator's MTA vouching for its domain.
        guard !bounce, let from = message.from, !message.recipients.isEmpty, let authservID = trust.trustedAuthservID,
            let evidence = SenderAuthentication.evidence(message, authservID: authservID)
        else { return nil }
        let rows = try connection.query(
            """
            SELECT e.id, e.status::text AS status
            FROM seqd.enrollments e
            JOIN seqd.contacts c ON c.id = e.contact_id
            JOIN seqd.sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.sequence_version
            WHERE lower(c.email) = $1 AND lower(v.definition -> 'sender' ->> 'address') = ANY($2::text[])
            ORDER BY e.id
            """, [from, message.recipients])
        guard rows.count > 0 else { return nil }
        let enrollments = try rows.rows.map { (id: try $0.decode("id", as: Int64.self), status: try $0.decode("status", as: String.self)) }
        return Match(
            kind: "sender address", how: "sender address and sequence sender (\(evidence))",
            live: enrollments.filter { Self.isLive($0.status) }.map(\.id),
            finishedStatuses: Self.unique(enrollments.filter { !Self.isLive($0.status) }.map(\.status)),
            completed: enrollments.filter { $0.status == "completed" }.map(\.id), contactEmails: [from])
    }

    private static func isLive(_ status: String) -> Bool { ["active", "paused", "failed"].contains(status) }

    private static func unique<T: Hashable>(_ values: [T]) -> [T] {
        var seen = Set<T>()
        return values.filter { seen.insert($0).inserted }
    }

    private func unmatchedNote(_ message: InboundMessage, bounce: Bool) -> String {
        let count = message.matchReferences.count
        let references = count == 0
            ? "it refers to no Message-ID" : "none of the \(count) Message-ID(s) it refers to is a verified one of seqd's deliveries"
        if bounce { return "\(references) (a bounce is matched only by the Message-ID of the returned message)" }
        guard let authservID = trust.trustedAuthservID else {
            return "\(references), and matching by sender address is off (inbound.trust_from)"
        }
        guard SenderAuthentication.evidence(message, authservID: authservID) != nil else {
            return "\(references), and no Authentication-Results from \(authservID) shows its From domain passing DMARC or aligned DKIM/SPF"
        }
        return "\(references), and its sender is no contact enrolled in a sequence sent from the address it was sent to"
    }

    /// Each enrollment's contact zone and sequence zone, for a stated return date.
    private static func zones(_ ids: [Int64], _ connection: Connection) throws -> [Int64: (contact: String?, sequence: String)] {
        let rows = try connection.query(
            """
            SELECT e.id, c.time_zone, COALESCE(v.definition ->> 'time_zone', 'UTC') AS sequence_zone
            FROM seqd.enrollments e
            JOIN seqd.contacts c ON c.id = e.contact_id
            JOIN seqd.sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.sequence_version
            WHERE e.id = ANY($1::bigint[])
            """, [ids])
        var zones = [Int64: (contact: String?, sequence: String)]()
        for row in rows.rows {
            zones[try row.decode("id")] = (try row.decode("time_zone", as: String?.self), try row.decode("sequence_zone", as: String.self))
        }
        return zones
    }

    /// The result under construction.
    private struct Draft {
        let classification: InboundClassification
        let messageID: String?
        var outcome = InboundResult.Outcome.unmatched
        var detail: String?
        var matchedBy: String?
        var returnDate: String?
        var resumeAt: Date?
        var suppressed = 0
        var ignoredRecipients = 0
        var enrollments = [InboundResult.Enrollment]()
        var note: String?

        var changed: Bool { suppressed > 0 || enrollments.contains { $0.refused == nil } }

        mutating func add(_ outcomes: [OperatorOutcome]) {
            for outcome in outcomes {
                if outcome.suppressed { suppressed += 1 }
                for result in outcome.results {
                    append(result, note: nil)
                    // A reply under stop_company_on_reply also stopped the colleagues' enrollments.
                    for stop in result.companyStops { append(stop, note: "stop_company_on_reply") }
                }
            }
        }

        private mutating func append(_ result: EventResult, note: String?) {
            enrollments.append(
                InboundResult.Enrollment(
                    id: result.enrollmentID, sequence: result.sequenceName, from: result.from.rawValue, to: result.to?.rawValue,
                    refused: result.refusal?.description, note: note))
        }

        var finished: InboundResult {
            InboundResult(
                outcome: outcome, classification: classification.kind, detail: detail, messageID: messageID, matchedBy: matchedBy,
                returnDate: returnDate, resumeAt: resumeAt, suppressed: suppressed, ignoredRecipients: ignoredRecipients,
                enrollments: enrollments, note: note)
        }
    }
}
