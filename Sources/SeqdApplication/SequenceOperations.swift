import SequenceEngine
import SequenceStore

/// Sequences: apply, read, pause, migrate enrollments between versions, and what preview and
/// simulate start from.
extension Operations {
    /// Stores each definition as a new version when it changed (one transaction for all).
    public func applySequences(_ definitions: [SequenceDefinition], sourceFiles: [String?]) async throws -> [AppliedSequence] {
        try await database.run { try SequenceCatalog.apply($0, definitions, sourceFiles: sourceFiles) }
    }

    /// Applies one definition only if the latest stored version is `expectedLatest` (an HTTP
    /// `If-Match`); otherwise `.preconditionFailed` and nothing changes.
    public func applySequence(_ definition: SequenceDefinition, ifLatestVersion expectedLatest: Int?) async throws -> AppliedSequence {
        try await database.run { connection in
            guard let expectedLatest else { return try SequenceCatalog.apply(connection, [definition])[0] }
            return try SequenceCatalog.apply(connection, definition, ifLatestVersion: expectedLatest)
        }
    }

    public func sequences() async throws -> [SequenceSummary] {
        try await database.run { try SequenceCatalog.list($0) }
    }

    /// One stored version; nil means the latest. Unknown name or version: `.notFound`.
    public func sequence(_ name: String, version: Int? = nil) async throws -> StoredSequenceVersion {
        try await database.run { try SequenceCatalog.show($0, name: name, version: version) }
    }

    public func pauseSequence(_ name: String) async throws -> SequencePauseResult {
        try await database.run { try SequencePause.pause($0, name: name) }
    }

    public func resumeSequence(_ name: String) async throws -> SequencePauseResult {
        try await database.run { try SequencePause.resume($0, name: name) }
    }

    /// Moves live enrollments of `name` to `toVersion`, or (`dryRun`) reports what would move.
    public func migrateSequence(
        _ name: String, toVersion: Int, map: [String: String], dryRun: Bool,
        progress: (@Sendable (_ done: Int, _ total: Int) throws -> Void)?
    ) async throws -> SequenceMigrationReport {
        let actor = actor.name
        return try await database.run {
            try SequenceMigration.migrate(
                $0, sequence: name, toVersion: toVersion, map: map, dryRun: dryRun, actor: actor, progress: progress)
        }
    }

    /// What `seqd sequence preview` renders from: the version, the contact and the secrets.
    public func previewContext(sequence: String, contact: String, version: Int?) async throws -> SequencePreviewContext {
        try await database.run { try SequencePreview.load($0, sequence: sequence, contact: contact, version: version) }
    }

    /// What `seqd simulate` starts from: latest version, the contact, the database's clock.
    public func simulationStart(sequence: String, contact: String) async throws -> SimulationStart {
        try await database.run { try SimulationStart.load($0, sequence: sequence, email: contact) }
    }
}
