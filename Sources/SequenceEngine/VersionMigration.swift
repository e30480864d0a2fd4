import Foundation

/// Where an enrollment stands in its pinned version, by step identity rather than position.
public enum StepPosition: Hashable, Sendable, CustomStringConvertible {
    /// About to run the step with this key.
    case step(String)
    /// Past the last step: it completes when next due. `after` is the key of the version's last
    /// step (nil only for a hand-edited index in an empty step list, which validation forbids).
    case end(after: String?)

    public var description: String {
        switch self {
        case .step(let key): key
        case .end(let after): after.map { "(end, after \($0))" } ?? "(end)"
        }
    }
}

/// Moving live enrollments to another version of their sequence by step key
/// (`seqd sequence migrate`, design.md §5). Pure: the store loads the enrollments and their
/// deliveries, asks ``decide(_:)`` what to do with each, and writes the moves.
///
/// The rules, in the order they are checked:
/// 1. An enrollment with a delivery `pending`, `sending` or `unknown` stays where it is: its step is
///    in flight, and the send would settle against a step that may no longer be there.
/// 2. Its position maps by key: about to run step `k` → about to run `k` (or `--map k=new`) in
///    the target. Past the last step `l` → just after `l`'s counterpart, so steps appended in the
///    target are picked up. `--map k=end` places at the end (it completes when due). A key that is
///    not in the target and not mapped needs a `--map`.
/// 3. A failed enrollment whose current email or webhook failed for good keeps that delivery
///    retryable: the delivery row moves with it to the target step's key (same Message-ID, same
///    stored content). If the target step is a different kind of delivery, it cannot be placed.
/// 4. An enrollment that would reach, at or after its new position, a step key it already has a
///    delivery for cannot be placed: the outbox holds one delivery per step key (invariant 1), so
///    that step would never be sent and the enrollment would wait for it forever.
public struct VersionMigrationPlan: Sendable {
    /// The version enrollments move to.
    public let target: SequenceDefinition
    /// Old step key → target step key (or `end`), as given with `--map`.
    public let map: [String: String]

    /// A `--map` that names a key that exists nowhere it should.
    public struct MapError: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// - Parameters:
    ///   - target: the definition of the version to move to.
    ///   - targetVersion: its number, for messages.
    ///   - otherVersions: every other stored version of the sequence; an old key must be in one of them.
    ///   - map: old key → new key; the new key must be in the target, or be `end`.
    public init(
        target: SequenceDefinition, targetVersion: Int, otherVersions: [Int: SequenceDefinition], map: [String: String]
    ) throws(MapError) {
        let oldKeys = Set(otherVersions.values.flatMap { $0.steps.map(\.key) })
        for (old, new) in map.sorted(by: { $0.key < $1.key }) {
            guard oldKeys.contains(old) else {
                let versions = otherVersions.keys.sorted().map(String.init).joined(separator: ", ")
                throw MapError(
                    description: "--map \(old)=\(new): no version other than \(targetVersion) has a step '\(old)'"
                        + (versions.isEmpty ? " (the sequence has no other version)" : " (looked in \(versions))"))
            }
            guard new == SequenceDefinition.endTarget || target.index(ofStep: new) != nil else {
                throw MapError(
                    description: "--map \(old)=\(new): version \(targetVersion) has no step '\(new)' (its steps: "
                        + target.steps.map(\.key).joined(separator: ", ") + "; or map to 'end')")
            }
        }
        self.target = target
        self.map = map
    }

    /// Where a position in `source` lands in the target: an index (the target's step count for
    /// the end), or nil when the step is gone and unmapped.
    public func targetIndex(of position: StepPosition) -> Int? {
        switch position {
        case .step(let key):
            return index(ofCounterpartOf: key)
        case .end(let after):
            guard let after else { return target.steps.count }
            return index(ofCounterpartOf: after).map { min($0 + 1, target.steps.count) }
        }
    }

    /// The target index of `key`'s counterpart (`end` → the step count), nil when it has none.
    private func index(ofCounterpartOf key: String) -> Int? {
        let counterpart = map[key] ?? key
        if counterpart == SequenceDefinition.endTarget { return target.steps.count }
        return target.index(ofStep: counterpart)
    }

    /// The position at `index` in `definition`; anything at or past the last step is the end.
    public static func position(in definition: SequenceDefinition, at index: Int) -> StepPosition {
        definition.key(at: index).map(StepPosition.step) ?? .end(after: definition.steps.last?.key)
    }

    /// The target position at `index`.
    public func targetPosition(at index: Int) -> StepPosition {
        Self.position(in: target, at: index)
    }

    /// What migrate needs to know about one live enrollment.
    public struct Candidate: Sendable {
        public let definition: SequenceDefinition
        public let currentStepIndex: Int
        public let status: EnrollmentStatus
        /// `next_run_at` is NULL (for a failed enrollment: its current delivery failed).
        public let unscheduled: Bool
        /// The enrollment's deliveries: step key → status.
        public let deliveries: [String: DeliveryStatus]

        public init(
            definition: SequenceDefinition, currentStepIndex: Int, status: EnrollmentStatus, unscheduled: Bool,
            deliveries: [String: DeliveryStatus]
        ) {
            self.definition = definition
            self.currentStepIndex = currentStepIndex
            self.status = status
            self.unscheduled = unscheduled
            self.deliveries = deliveries
        }
    }

    /// The answer for one enrollment.
    public enum Decision: Sendable, Equatable {
        /// Move to `index` in the target. `carriedDelivery` is the step key of a failed delivery
        /// that must be renamed to the target step's key (nil when there is none, or the key is the same).
        case move(index: Int, carriedDelivery: String?)
        /// A delivery of this step is pending, sending or unknown.
        case inFlight(stepKey: String, status: DeliveryStatus)
        /// The step is not in the target and no `--map` names it.
        case needsMap(stepKey: String)
        /// Mapped, but the move would strand it; `reason` says why.
        case cannotPlace(reason: String)
    }

    public func decide(_ candidate: Candidate) -> Decision {
        if let (key, status) = candidate.deliveries.sorted(by: { $0.key < $1.key })
            .first(where: { [.pending, .sending, .unknown].contains($0.value) })
        {
            return .inFlight(stepKey: key, status: status)
        }
        let position = Self.position(in: candidate.definition, at: candidate.currentStepIndex)
        guard let index = targetIndex(of: position) else {
            switch position {
            case .step(let key), .end(after: let key?): return .needsMap(stepKey: key)
            case .end(after: nil): return .needsMap(stepKey: SequenceDefinition.endTarget)
            }
        }
        var existing = Set(candidate.deliveries.keys)
        var carried: String?
        if let failedKey = retryableFailedDelivery(candidate) {
            let oldStep = candidate.definition.steps[candidate.currentStepIndex]
            if let newStep = target.steps.indices.contains(index) ? target.steps[index] : nil, newStep.createsDelivery {
                guard newStep.typeName == oldStep.typeName else {
                    return .cannotPlace(
                        reason: "its failed \(oldStep.typeName) '\(failedKey)' cannot be retried as \(newStep.typeName) "
                            + "step '\(newStep.key)': retry or stop it first")
                }
                existing.remove(failedKey)
                carried = newStep.key == failedKey ? nil : failedKey
            }
            // A target that sends nothing (a wait, a branch, the end) makes retry run on from
            // there; the failed row stays as history under its own key.
        }
        if let repeated = target.steps[index...]
            .first(where: { $0.createsDelivery && existing.contains($0.key) })
        {
            return .cannotPlace(reason: "it would reach step '\(repeated.key)' again, which already has a delivery")
        }
        return .move(index: index, carriedDelivery: carried)
    }

    /// The step key of the failed delivery that `retry` would reset: only a failed enrollment
    /// that is unscheduled at a delivery step whose delivery row failed has one.
    private func retryableFailedDelivery(_ candidate: Candidate) -> String? {
        guard candidate.status == .failed, candidate.unscheduled,
            let key = candidate.definition.key(at: candidate.currentStepIndex),
            candidate.definition.steps[candidate.currentStepIndex].createsDelivery,
            candidate.deliveries[key] == .failed
        else { return nil }
        return key
    }
}
