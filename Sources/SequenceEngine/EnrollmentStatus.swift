import Foundation

/// `seqd.enrollment_status` (design.md §4). Raw values are the database's labels.
public enum EnrollmentStatus: String, CaseIterable, Sendable, Codable, CustomStringConvertible {
    /// Running: due at `next_run_at`, or awaiting its current delivery.
    case active
    /// Kept in place with its remaining wait until resumed.
    case paused
    /// Went through every step.
    case completed
    /// The contact replied (with `exit_on_reply`).
    case replied
    /// The address opted out.
    case optedOut = "opted_out"
    /// The address bounced.
    case bounced
    /// A delivery or a step failed; the only non-terminal exit, left by `retry`.
    case failed
    /// An operator stopped it.
    case stopped
    /// The contact met one of the sequence's goals (`exit_when`).
    case converted

    /// Never changes again (invariant 4).
    public var isTerminal: Bool {
        switch self {
        case .completed, .replied, .optedOut, .bounced, .stopped, .converted: true
        case .active, .paused, .failed: false
        }
    }

    /// Counts toward "one live enrollment per contact and sequence" (invariant 5).
    public var isLive: Bool { !isTerminal }

    public var description: String { rawValue }
}

/// The persisted part of an enrollment, column for column (`enrollments.status`,
/// `current_step_index`, `next_run_at`, `remaining_wait`, `resume_at`, `last_error`).
///
/// `nextRunAt == nil` on an active enrollment means "awaiting delivery": the step at
/// `currentStepIndex` is in the outbox. On a paused one `remainingWait == nil` means the same.
/// On a failed one `nextRunAt == nil` means its delivery failed (retry resets that row), while a
/// time means the step itself failed then (a template or branch error; retry runs it again).
public struct EnrollmentState: Sendable, Equatable {
    /// The status.
    public var status: EnrollmentStatus
    /// Position in the pinned version's steps of the step to run when due; `steps.count` = past the end.
    public var currentStepIndex: Int
    /// When the daemon should run the enrollment; see the type's notes for nil.
    public var nextRunAt: Date?
    /// Seconds left to wait, kept while paused.
    public var remainingWait: TimeInterval?
    /// When a paused enrollment resumes by itself (out-of-office).
    public var resumeAt: Date?
    /// Why it failed.
    public var lastError: String?

    /// Creates a state from its stored columns.
    public init(status: EnrollmentStatus, currentStepIndex: Int, nextRunAt: Date?, remainingWait: TimeInterval? = nil, resumeAt: Date? = nil, lastError: String? = nil) {
        self.status = status
        self.currentStepIndex = currentStepIndex
        self.nextRunAt = nextRunAt
        self.remainingWait = remainingWait
        self.resumeAt = resumeAt
        self.lastError = lastError
    }

    /// A new enrollment: active on the first step, due at `now`.
    public static func enrolled(at now: Date) -> EnrollmentState {
        EnrollmentState(status: .active, currentStepIndex: 0, nextRunAt: now)
    }
}

/// What happened to an enrollment; the daemon, CLI, HTTP API and inbound mail all produce these.
public enum EnrollmentEvent: Sendable, Equatable {
    /// `next_run_at` has come.
    case due
    /// The current step's delivery was sent (by the database clock at `sentAt`).
    case delivered(sentAt: Date)
    /// The current step's delivery failed for good.
    case deliveryFailed(reason: String)
    /// The contact replied.
    case reply
    /// The contact's address was suppressed by an opt-out.
    case optOut
    /// The contact's address bounced.
    case bounce
    /// An operator or an out-of-office reply paused it, optionally until `resumeAt`.
    case pause(resumeAt: Date?)
    /// Continue a paused enrollment.
    case resume
    /// An operator ended it.
    case stop
    /// An operator retries a failed enrollment.
    case retry
    /// An operator cancelled the current step's delivery and moves on without it.
    case skipStep
    /// The contact met a goal of the sequence (`exit_when`); `goal` describes which, for the audit.
    case goalMet(goal: String)

    /// The name recorded in `enrollment_events.event`.
    public var name: String {
        switch self {
        case .due: "due"
        case .delivered: "delivered"
        case .deliveryFailed: "delivery_failed"
        case .reply: "reply"
        case .optOut: "opt_out"
        case .bounce: "bounce"
        case .pause: "pause"
        case .resume: "resume"
        case .stop: "stop"
        case .retry: "retry"
        case .skipStep: "skip_step"
        case .goalMet: "goal_met"
        }
    }
}

/// Side effects the driver performs in the same transaction that stores the new state.
public enum EnrollmentAction: Sendable, Equatable {
    /// Insert the outbox row for this step (unique per enrollment and step key).
    case createDelivery(DeliveryRequest)
    /// Record that the delivery was sent (audit), whatever the enrollment's status.
    case recordSend
    /// Record the reply signal (audit), whether or not the status changes.
    case recordReply
    /// Set the failed delivery of this step back to `pending`: same key, same Message-ID, attempts reset.
    case resetFailedDelivery(stepKey: String)
    /// Cancel this enrollment's pending or held deliveries: it has ended.
    case cancelPendingDeliveries
    /// `stop_company_on_reply`: stop the other live enrollments in this sequence of contacts at
    /// the same company: the same email domain, never a free-mail one (``FreeMailDomains``).
    case stopCompanyEnrollments
    /// The current step came due but may not go out yet; the state's `nextRunAt` is already
    /// `until`. Record it in the audit trail (event `deferred`, same status and step).
    case deferred(Deferral)
}

/// A step the machine passed through without an action, recorded when `tracing` is on.
public enum StepTrace: Sendable, Equatable {
    /// A wait step started at `from` and ends at `until`.
    case waited(stepKey: String, from: Date, until: Date)
    /// A branch step chose `target` (a step key or `end`) by its rule at `rule` (0-based), or
    /// went on to the next step because no rule matched (`rule` nil).
    case branched(stepKey: String, rule: Int?, target: String, at: Date)
}

/// What to put in the outbox for a step.
public struct DeliveryRequest: Sendable, Equatable {
    /// The step's key; with the enrollment it names the delivery.
    public let stepKey: String
    /// The step's position in the pinned version.
    public let stepIndex: Int
    /// What to send.
    public let payload: Payload

    /// An email rendered for this contact, or a webhook call.
    public enum Payload: Sendable, Equatable {
        /// A rendered email.
        case email(RenderedEmail)
        /// A webhook step, rendered by the outbox (it knows the enrollment and the delivery key).
        case webhook(SequenceDefinition.Webhook)
    }
}

/// An email step rendered for one contact; only `html` is HTML-escaped.
public struct RenderedEmail: Sendable, Equatable {
    /// The subject line.
    public let subject: String
    /// The text/plain body.
    public let text: String
    /// The text/html body, if the step has one.
    public let html: String?
    /// For `thread: true`, the step key of the email whose thread this continues.
    public let threadParentKey: String?
    /// The key of the A/B variant rendered; nil for a step without variants.
    public let variant: String?

    /// Creates a rendered email (the engine makes these; previews and tests may too).
    public init(subject: String, text: String, html: String?, threadParentKey: String?, variant: String? = nil) {
        self.subject = subject
        self.text = text
        self.html = html
        self.threadParentKey = threadParentKey
        self.variant = variant
    }
}

/// The answer to an event: accepted with the actions to perform, or refused with nothing changed.
public enum EnrollmentOutcome: Sendable, Equatable {
    /// The state may have changed; perform these actions.
    case accepted([EnrollmentAction])
    /// Nothing changed.
    case rejected(InvalidTransition)
}
