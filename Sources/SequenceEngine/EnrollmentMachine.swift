import Foundation

/// The enrollment state machine (design.md §4): one contact's position in one pinned sequence
/// version. The driver loads the stored columns into an `EnrollmentState`, calls the event's
/// `mutating func` with the database's `now`, performs the returned actions and stores `state`
/// in the same transaction. The state is `private(set)`: every change goes through an event.
///
/// ```
///   enroll ─► active ─┬─ due ───────────────────► active   (wait, window, outbox row, branch)
///                     ├─ delivered ─────────────► active   (advances; next wait from the send)
///                     ├─ end of steps ──────────► completed
///                     ├─ pause ─────────────────► paused ── resume ──► active
///                     └─ delivery failed,
///                        template/branch error ─► failed ── retry ───► active
///   active | paused | failed ── reply (exit_on_reply) ──► replied
///                            ── opt-out | bounce | stop ─► opted_out | bounced | stopped
///                            ── goal met (exit_when) ─────► converted
///   paused ── delivery failed ──► failed
/// ```
/// `delivered` is accepted in every status and always records the send; only active and paused
/// enrollments that await that delivery advance.
public struct EnrollmentMachine: Sendable {
    /// The version the enrollment is pinned to.
    public let definition: SequenceDefinition
    /// The contact's fields, for templates, branches and the time zone.
    public let contact: ContactFields
    /// Fields webhook steps saved on the enrollment (`step_data`), for branches.
    public let stepData: [String: String]
    /// The enrollment's id: what picks its A/B variants (`Email.variant(for:stepKey:)`).
    public let enrollmentID: Int64
    /// The current state; store it after every accepted event.
    public private(set) var state: EnrollmentState
    /// When true, `trace` records the waits and branches each event passed through (for
    /// `seqd simulate`; the daemon leaves it off).
    public var tracing = false
    /// What the steps run so far did that leaves no action behind: waits started and branches taken.
    public private(set) var trace: [StepTrace] = []

    /// Every status change the machine can make. The database's transition table must equal it.
    public static let allowedTransitions: Set<StatusChange<EnrollmentStatus>> = {
        let edges: [(EnrollmentStatus, [EnrollmentStatus])] = [
            (.active, [.paused, .completed, .replied, .optedOut, .bounced, .failed, .stopped, .converted]),
            (.paused, [.active, .replied, .optedOut, .bounced, .failed, .stopped, .converted]),
            (.failed, [.active, .replied, .optedOut, .bounced, .stopped, .converted]),
        ]
        return Set(edges.flatMap { from, targets in targets.map { StatusChange(from: from, to: $0) } })
    }()

    /// Wraps a stored enrollment.
    public init(
        definition: SequenceDefinition, contact: ContactFields, state: EnrollmentState, stepData: [String: String] = [:],
        enrollmentID: Int64 = 0
    ) {
        self.definition = definition
        self.contact = contact
        self.stepData = stepData
        self.enrollmentID = enrollmentID
        self.state = state
    }

    /// Dispatches an event to its handler; for drivers that receive events as values.
    public mutating func handle(_ event: EnrollmentEvent, now: Date) -> EnrollmentOutcome {
        switch event {
        case .due: due(now: now)
        case .delivered(let sentAt): delivered(sentAt: sentAt, now: now)
        case .deliveryFailed(let reason): deliveryFailed(reason: reason, now: now)
        case .reply: reply(now: now)
        case .optOut: optOut(now: now)
        case .bounce: bounce(now: now)
        case .pause(let resumeAt): pause(resumeAt: resumeAt, now: now)
        case .resume: resume(now: now)
        case .stop: stop(now: now)
        case .retry: retry(now: now)
        case .skipStep: skipStep(now: now)
        case .goalMet: goalMet(now: now)
        }
    }

    // MARK: Events

    /// `next_run_at` has come: run steps from the current one until something has to wait.
    /// An email step outside its window or on a skip date is deferred (a `.deferred` action and a
    /// later `nextRunAt`). `senderLimitReached`: the driver could not reserve a slot of the
    /// sender's `daily_limit` for today, so an email that could go out now waits for the next
    /// day's window instead.
    public mutating func due(now: Date, senderLimitReached: Bool = false) -> EnrollmentOutcome {
        switch state.status {
        case .active:
            guard let nextRunAt = state.nextRunAt else {
                return reject("due", detail: "awaiting delivery of step '\(currentKey)'")
            }
            guard nextRunAt <= now else {
                return reject("due", detail: "not due until \(nextRunAt.formatted(.iso8601))")
            }
            return .accepted(run(from: now, creatingDeliveries: true, senderLimitReached: senderLimitReached))
        case .paused, .completed, .replied, .optedOut, .bounced, .failed, .stopped, .converted:
            return reject("due")
        }
    }

    /// The current step's delivery went out at `sentAt`. Advances an enrollment awaiting it; the
    /// next wait counts from `sentAt`. A following delivery step becomes due at `sentAt` rather
    /// than being queued here, so it goes through the normal due path (suppression, limits).
    public mutating func delivered(sentAt: Date, now: Date) -> EnrollmentOutcome {
        switch state.status {
        case .active:
            guard state.nextRunAt == nil, currentStepCreatesDelivery else { return .accepted([.recordSend]) }
            state.currentStepIndex += 1
            return .accepted([.recordSend] + run(from: sentAt, creatingDeliveries: false))
        case .paused:
            guard state.remainingWait == nil, currentStepCreatesDelivery else { return .accepted([.recordSend]) }
            state.currentStepIndex += 1
            // While paused no time runs against the next wait: it is kept whole.
            if let step = currentStep, case .wait(let duration) = step.kind {
                state.remainingWait = duration.end(after: sentAt, in: zone, skipping: definition.skipDateSet).timeIntervalSince(sentAt)
                state.currentStepIndex += 1
            } else {
                state.remainingWait = 0
            }
            return .accepted([.recordSend])
        case .completed, .replied, .optedOut, .bounced, .failed, .stopped, .converted:
            return .accepted([.recordSend])
        }
    }

    /// The current delivery failed for good (attempts used up, or a permanent non-bounce error).
    /// Only an enrollment awaiting that delivery can fail this way, which keeps "failed with no
    /// `nextRunAt`" meaning "the current step has a failed delivery row".
    ///
    /// A webhook step of a sequence with `on_failure: skip` does not fail the enrollment: it goes
    /// on with the next step as if the request had succeeded (nothing counts as sent).
    public mutating func deliveryFailed(reason: String, now: Date) -> EnrollmentOutcome {
        switch state.status {
        case .active, .paused:
            let awaiting = state.status == .active ? state.nextRunAt == nil : state.remainingWait == nil
            guard awaiting, currentStepCreatesDelivery else {
                return reject("delivery failed", detail: "not awaiting a delivery")
            }
            if definition.onFailure == .skip, let step = currentStep, case .webhook = step.kind {
                guard case .accepted(let actions) = delivered(sentAt: now, now: now) else { return reject("delivery failed") }
                return .accepted(actions.filter { $0 != .recordSend })
            }
            state.status = .failed
            state.lastError = reason
            state.nextRunAt = nil
            state.remainingWait = nil
            state.resumeAt = nil
            return .accepted([])
        case .failed, .completed, .replied, .optedOut, .bounced, .stopped, .converted:
            return reject("delivery failed")
        }
    }

    /// The contact replied. Ends the enrollment when `exit_on_reply`; otherwise only recorded.
    public mutating func reply(now: Date) -> EnrollmentOutcome {
        switch state.status {
        case .active, .paused, .failed:
            let company: [EnrollmentAction] = definition.stopCompanyOnReply ? [.stopCompanyEnrollments] : []
            guard definition.exitOnReply else { return .accepted([.recordReply] + company) }
            finish(.replied)
            return .accepted([.recordReply, .cancelPendingDeliveries] + company)
        case .completed, .replied, .optedOut, .bounced, .stopped, .converted:
            return reject("reply")
        }
    }

    /// The address was suppressed by an opt-out.
    public mutating func optOut(now: Date) -> EnrollmentOutcome {
        end(.optedOut, event: "opt-out")
    }

    /// The address bounced.
    public mutating func bounce(now: Date) -> EnrollmentOutcome {
        end(.bounced, event: "bounce")
    }

    /// An operator ended the enrollment.
    public mutating func stop(now: Date) -> EnrollmentOutcome {
        end(.stopped, event: "stop")
    }

    /// The contact met a goal (`exit_when`): the enrollment ends `converted` and whatever it still
    /// had queued is cancelled. The driver decides that a goal is met (it needs the events the
    /// contact sent since enrolling) and records which one in the audit reason.
    public mutating func goalMet(now: Date) -> EnrollmentOutcome {
        end(.converted, event: "goal-met")
    }

    /// Pause, keeping the remaining wait (none while awaiting delivery: the delivery waits too).
    public mutating func pause(resumeAt: Date?, now: Date) -> EnrollmentOutcome {
        switch state.status {
        case .active:
            state.status = .paused
            state.remainingWait = state.nextRunAt.map { max(0, $0.timeIntervalSince(now)) }
            state.nextRunAt = nil
            state.resumeAt = resumeAt
            return .accepted([])
        case .paused, .completed, .replied, .optedOut, .bounced, .failed, .stopped, .converted:
            return reject("pause")
        }
    }

    /// Continue where it paused, with the wait that was left.
    public mutating func resume(now: Date) -> EnrollmentOutcome {
        switch state.status {
        case .paused:
            state.status = .active
            state.nextRunAt = state.remainingWait.map { now.addingTimeInterval($0) }
            state.remainingWait = nil
            state.resumeAt = nil
            return .accepted([])
        case .active, .completed, .replied, .optedOut, .bounced, .failed, .stopped, .converted:
            return reject("resume")
        }
    }

    /// Make a failed enrollment active again: a failed delivery is reset to pending (same key),
    /// a failed step is run again now.
    public mutating func retry(now: Date) -> EnrollmentOutcome {
        switch state.status {
        case .failed:
            state.status = .active
            state.lastError = nil
            if state.nextRunAt == nil, currentStepCreatesDelivery, let key = currentStep?.key {
                return .accepted([.resetFailedDelivery(stepKey: key)])
            }
            state.nextRunAt = now
            return .accepted([])
        case .active, .paused, .completed, .replied, .optedOut, .bounced, .stopped, .converted:
            return reject("retry")
        }
    }

    /// The operator cancelled the delivery of the current step (awaited, or failed) and chose to
    /// skip it: move on from now as if the step were done, without recording a send. A paused
    /// enrollment must be resumed first, so a skip never starts a wait that nobody sees.
    public mutating func skipStep(now: Date) -> EnrollmentOutcome {
        switch state.status {
        case .active, .failed:
            guard state.nextRunAt == nil, currentStepCreatesDelivery else {
                return reject("skip-step", detail: "it is not waiting for a delivery")
            }
            state.status = .active
            state.lastError = nil
            state.currentStepIndex += 1
            return .accepted(run(from: now, creatingDeliveries: false))
        case .paused, .completed, .replied, .optedOut, .bounced, .stopped, .converted:
            return reject("skip-step")
        }
    }

    // MARK: Running steps

    /// Runs steps from the current index until one has to wait. With `creatingDeliveries` false
    /// (after a send) a delivery step is only made due, at `now`.
    private mutating func run(from now: Date, creatingDeliveries: Bool, senderLimitReached: Bool = false) -> [EnrollmentAction] {
        let steps = definition.steps
        while state.currentStepIndex < steps.count {
            let index = state.currentStepIndex
            let step = steps[index]
            switch step.kind {
            case .wait(let duration):
                let end = duration.end(after: now, in: zone, skipping: definition.skipDateSet)
                state.nextRunAt = end
                state.currentStepIndex += 1
                if tracing { trace.append(.waited(stepKey: step.key, from: now, until: end)) }
                return []
            case .email(let email):
                guard creatingDeliveries else {
                    state.nextRunAt = now
                    return []
                }
                let window = email.sendWindow ?? definition.sendWindow
                let sendAt = SendSchedule.nextSendTime(atOrAfter: now, window: window, skipDates: definition.skipDateSet, in: zone)
                guard sendAt <= now else {
                    let onSkipDate = definition.skipDateSet.contains(WallClock.local(now, in: zone).date)
                    return deferStep(step.key, reason: onSkipDate ? .skipDate : .sendWindow, due: now, until: sendAt)
                }
                if senderLimitReached && definition.sender.dailyLimit != nil {
                    // The limit's day is the sequence's; the next send is that next day's first
                    // instant inside this contact's window.
                    let nextDay = WallClock.instant(
                        definition.senderLimitDay(at: now).adding(days: 1), secondsOfDay: 0, in: definition.sequenceTimeZone)
                    let until = SendSchedule.nextSendTime(atOrAfter: nextDay, window: window, skipDates: definition.skipDateSet, in: zone)
                    return deferStep(step.key, reason: .senderDailyLimit, due: now, until: until)
                }
                do {
                    let rendered = try render(email, at: index)
                    state.nextRunAt = nil
                    return [.createDelivery(DeliveryRequest(stepKey: step.key, stepIndex: index, payload: .email(rendered)))]
                } catch {
                    fail("step '\(step.key)': \(error)", now: now)
                    return []
                }
            case .webhook(let webhook):
                guard creatingDeliveries else {
                    state.nextRunAt = now
                    return []
                }
                // As for an email: a request with a hole in it is never made.
                let missing = webhook.missingFields(for: contact)
                guard missing.isEmpty else {
                    fail("step '\(step.key)': the contact has no \(missing.joined(separator: ", "))", now: now)
                    return []
                }
                state.nextRunAt = nil
                return [.createDelivery(DeliveryRequest(stepKey: step.key, stepIndex: index, payload: .webhook(webhook)))]
            case .branch(let rules):
                guard let ruleIndex = rules.firstIndex(where: { $0.condition.matches(contact, stepData: stepData) }) else {
                    state.currentStepIndex += 1
                    if tracing {
                        trace.append(.branched(stepKey: step.key, rule: nil, target: definition.key(at: index + 1) ?? SequenceDefinition.endTarget, at: now))
                    }
                    continue
                }
                let rule = rules[ruleIndex]
                if tracing { trace.append(.branched(stepKey: step.key, rule: ruleIndex, target: rule.target, at: now)) }
                if rule.target == SequenceDefinition.endTarget {
                    state.currentStepIndex = steps.count
                    continue
                }
                // Forward-only jumps guarantee the loop ends; a stored definition edited by
                // hand could break that, so check rather than trust.
                guard let target = definition.index(ofStep: rule.target), target > index else {
                    fail("step '\(step.key)': goto '\(rule.target)' is not a later step", now: now)
                    return []
                }
                state.currentStepIndex = target
            }
        }
        finish(.completed)
        return []
    }

    private func render(_ email: SequenceDefinition.Email, at index: Int) throws -> RenderedEmail {
        try definition.render(email, at: index, for: contact, enrollmentID: enrollmentID)
    }

    // MARK: Helpers

    private mutating func deferStep(_ key: String, reason: DeferralReason, due: Date, until: Date) -> [EnrollmentAction] {
        state.nextRunAt = until
        return [.deferred(Deferral(stepKey: key, reason: reason, due: due, until: until, timeZone: zone))]
    }

    private var zone: TimeZone { definition.timeZone(for: contact) }

    private var currentStep: SequenceDefinition.Step? {
        definition.steps.indices.contains(state.currentStepIndex) ? definition.steps[state.currentStepIndex] : nil
    }

    private var currentKey: String { currentStep?.key ?? SequenceDefinition.endTarget }

    private var currentStepCreatesDelivery: Bool { currentStep?.createsDelivery ?? false }

    private mutating func fail(_ reason: String, now: Date) {
        state.status = .failed
        state.lastError = reason
        state.nextRunAt = now
    }

    private mutating func finish(_ status: EnrollmentStatus) {
        state.status = status
        state.nextRunAt = nil
        state.remainingWait = nil
        state.resumeAt = nil
    }

    private mutating func end(_ status: EnrollmentStatus, event: String) -> EnrollmentOutcome {
        switch state.status {
        case .active, .paused, .failed:
            finish(status)
            return .accepted([.cancelPendingDeliveries])
        case .completed, .replied, .optedOut, .bounced, .stopped, .converted:
            return reject(event)
        }
    }

    private func reject(_ event: String, detail: String? = nil) -> EnrollmentOutcome {
        .rejected(InvalidTransition(state: "enrollment is \(state.status)", event: event, detail: detail))
    }
}
