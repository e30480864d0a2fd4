import Foundation
import Postgres
import SequenceEngine

/// A delivery leased to this worker: everything needed to compose and send it, and the fencing
/// token its confirmation must carry.
public struct ClaimedDelivery: Sendable {
    public let id: Int64
    public let enrollmentID: Int64
    public let stepKey: String
    public let kind: DeliveryKind
    /// The idempotency key; also names the message file and derives the Message-ID.
    public let deliveryKey: String
    public let token: Int64
    public let message: StoredMessage
    public let toAddress: String
    public let toName: String?
    /// Delivery keys of this enrollment's emails already sent, by step key (for threading).
    public let sentKeysByStep: [String: String]
    /// The database's `now()` at the claim: the message's `Date`.
    public let claimedAt: Date

    /// For the daemon's tests, which drive sessions without a database.
    package init(
        id: Int64, enrollmentID: Int64, stepKey: String, kind: DeliveryKind, deliveryKey: String, token: Int64,
        message: StoredMessage, toAddress: String, toName: String?, sentKeysByStep: [String: String], claimedAt: Date
    ) {
        self.id = id
        self.enrollmentID = enrollmentID
        self.stepKey = stepKey
        self.kind = kind
        self.deliveryKey = deliveryKey
        self.token = token
        self.message = message
        self.toAddress = toAddress
        self.toName = toName
        self.sentKeysByStep = sentKeysByStep
        self.claimedAt = claimedAt
    }
}

/// A claim's leased deliveries, and whether more were claimable than it took: the claim reads one
/// row past its limit, so a sender knows to come back at once (or to wake another) without paying
/// an empty claim to find out that the queue is drained.
public struct ClaimedBatch: RandomAccessCollection, Sendable {
    public let deliveries: [ClaimedDelivery]
    public let moreWaiting: Bool

    public init(_ deliveries: [ClaimedDelivery] = [], moreWaiting: Bool = false) {
        self.deliveries = deliveries
        self.moreWaiting = moreWaiting
    }

    public var startIndex: Int { deliveries.startIndex }
    public var endIndex: Int { deliveries.endIndex }
    public subscript(position: Int) -> ClaimedDelivery { deliveries[position] }
}

/// How a send ended, as the daemon reports it to the store.
public struct SendResult: Sendable {
    public let delivery: ClaimedDelivery
    public let event: DeliveryEvent
    /// `delivery_attempts.outcome`.
    public let attemptOutcome: AttemptOutcome
    /// The server's reply or the error text, kept on the attempt row.
    public let reply: String?
    public let messageID: String?
    /// For a webhook step that saves fields: those the response had, as a JSON object.
    public let savedData: String?

    public init(
        delivery: ClaimedDelivery, event: DeliveryEvent, attemptOutcome: AttemptOutcome, reply: String?, messageID: String?,
        savedData: String? = nil
    ) {
        self.savedData = savedData
        self.delivery = delivery
        self.event = event
        self.attemptOutcome = attemptOutcome
        self.reply = reply
        self.messageID = messageID
    }

    /// A claimed delivery handed back without a send: due again at once, its attempt recorded as
    /// `skipped` with the reason.
    public static func givenBack(_ delivery: ClaimedDelivery, because why: String) -> SendResult {
        SendResult(
            delivery: delivery, event: .notSent(token: delivery.token), attemptOutcome: .skipped,
            reply: "not sent: \(why)", messageID: nil)
    }
}

/// What settling a batch of sends asks of the daemon.
public struct SettleSummary: Sendable, Equatable {
    public var sent = 0
    public var retried = 0
    public var failed = 0
    public var bounced = 0
    public var stale = 0
    public init() {}

    /// Both summaries' counts together (a round that settled two batches).
    public func adding(_ other: SettleSummary?) -> SettleSummary {
        guard let other else { return self }
        var sum = self
        sum.sent += other.sent
        sum.retried += other.retried
        sum.failed += other.failed
        sum.bounced += other.bounced
        sum.stale += other.stale
        return sum
    }
}

/// The outbox: claiming deliveries with a lease, settling their outcome, and rescuing expired leases.
public final class DeliveryOutbox {
    private let worker: String
    private let installationID: String
    private let policy: DeliveryPolicy
    private let cache = DefinitionCache()

    public init(worker: String, installationID: String, policy: DeliveryPolicy) {
        self.worker = worker
        self.installationID = installationID
        self.policy = policy
    }

    /// Claims deliveries that are due, skipping those of paused enrollments or sequences (they wait
    /// in place), and nothing at all while the global send switch is off (`seqd sending pause`). The suppression list and the enrollment's status are read in the same statement,
    /// so a delivery of a suppressed address or an ended enrollment is cancelled instead of sent.
    static let claim = PreparedStatement(name: "deliveries_claim", sql: claimSQL)

    /// The claim's SQL text, public so a test can check its plan with EXPLAIN (the partial index
    /// `deliveries_claimable` must serve it even as a generic plan, whatever `$2` is).
    public static let claimSQL = """
            WITH claimable AS MATERIALIZED (
                SELECT d.id FROM seqd.deliveries d
                WHERE d.next_attempt_at <= now() AND (d.status = 'pending' OR (d.status = 'unknown' AND $2))
                  AND NOT EXISTS (SELECT 1 FROM seqd.settings x WHERE x.name = 'sending.paused' AND x.value = 'true')
                  -- Held in place while the enrollment or its sequence is paused. A correlated
                  -- subquery, not a join: the plan walks the partial index in due order and stops at
                  -- the LIMIT. As a join, a backlog the statistics had not seen yet (a mass enroll)
                  -- got a hash join over every claimable row and a sort: 43 ms per claim, not 3.
                  AND (SELECT e.status <> 'paused' AND s.paused_at IS NULL
                       FROM seqd.enrollments e JOIN seqd.sequences s ON s.id = e.sequence_id
                       WHERE e.id = d.enrollment_id)
                ORDER BY d.next_attempt_at
                LIMIT $1
                FOR UPDATE OF d SKIP LOCKED
            )
            SELECT d.id, d.enrollment_id, d.step_key, d.kind, d.idempotency_key, d.message::text AS message,
                   \(DeliveryRecord.stateColumns), e.status::text AS enrollment_status,
                   c.email, NULLIF(concat_ws(' ', c.first_name, c.last_name), '') AS name,
                   \(Suppressions.isSuppressed("c.email")) AS suppressed,
                   -- Only a threaded email needs its enrollment's sent keys (one more index probe per row).
                   CASE WHEN d.message->>'thread_parent_key' IS NOT NULL THEN
                       (SELECT jsonb_object_agg(p.step_key, p.idempotency_key)::text FROM seqd.deliveries p
                        WHERE p.enrollment_id = d.enrollment_id AND p.status = 'sent')
                   END AS sent_keys,
                   nextval('seqd.fencing_tokens') AS token, now() AS now
            FROM claimable JOIN seqd.deliveries d ON d.id = claimable.id
            JOIN seqd.enrollments e ON e.id = d.enrollment_id
            JOIN seqd.contacts c ON c.id = d.contact_id
            ORDER BY d.next_attempt_at
            """

    /// Locks the batch's deliveries in id order (two settling workers never deadlock) and reads
    /// their state: the fencing token decides whether an outcome still counts.
    static let lockForSettle = PreparedStatement(
        name: "deliveries_lock_for_settle",
        sql: """
            SELECT d.id, \(DeliveryRecord.stateColumns), now() AS now
            FROM seqd.deliveries d WHERE d.id = ANY($1::bigint[]) ORDER BY d.id FOR UPDATE
            """)

    /// One attempt row per settled send, written whole when its outcome is known: started at the
    /// claim (the claim transaction's `now()`), finished now. While a send is in flight, the
    /// delivery itself says so (`sending`, its lease owner, token and expiry); writing the row at
    /// the claim and again at the settle cost the database a second write per email. A send that
    /// never settles gets its row from the lease rescue, as `unknown`.
    static let recordAttempts = PreparedStatement(
        name: "delivery_attempts_record",
        sql: """
            INSERT INTO seqd.delivery_attempts (delivery_id, fencing_token, worker, started_at, finished_at, outcome, reply)
            SELECT d, t, $6, s, now(), o, r
            FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) AS u(d, t, s, o, r)
            """)

    /// Leases up to `limit` deliveries for `leaseSeconds` (their attempt rows are written when
    /// they settle), and says whether more were waiting.
    public func claim(_ connection: Connection, limit: Int, leaseSeconds: Int) throws -> ClaimedBatch {
        try connection.transaction { try claimLeasing($0, limit: limit, leaseSeconds: leaseSeconds) }
    }

    /// Which of these deliveries, leased by an advance and queued in memory since, may still be
    /// sent: what a claim would check, read again just before sending (no lock, no write). An
    /// opt-out, a pause (of the enrollment, its sequence, or all sending) or an ended enrollment
    /// committed while they were queued holds them back; the caller gives those back, and the
    /// claim that meets them again cancels or holds them as it would have.
    static let stillSendable = PreparedStatement(
        name: "deliveries_still_sendable",
        sql: """
            SELECT d.id FROM seqd.deliveries d
            JOIN seqd.enrollments e ON e.id = d.enrollment_id
            JOIN seqd.sequences s ON s.id = e.sequence_id
            JOIN seqd.contacts c ON c.id = d.contact_id
            WHERE d.id = ANY($1::bigint[]) AND e.status = 'active' AND s.paused_at IS NULL
              AND NOT \(Suppressions.isSuppressed("c.email"))
              AND NOT EXISTS (SELECT 1 FROM seqd.settings x WHERE x.name = 'sending.paused' AND x.value = 'true')
            """)

    public func stillSendable(_ connection: Connection, _ deliveries: [ClaimedDelivery]) throws -> Set<Int64> {
        guard !deliveries.isEmpty else { return [] }
        return Set(try connection.query(Self.stillSendable, [deliveries.map(\.id)]).rows.map { try $0.decode("id", as: Int64.self) })
    }

    /// Settles one batch and claims the next in a single transaction: a sender that keeps finding
    /// work pays one commit per batch instead of two. Both parts keep their own lock order
    /// (settled deliveries by id; claimed ones skip what is locked), so nothing new can deadlock.
    public func settleAndClaim(
        _ connection: Connection, results: [SendResult], limit: Int, leaseSeconds: Int
    ) throws -> (settled: SettleSummary, claimed: ClaimedBatch) {
        try connection.transaction { connection in
            let settled = try settleRecording(connection, results: results)
            let claimed = limit > 0 ? try claimLeasing(connection, limit: limit, leaseSeconds: leaseSeconds) : ClaimedBatch()
            return (settled, claimed)
        }
    }

    /// The claim's work inside the caller's transaction.
    private func claimLeasing(_ connection: Connection, limit: Int, leaseSeconds: Int) throws -> ClaimedBatch {
        // One row more than the limit: it stays pending (locked only until this commit) and says
        // whether the queue goes on.
        let rows = try connection.query(Self.claim, [limit + 1, policy.onUnknown == .retry])
        guard rows.count > 0 else { return ClaimedBatch() }
        let now = try rows[0].decode("now", as: Date.self)
        var leased = [(id: Int64, state: DeliveryState)]()
        var cancelled = [(id: Int64, state: DeliveryState)]()
        var endEnrollments = [Int64]()
        var claimed = [ClaimedDelivery]()
        for row in rows.rows.prefix(limit) {
            let id = try row.decode("id", as: Int64.self)
            var machine = DeliveryMachine(policy: policy, state: try DeliveryRecord.state(row))
            let enrollmentStatus = EnrollmentStatus(rawValue: try row.decode("enrollment_status")) ?? .stopped
            let suppressed = try row.decode("suppressed", as: Bool.self)
            if suppressed || enrollmentStatus.isTerminal || enrollmentStatus == .failed {
                if case .accepted = machine.cancel(now: now) { cancelled.append((id, machine.state)) }
                if suppressed && enrollmentStatus.isLive { endEnrollments.append(try row.decode("enrollment_id")) }
                continue
            }
            let token = try row.decode("token", as: Int64.self)
            guard case .accepted = machine.claimed(
                owner: worker, token: token, leaseUntil: now.addingTimeInterval(Double(leaseSeconds)), now: now)
            else { continue }
            leased.append((id, machine.state))
            let messageJSON = try row.decode("message", as: String?.self) ?? "{}"
            let sentKeys = try row.decode("sent_keys", as: String?.self)
            claimed.append(
                ClaimedDelivery(
                    id: id, enrollmentID: try row.decode("enrollment_id"), stepKey: try row.decode("step_key"),
                    kind: try Self.kind(row), deliveryKey: try row.decode("idempotency_key"), token: token,
                    message: try JSONDecoder().decode(StoredMessage.self, from: Data(messageJSON.utf8)),
                    toAddress: try row.decode("email"), toName: try row.decode("name", as: String?.self),
                    sentKeysByStep: sentKeys.flatMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) } ?? [:],
                    claimedAt: now))
        }
        try DeliveryRecord.write(connection, states: leased + cancelled)
        if !endEnrollments.isEmpty {
            _ = try EnrollmentEvents.apply(
                .optOut, to: endEnrollments, using: connection, cache: cache, actor: worker,
                reason: "the address is suppressed", installationID: installationID)
        }
        return ClaimedBatch(claimed, moreWaiting: rows.count > limit)
    }

    /// A row's kind; one this binary does not know is a decoding error naming it.
    static func kind(_ row: Row) throws -> DeliveryKind {
        let text = try row.decode("kind", as: String.self)
        guard let kind = DeliveryKind(rawValue: text) else {
            throw PostgresError(kind: .decoding, message: "unknown delivery kind \(text)", column: "kind")
        }
        return kind
    }

    /// Records how each send ended, in one transaction: the delivery's new state (a stale fencing
    /// token changes nothing), the attempt row, and the enrollment's `delivered` or failure event.
    public func settle(_ connection: Connection, results: [SendResult]) throws -> SettleSummary {
        guard !results.isEmpty else { return SettleSummary() }
        return try connection.transaction { try settleRecording($0, results: results) }
    }

    /// Hands leased deliveries back unsent: `pending` again at once, no attempt spent, each with a
    /// `skipped` attempt row saying why.
    @discardableResult
    public func giveBack(_ connection: Connection, _ deliveries: [ClaimedDelivery], because why: String) throws -> SettleSummary {
        try settle(connection, results: deliveries.map { SendResult.givenBack($0, because: why) })
    }

    /// The settle's work inside the caller's transaction.
    private func settleRecording(_ connection: Connection, results: [SendResult]) throws -> SettleSummary {
        guard !results.isEmpty else { return SettleSummary() }
        let rows = try connection.query(Self.lockForSettle, [results.map(\.delivery.id)])
        let now = try rows.count > 0 ? rows[0].decode("now", as: Date.self) : Date()
        var states = [Int64: DeliveryState]()
        for row in rows.rows { states[try row.decode("id")] = try DeliveryRecord.state(row) }

        var summary = SettleSummary()
        var changed = [(id: Int64, state: DeliveryState)]()
        var delivered = [Int64]()
        var failed = [(enrollmentID: Int64, reason: String)]()
        var bounced = [(enrollmentID: Int64, address: String, reason: String)]()
        var messageIDs = [String?]()  // parallel to `changed`
        var saved = (enrollmentIDs: [Int64](), data: [String](), steps: [String]())
        var attempts = (ids: [Int64](), tokens: [Int64](), startedAt: [Date](), outcomes: [String](), replies: [String?]())
        // Sends whose lease expired before this settle: the rescue already wrote their attempt as
        // `unknown`, and a late outcome with the same token corrects that row instead of adding one.
        var late = (ids: [Int64](), tokens: [Int64](), outcomes: [String](), replies: [String?]())
        for result in results {
            guard let state = states[result.delivery.id] else { continue }
            var machine = DeliveryMachine(policy: policy, state: state)
            guard case .accepted(let actions) = machine.handle(result.event, now: now) else {
                summary.stale += 1
                continue
            }
            changed.append((result.delivery.id, machine.state))
            messageIDs.append(result.messageID)
            if let data = result.savedData, machine.state.status == .sent {
                saved.enrollmentIDs.append(result.delivery.enrollmentID)
                saved.data.append(data)
                saved.steps.append(result.delivery.stepKey)
            }
            if state.status == .unknown {
                late.ids.append(result.delivery.id)
                late.tokens.append(result.delivery.token)
                late.outcomes.append(result.attemptOutcome.rawValue)
                late.replies.append(result.reply ?? "settled after its lease had expired")
            } else {
                attempts.ids.append(result.delivery.id)
                attempts.tokens.append(result.delivery.token)
                attempts.startedAt.append(result.delivery.claimedAt)
                attempts.outcomes.append(result.attemptOutcome.rawValue)
                attempts.replies.append(result.reply)
            }
            for action in actions {
                switch action {
                case .enrollmentDelivered:
                    delivered.append(result.delivery.enrollmentID)
                    summary.sent += 1
                case .enrollmentFailed(let reason):
                    failed.append((result.delivery.enrollmentID, reason))
                    summary.failed += 1
                case .enrollmentBounced(let reason):
                    bounced.append((result.delivery.enrollmentID, result.delivery.toAddress, reason))
                    summary.bounced += 1
                case .send, .holdForOperator, .openCircuitBreaker:
                    // The sender weighs transport faults from its own results, before settling.
                    break
                }
            }
            if machine.state.status == .pending { summary.retried += 1 }
        }
        try DeliveryRecord.write(connection, states: changed, messageIDs: messageIDs)
        if !attempts.ids.isEmpty {
            try connection.query(
                Self.recordAttempts,
                [attempts.ids, attempts.tokens, attempts.startedAt, attempts.outcomes, attempts.replies, worker])
        }
        if !late.ids.isEmpty {
            try connection.query(
                """
                UPDATE seqd.delivery_attempts a SET finished_at = now(), outcome = u.o, reply = u.r
                FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS u(d, t, o, r)
                WHERE a.delivery_id = u.d AND a.fencing_token = u.t AND a.outcome = 'unknown'
                """, [late.ids, late.tokens, late.outcomes, late.replies])
        }
        // Before the `delivered` event: a branch right after the webhook step runs in it.
        try Self.saveStepData(connection, saved, actor: worker)
        _ = try EnrollmentEvents.apply(
            .delivered(sentAt: now), to: delivered, using: connection, cache: cache, actor: worker,
            installationID: installationID)
        for failure in failed {
            _ = try EnrollmentEvents.apply(
                .deliveryFailed(reason: failure.reason), to: [failure.enrollmentID], using: connection, cache: cache,
                actor: worker, reason: failure.reason, installationID: installationID)
        }
        for bounce in bounced {
            try Suppressions.add(
                connection, address: bounce.address, reason: .bounce, source: "delivery", actor: worker,
                detail: bounce.reason, cache: cache, installationID: installationID)
        }
        return summary
    }

    /// Merges fields saved from webhook responses into their enrollments' `step_data`, each with a
    /// `step_data_saved` event naming the step and the fields (the enrollment's status and step do
    /// not change, so the audit trigger records nothing of its own).
    static func saveStepData(
        _ connection: Connection, _ saved: (enrollmentIDs: [Int64], data: [String], steps: [String]), actor: String
    ) throws {
        guard !saved.enrollmentIDs.isEmpty else { return }
        try connection.query(
            """
            WITH saved(id, data, step) AS (SELECT * FROM unnest($1::bigint[], $2::jsonb[], $3::text[])),
            updated AS (
                UPDATE seqd.enrollments e SET step_data = e.step_data || s.data
                FROM saved s WHERE e.id = s.id
                RETURNING e.id, e.status, e.current_step_index
            )
            INSERT INTO seqd.enrollment_events (enrollment_id, event, from_status, to_status, from_step, to_step, actor, detail)
            SELECT u.id, 'step_data_saved', u.status, u.status, u.current_step_index, u.current_step_index, $4,
                   jsonb_build_object('step', s.step, 'saved', s.data)
            FROM updated u JOIN saved s ON s.id = u.id
            """, [saved.enrollmentIDs, saved.data, saved.steps, actor])
    }

    /// Turns deliveries whose lease expired while sending into `unknown` (and applies
    /// `delivery.on_unknown` through the machine). Returns how many were rescued.
    public func rescueExpiredLeases(_ connection: Connection, jitter: @escaping () -> Double) throws -> Int {
        try connection.transaction { connection in
            let rows = try connection.query(
                """
                SELECT d.id, d.enrollment_id, \(DeliveryRecord.stateColumns), d.updated_at AS leased_at, now() AS now
                FROM seqd.deliveries d
                WHERE d.status = 'sending' AND d.lease_expires_at < now()
                ORDER BY d.lease_expires_at LIMIT 500
                FOR UPDATE SKIP LOCKED
                """)
            guard rows.count > 0 else { return 0 }
            let now = try rows[0].decode("now", as: Date.self)
            var changed = [(id: Int64, state: DeliveryState)]()
            var lost = (tokens: [Int64](), workers: [String](), startedAt: [Date]())
            var failed = [(enrollmentID: Int64, reason: String)]()
            for row in rows.rows {
                let leased = try DeliveryRecord.state(row)
                var machine = DeliveryMachine(policy: policy, state: leased)
                guard case .accepted(let actions) = machine.leaseExpired(jitter: jitter(), now: now) else { continue }
                changed.append((try row.decode("id"), machine.state))
                // The lost send's attempt, as its sender would have recorded it: its token and
                // worker, started when the lease was written.
                lost.tokens.append(leased.fencingToken)
                lost.workers.append(leased.leaseOwner ?? worker)
                lost.startedAt.append(try row.decode("leased_at", as: Date.self))
                for case .enrollmentFailed(let reason) in actions {
                    failed.append((try row.decode("enrollment_id"), reason))
                }
            }
            try DeliveryRecord.write(connection, states: changed)
            // Earlier builds opened the attempt row at the claim (a replica of one may still be
            // running during an upgrade): such a row is closed, not written a second time.
            try connection.query(
                """
                WITH lost(d, t, w, s) AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::timestamptz[])),
                closed AS (
                    UPDATE seqd.delivery_attempts a SET finished_at = now(), outcome = 'unknown', reply = $5
                    FROM lost WHERE a.delivery_id = lost.d AND a.fencing_token = lost.t AND a.finished_at IS NULL
                    RETURNING a.delivery_id
                )
                INSERT INTO seqd.delivery_attempts (delivery_id, fencing_token, worker, started_at, finished_at, outcome, reply)
                SELECT d, t, w, s, now(), 'unknown', $5 FROM lost WHERE d NOT IN (SELECT delivery_id FROM closed)
                """, [changed.map(\.id), lost.tokens, lost.workers, lost.startedAt, "lease expired while sending"])
            for failure in failed {
                _ = try EnrollmentEvents.apply(
                    .deliveryFailed(reason: failure.reason), to: [failure.enrollmentID], using: connection, cache: cache,
                    actor: worker, reason: failure.reason, installationID: installationID)
            }
            return changed.count
        }
    }

    /// Cancels the pending (and held) deliveries of ended enrollments, through their machines; a
    /// delivery being sent settles first and is never cancelled under the sender.
    static func cancelPending(_ connection: Connection, enrollmentIDs: [Int64]) throws {
        guard !enrollmentIDs.isEmpty else { return }
        try applyToLocked(
            connection,
            where: "d.enrollment_id = ANY($1::bigint[]) AND d.status IN ('pending', 'unknown', 'failed')", [enrollmentIDs]
        ) { machine, now in machine.cancel(now: now) }
    }

    /// `retry` of a failed enrollment: the same delivery row, key and Message-ID, attempts reset.
    static func resetFailed(_ connection: Connection, enrollmentID: Int64, stepKey: String) throws {
        try applyToLocked(
            connection, where: "d.enrollment_id = $1 AND d.step_key = $2 AND d.status IN ('failed', 'unknown')",
            [enrollmentID, stepKey]
        ) { machine, now in machine.retry(now: now) }
    }

    /// Locks the deliveries `condition` selects (in id order, as every settle does), hands each to
    /// its machine, and stores the states it accepted: no status is written around the machine.
    private static func applyToLocked(
        _ connection: Connection, where condition: String, _ parameters: [any PostgresEncodable],
        _ event: (inout DeliveryMachine, Date) -> DeliveryOutcome
    ) throws {
        let rows = try connection.query(
            "SELECT d.id, \(DeliveryRecord.stateColumns), now() AS now FROM seqd.deliveries d WHERE \(condition) ORDER BY d.id FOR UPDATE",
            parameters)
        guard rows.count > 0 else { return }
        let now = try rows[0].decode("now", as: Date.self)
        // The machine's policy decides nothing for cancel and retry.
        var changed = [(id: Int64, state: DeliveryState)]()
        for row in rows.rows {
            var machine = DeliveryMachine(policy: DeliveryPolicy(), state: try DeliveryRecord.state(row))
            if case .accepted = event(&machine, now) { changed.append((try row.decode("id"), machine.state)) }
        }
        try DeliveryRecord.write(connection, states: changed)
    }
}

/// The columns of a delivery that its state machine reads and writes.
enum DeliveryRecord {
    static let stateColumns = """
        d.status::text AS status, d.attempts, COALESCE(d.fencing_token, 0) AS fencing_token, d.lease_owner,
        d.lease_expires_at, d.next_attempt_at, d.last_error, d.provider_id
        """

    static func state(_ row: Row) throws -> DeliveryState {
        let statusText = try row.decode("status", as: String.self)
        guard let status = DeliveryStatus(rawValue: statusText) else {
            throw PostgresError(kind: .decoding, message: "unknown delivery status \(statusText)", column: "status")
        }
        return DeliveryState(
            status: status, attempts: try row.decode("attempts"), fencingToken: try row.decode("fencing_token"),
            leaseOwner: try row.decode("lease_owner", as: String?.self),
            leaseUntil: try row.decode("lease_expires_at", as: Date?.self),
            nextAttemptAt: try row.decode("next_attempt_at", as: Date?.self),
            lastError: try row.decode("last_error", as: String?.self),
            providerID: try row.decode("provider_id", as: String?.self))
    }

    static let update = PreparedStatement(
        name: "deliveries_write_states",
        sql: """
            UPDATE seqd.deliveries d
            SET status = u.status::seqd.delivery_status, attempts = u.attempts, fencing_token = u.token,
                lease_owner = u.owner, lease_expires_at = u.lease, next_attempt_at = COALESCE(u.next_at, now()),
                last_error = u.error, provider_id = u.provider,
                sent_at = CASE WHEN u.status = 'sent' AND d.sent_at IS NULL THEN now() ELSE d.sent_at END,
                message_id = COALESCE(u.message_id, d.message_id), updated_at = now()
            FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bigint[], $5::text[], $6::timestamptz[],
                        $7::timestamptz[], $8::text[], $9::text[], $10::text[])
                AS u(id, status, attempts, token, owner, lease, next_at, error, provider, message_id)
            WHERE d.id = u.id
            """)

    /// Stores the machines' states set-based, and the Message-ID of each message a transport was
    /// handed (`messageIDs` parallel to `states`; nil keeps the stored one), in the same statement.
    static func write(_ connection: Connection, states: [(id: Int64, state: DeliveryState)], messageIDs: [String?]? = nil) throws {
        guard !states.isEmpty else { return }
        try connection.query(
            update,
            [
                states.map(\.id), states.map(\.state.status.rawValue), states.map(\.state.attempts),
                states.map(\.state.fencingToken), states.map(\.state.leaseOwner), states.map(\.state.leaseUntil),
                states.map(\.state.nextAttemptAt), states.map(\.state.lastError), states.map(\.state.providerID),
                messageIDs ?? [String?](repeating: nil, count: states.count),
            ])
    }
}
