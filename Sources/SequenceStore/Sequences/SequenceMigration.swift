import Foundation
import Postgres
import SequenceEngine

/// What `seqd sequence migrate` did, or for a dry run would do. Every live enrollment of the
/// sequence is counted in exactly one of `moved`, `alreadyOnTarget`, `inFlight`, `needsMap` and
/// `cannotPlace`.
public struct SequenceMigrationReport: Sendable, Equatable, Codable {
    public let sequence: String
    public let toVersion: Int
    public let dryRun: Bool
    /// Moved to `toVersion` (for a dry run: would be).
    public var moved = 0
    /// Live enrollments already pinned to `toVersion`.
    public var alreadyOnTarget = 0
    /// Left where they are: a delivery is pending, sending or unknown.
    public var inFlight = 0
    /// Left where they are: their step is not in `toVersion` and no `--map` names it.
    public var needsMap = 0
    /// Left where they are: mapped, but the move would strand them (see `groups[].reason`).
    public var cannotPlace = 0
    /// One row per (from version, from step, outcome, to step, reason), ordered by version and step.
    public var groups: [Group] = []

    /// Enrollments that share a starting point and an outcome.
    public struct Group: Sendable, Equatable, Codable {
        public let fromVersion: Int
        public let fromIndex: Int
        /// The step key, or `(end, after KEY)` past the last step.
        public let fromStep: String
        public let outcome: Outcome
        /// For moves only.
        public let toIndex: Int?
        public let toStep: String?
        /// True when a `--map` decided the target.
        public let mapped: Bool
        /// Why it is left where it is; nil for moves.
        public let reason: String?
        public var count: Int

        enum CodingKeys: String, CodingKey {
            case outcome, mapped, reason, count
            case fromVersion = "from_version"
            case fromIndex = "from_index"
            case fromStep = "from_step"
            case toIndex = "to_index"
            case toStep = "to_step"
        }

    }

    public enum Outcome: String, Sendable, Codable {
        case move
        case inFlight = "in_flight"
        case needsMap = "needs_map"
        case cannotPlace = "cannot_place"
    }

    enum CodingKeys: String, CodingKey {
        case sequence, moved, groups
        case toVersion = "to_version"
        case dryRun = "dry_run"
        case alreadyOnTarget = "already_on_target"
        case inFlight = "in_flight"
        case needsMap = "needs_map"
        case cannotPlace = "cannot_place"
    }

    init(sequence: String, toVersion: Int, dryRun: Bool) {
        self.sequence = sequence
        self.toVersion = toVersion
        self.dryRun = dryRun
    }

    /// Live enrollments that were left where they are, for whatever reason.
    public var leftInPlace: Int { inFlight + needsMap + cannotPlace }
}

/// Moves the live enrollments of a sequence to one of its versions by step key
/// (`seqd sequence migrate`). The decisions are the engine's (`VersionMigrationPlan`); this type
/// reads the enrollments with their deliveries and writes the moves.
///
/// A real run reads the ids of the live enrollments on other versions, then works through them in
/// chunks of `chunkSize`, each its own transaction, so the daemon never waits long on the rows it
/// holds (invariant 10; one transaction over 100,000 enrollments held their locks for minutes).
/// Each chunk first locks its enrollments that are still live and elsewhere, in id order, FOR
/// UPDATE: the daemon's claims skip locked rows, and a delivery settling for one of them waits for
/// the commit. Only then does it read their deliveries (in a new statement, so it sees everything
/// committed before the locks were granted). Moves are written set-based, one UPDATE per (from
/// version, from step, to step) so each audit event names the step keys; the audit trigger records
/// `migrate` with the versions. `next_run_at` and `remaining_wait` are not touched: a wait in
/// progress continues. An interrupted run leaves whole chunks moved; running it again counts them
/// as already on the target and moves the rest. A dry run reads one consistent snapshot in a
/// read-only transaction and writes nothing.
public enum SequenceMigration {
    /// Enrollments moved per transaction by a real run.
    public static let defaultChunkSize = 5_000

    /// Runs or (`dryRun`) plans the migration. A real run calls `progress` after each chunk has
    /// committed, with the enrollments considered so far and in all; an error it throws stops the
    /// run there, with the chunks so far committed.
    public static func migrate(
        _ connection: Connection, sequence name: String, toVersion: Int, map: [String: String] = [:], dryRun: Bool,
        actor: String, chunkSize: Int = defaultChunkSize,
        progress: (@Sendable (_ done: Int, _ total: Int) throws -> Void)? = nil
    ) throws -> SequenceMigrationReport {
        try SchemaCheck.requireSupported(connection)
        if dryRun {
            try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            defer { _ = try? connection.execute("ROLLBACK") }
            var run = try Run(connection, name: name, toVersion: toVersion, map: map, dryRun: true)
            _ = try run.classify(try candidates(connection, run, ids: nil))
            return run.finished()
        }
        var run = try Run(connection, name: name, toVersion: toVersion, map: map, dryRun: false)
        let ids = try connection.query(
            """
            SELECT id FROM seqd.enrollments
            WHERE sequence_id = $1 AND sequence_version <> $2 AND status IN ('active', 'paused', 'failed')
            ORDER BY id
            """, [run.sequenceID, toVersion]
        ).rows.map { try $0.decode("id", as: Int64.self) }
        var done = 0
        for start in stride(from: 0, to: ids.count, by: max(1, chunkSize)) {
            let chunk = Array(ids[start..<min(ids.count, start + max(1, chunkSize))])
            try connection.transaction { connection in
                // Still live and elsewhere now that they are locked: one may have finished, or
                // been moved by an earlier run, since the ids were read.
                let locked = try connection.query(
                    """
                    SELECT id FROM seqd.enrollments
                    WHERE id = ANY($1::bigint[]) AND sequence_id = $2 AND sequence_version <> $3
                      AND status IN ('active', 'paused', 'failed')
                    ORDER BY id FOR UPDATE
                    """, [chunk, run.sequenceID, toVersion]
                ).rows.map { try $0.decode("id", as: Int64.self) }
                let moves = try run.classify(try candidates(connection, run, ids: locked))
                try write(connection, moves: moves, toVersion: toVersion, map: map, actor: actor)
            }
            done += chunk.count
            try progress?(done, ids.count)
        }
        return run.finished()
    }

    private struct Move {
        var ids = [Int64]()
        /// Enrollments whose failed delivery is renamed from `fromKey` to the target step's key.
        var carried = [Int64]()
        let fromVersion: Int
        let fromIndex: Int
        let fromKey: String
        let toIndex: Int
        let toKey: String
    }

    /// Live enrollments on other versions (only `ids`, when given) with their deliveries' statuses.
    private static func candidates(_ connection: Connection, _ run: Run, ids: [Int64]?) throws -> QueryResult {
        try connection.query(
            """
            SELECT e.id, e.sequence_version, e.current_step_index, e.status::text AS status,
                   e.next_run_at IS NULL AS unscheduled,
                   (SELECT jsonb_object_agg(d.step_key, d.status)::text FROM seqd.deliveries d
                    WHERE d.enrollment_id = e.id) AS deliveries
            FROM seqd.enrollments e
            WHERE e.sequence_id = $1 AND e.sequence_version <> $2 AND e.status IN ('active', 'paused', 'failed')
              AND ($3::bigint[] IS NULL OR e.id = ANY($3::bigint[]))
            ORDER BY e.id
            """, [run.sequenceID, run.report.toVersion, ids])
    }

    /// What a decision depends on.
    private struct DecisionKey: Hashable {
        let version: Int
        let index: Int
        let status: String
        let unscheduled: Bool
        let deliveries: String
    }

    /// One run's plan and the report it accumulates over its chunks.
    private struct Run {
        let sequenceID: Int64
        let definitions: [Int: SequenceDefinition]
        let plan: VersionMigrationPlan
        var report: SequenceMigrationReport
        var groups = [GroupKey: SequenceMigrationReport.Group]()

        init(_ connection: Connection, name: String, toVersion: Int, map: [String: String], dryRun: Bool) throws {
            (sequenceID, definitions) = try SequenceMigration.versions(connection, name: name)
            guard let target = definitions[toVersion] else {
                let range = definitions.keys.sorted()
                throw StoreError(
                    .notFound,
                    "sequence '\(name)' has no version \(toVersion)"
                        + (range.isEmpty ? " (it has no versions)" : " (versions \(range.first!)–\(range.last!))"))
            }
            // A bad --map is the caller's usage error: the plan's MapError is passed on as it is.
            plan = try VersionMigrationPlan(
                target: target, targetVersion: toVersion, otherVersions: definitions.filter { $0.key != toVersion },
                map: map)
            report = SequenceMigrationReport(sequence: name, toVersion: toVersion, dryRun: dryRun)
            report.alreadyOnTarget = try connection.query(
                """
                SELECT count(*) AS n FROM seqd.enrollments
                WHERE sequence_id = $1 AND sequence_version = $2 AND status IN ('active', 'paused', 'failed')
                """, [sequenceID, toVersion])[0].decode("n")
        }

        /// Decides each row, counts it in the report, and returns the moves to write, in order.
        mutating func classify(_ rows: QueryResult) throws -> [Move] {
            let toVersion = report.toVersion
            var moves = [MoveKey: Move]()
            // Enrollments at the same place with the same deliveries get the same decision: at a
            // million enrollments there are a few hundred such places, so each is decided (and its
            // deliveries decoded) once.
            var decided = [DecisionKey: VersionMigrationPlan.Decision]()
            for row in rows.rows {
                let version = try row.decode("sequence_version", as: Int.self)
                let index = try row.decode("current_step_index", as: Int.self)
                guard let definition = definitions[version] else { continue }  // the foreign key forbids this
                let statusText = try row.decode("status", as: String.self)
                let deliveriesJSON = try row.decode("deliveries", as: String?.self) ?? "{}"
                let unscheduled = try row.decode("unscheduled", as: Bool.self)
                let key = DecisionKey(version: version, index: index, status: statusText, unscheduled: unscheduled, deliveries: deliveriesJSON)
                let decision: VersionMigrationPlan.Decision
                if let known = decided[key] {
                    decision = known
                } else {
                    let deliveries = try JSONDecoder().decode([String: String].self, from: Data(deliveriesJSON.utf8))
                    decision = plan.decide(
                        VersionMigrationPlan.Candidate(
                            definition: definition, currentStepIndex: index,
                            status: EnrollmentStatus(rawValue: statusText) ?? .active, unscheduled: unscheduled,
                            deliveries: deliveries.compactMapValues(DeliveryStatus.init(rawValue:))))
                    decided[key] = decision
                }
                let from = VersionMigrationPlan.position(in: definition, at: index)
                let group: SequenceMigrationReport.Group
                switch decision {
                case .move(let toIndex, let carried):
                    let to = plan.targetPosition(at: toIndex)
                    let mapped = plan.map[from.anchorKey ?? ""] != nil
                    group = .init(
                        fromVersion: version, fromIndex: index, fromStep: from.description, outcome: .move,
                        toIndex: toIndex, toStep: to.description, mapped: mapped, reason: nil, count: 0)
                    let key = MoveKey(fromVersion: version, fromIndex: index, toIndex: toIndex)
                    var move = moves[key] ?? Move(
                        fromVersion: version, fromIndex: index, fromKey: from.description, toIndex: toIndex,
                        toKey: to.description)
                    let id = try row.decode("id", as: Int64.self)
                    move.ids.append(id)
                    if carried != nil { move.carried.append(id) }
                    moves[key] = move
                    report.moved += 1
                case .inFlight(let stepKey, let status):
                    group = .init(
                        fromVersion: version, fromIndex: index, fromStep: from.description, outcome: .inFlight,
                        toIndex: nil, toStep: nil, mapped: false, reason: "delivery of '\(stepKey)' is \(status)",
                        count: 0)
                    report.inFlight += 1
                case .needsMap(let stepKey):
                    group = .init(
                        fromVersion: version, fromIndex: index, fromStep: from.description, outcome: .needsMap,
                        toIndex: nil, toStep: nil, mapped: false,
                        reason: "step '\(stepKey)' is not in version \(toVersion): add --map \(stepKey)=KEY (or =end)",
                        count: 0)
                    report.needsMap += 1
                case .cannotPlace(let reason):
                    group = .init(
                        fromVersion: version, fromIndex: index, fromStep: from.description, outcome: .cannotPlace,
                        toIndex: nil, toStep: nil, mapped: false, reason: reason, count: 0)
                    report.cannotPlace += 1
                }
                groups[GroupKey(group), default: group].count += 1
            }
            return moves.values.sorted { ($0.fromVersion, $0.fromIndex) < ($1.fromVersion, $1.fromIndex) }
        }

        /// The report with its groups in order.
        func finished() -> SequenceMigrationReport {
            var report = report
            report.groups = groups.values.sorted {
                ($0.fromVersion, $0.fromIndex, $0.outcome.order, $0.reason ?? "")
                    < ($1.fromVersion, $1.fromIndex, $1.outcome.order, $1.reason ?? "")
            }
            return report
        }
    }

    /// The sequence's id and every stored version's definition.
    private static func versions(_ connection: Connection, name: String) throws -> (Int64, [Int: SequenceDefinition]) {
        let rows = try connection.query(
            """
            SELECT s.id, v.version, v.definition::text AS definition
            FROM seqd.sequences s LEFT JOIN seqd.sequence_versions v ON v.sequence_id = s.id
            WHERE s.name = $1
            """, [name])
        guard let first = rows.rows.first else { throw StoreError(.notFound, "no sequence named '\(name)'") }
        var definitions = [Int: SequenceDefinition]()
        for row in rows.rows {
            guard let version = try row.decode("version", as: Int?.self) else { continue }
            let json = try row.decode("definition", as: String.self)
            definitions[version] = try SequenceDefinition.decodeStored(Data(json.utf8))
        }
        return (try first.decode("id"), definitions)
    }

    /// One UPDATE per group of moves, under the `migrate` audit event; the detail names the keys
    /// (the trigger adds from_version and to_version). Then the carried failed deliveries are
    /// renamed to their new step's key, so `retry` finds them.
    private static func write(
        _ connection: Connection, moves: [Move], toVersion: Int, map: [String: String], actor: String
    ) throws {
        guard !moves.isEmpty else { return }
        try EnrollmentWriter.setAuditContext(connection, event: "migrate", actor: actor)
        for move in moves {
            let detail: [String: String] = ["from_step": move.fromKey, "to_step": move.toKey]
            let detailJSON = String(decoding: try JSONEncoder().encode(detail), as: UTF8.self)
            try connection.query("SELECT set_config('seqd.detail', $1, true)", [detailJSON])
            try connection.query(
                """
                UPDATE seqd.enrollments SET sequence_version = $2, current_step_index = $3, updated_at = now()
                WHERE id = ANY($1::bigint[])
                """, [move.ids, toVersion, move.toIndex])
            if !move.carried.isEmpty {
                try connection.query(
                    """
                    UPDATE seqd.deliveries SET step_key = $3, updated_at = now()
                    WHERE enrollment_id = ANY($1::bigint[]) AND step_key = $2 AND status = 'failed'
                    """, [move.carried, move.fromKey, move.toKey])
            }
        }
        // Later statements in this transaction must not inherit the last group's detail.
        try connection.query("SELECT set_config('seqd.detail', '', true)")
    }

    private struct MoveKey: Hashable {
        let fromVersion: Int
        let fromIndex: Int
        let toIndex: Int
    }

    private struct GroupKey: Hashable {
        let fromVersion: Int
        let fromIndex: Int
        let outcome: SequenceMigrationReport.Outcome
        let toIndex: Int?
        let reason: String?

        init(_ group: SequenceMigrationReport.Group) {
            (fromVersion, fromIndex, outcome, toIndex, reason) = (
                group.fromVersion, group.fromIndex, group.outcome, group.toIndex, group.reason
            )
        }
    }
}

extension SequenceMigrationReport.Outcome {
    /// Moves first, then the reasons for staying, in the order the plan checks them.
    var order: Int {
        switch self {
        case .move: 0
        case .inFlight: 1
        case .needsMap: 2
        case .cannotPlace: 3
        }
    }
}

extension StepPosition {
    /// The key a `--map` entry for this position is looked up by.
    var anchorKey: String? {
        switch self {
        case .step(let key): key
        case .end(let after): after
        }
    }
}
