import Foundation

/// `seqd simulate`: the timeline one contact would follow through one sequence version, found by
/// driving the real ``EnrollmentMachine`` with a simulated clock, so the prediction cannot drift
/// from what the daemon does. Each email or webhook is assumed to go out the instant it is
/// queued. Sender daily limits are not predicted: they depend on everyone else's sends that day.
public enum Simulation {
    /// One thing that happens on the timeline.
    public struct Entry: Sendable, Equatable, Codable {
        /// What happened.
        public enum Kind: String, Sendable, Codable {
            /// An email step goes out (`subject` is the rendered subject).
            case email
            /// A webhook step is called.
            case webhook
            /// A wait step runs from `at` to `until`.
            case wait
            /// A due email waits for its window or the end of a skip date, until `until` (`reason`).
            case deferred
            /// A branch step chose `target` by rule `rule` (0-based; nil when none matched).
            case branch
            /// The end of the steps: the enrollment completes.
            case completed
            /// A step failed (`reason`), as it would for the daemon (e.g. a template field missing).
            case failed
        }

        public let kind: Kind
        /// The step's key (nil for `completed`).
        public let step: String?
        /// When it happens.
        public let at: Date
        /// The end of a wait or a deferral.
        public let until: Date?
        /// A deferral's reason (`send_window`, `skip_date`) or a failure's message.
        public let reason: String?
        /// A branch's chosen step key or `end`.
        public let target: String?
        /// A branch's matching rule, 0-based.
        public let rule: Int?
        /// An email's rendered subject.
        public let subject: String?

        init(_ kind: Kind, step: String?, at: Date, until: Date? = nil, reason: String? = nil, target: String? = nil,
             rule: Int? = nil, subject: String? = nil) {
            self.kind = kind
            self.step = step
            self.at = at
            self.until = until
            self.reason = reason
            self.target = target
            self.rule = rule
            self.subject = subject
        }
    }

    /// The timeline from an enrollment at `start` until the enrollment completes or fails, or
    /// `limit` entries (a guard; steps run at most once, so a real sequence ends well before).
    public static func run(_ definition: SequenceDefinition, contact: ContactFields, start: Date, limit: Int = 1_000) -> [Entry] {
        var machine = EnrollmentMachine(definition: definition, contact: contact, state: .enrolled(at: start))
        machine.tracing = true
        var entries = [Entry]()
        var traced = 0
        func takeTrace() {
            for step in machine.trace[traced...] {
                switch step {
                case .waited(let key, let from, let until):
                    entries.append(Entry(.wait, step: key, at: from, until: until))
                case .branched(let key, let rule, let target, let at):
                    entries.append(Entry(.branch, step: key, at: at, target: target, rule: rule))
                }
            }
            traced = machine.trace.count
        }
        while entries.count < limit, machine.state.status == .active, let due = machine.state.nextRunAt {
            guard case .accepted(let actions) = machine.due(now: due) else { break }
            takeTrace()
            for action in actions {
                switch action {
                case .createDelivery(let request):
                    switch request.payload {
                    case .email(let email): entries.append(Entry(.email, step: request.stepKey, at: due, subject: email.subject))
                    case .webhook: entries.append(Entry(.webhook, step: request.stepKey, at: due))
                    }
                    _ = machine.delivered(sentAt: due, now: due)
                    takeTrace()
                case .deferred(let deferral):
                    entries.append(Entry(.deferred, step: deferral.stepKey, at: deferral.due, until: deferral.until, reason: deferral.reason.rawValue))
                case .recordSend, .recordReply, .resetFailedDelivery, .cancelPendingDeliveries, .stopCompanyEnrollments:
                    break  // not produced by due or delivered for an active enrollment
                }
            }
            if machine.state.status == .completed {
                entries.append(Entry(.completed, step: nil, at: due))
            } else if machine.state.status == .failed {
                entries.append(Entry(.failed, step: definition.key(at: machine.state.currentStepIndex), at: due, reason: machine.state.lastError))
            }
        }
        return entries
    }
}
