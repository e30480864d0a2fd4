import SequenceEngine
import SequenceStore

/// What operators and probes read: status, invariant checks, results, progress, gauges, the schema, and
/// the maintenance actions on it (migrate, prune).
extension Operations {
    /// Enrollment counts per sequence, step and status, and the due backlog.
    public func status(sequence: String?, longTransactionWarning: Double) async throws -> StatusReport {
        try await database.run { try StatusReport.load(from: $0, sequence: sequence, longTransactionWarning: longTransactionWarning) }
    }

    /// The invariant checks of design.md §3, each with up to `limit` violations.
    public func check(leaseGraceSeconds: Int, limit: Int) async throws -> [InvariantCheck.Result] {
        try await database.run { try InvariantCheck.run($0, leaseGraceSeconds: leaseGraceSeconds, limit: limit) }
    }

    /// `seqd report`: a sequence's emails per step and variant, sent since `since` (a day in the
    /// sequence's zone; nil: all time), with their outcomes and clicks.
    public func stepResults(sequence: String, since: LocalDate?) async throws -> StepResults {
        try await database.run { try StepResults.load($0, sequence: sequence, sinceDate: since) }
    }

    /// How far `seqd run --until-idle` has come.
    public func runProgress(sequence: String?) async throws -> RunProgress {
        try await database.run { try RunProgress.load($0, sequence: sequence) }
    }

    /// The SQL gauges behind `/metrics`.
    public func gauges() async throws -> DatabaseGauges {
        try await database.run { try DatabaseGauges.load($0) }
    }

    /// The applied schema version, or nil when seqd's schema is absent (`/readyz`).
    public func schemaVersion() async throws -> Int? {
        try await database.run { try SchemaCheck.appliedVersion($0) }
    }

    /// The event webhook's queue (`seqd event-webhook status`).
    public func eventWebhookStatus() async throws -> EventWebhookStatus {
        try await database.run { try EventWebhookStatus.load($0) }
    }

    /// The SQL `migrate` would run, without running it.
    public func pendingMigrationSQL() async throws -> String {
        try await database.run { try Migrator(connection: $0).pendingSQL() }
    }

    /// Applies pending schema migrations; generates the stored secrets that are not configured.
    public func migrate(unsubscribeSecretConfigured: Bool, webhookSecretConfigured: Bool) async throws -> Migrator.Report {
        try await database.run {
            try Migrator(connection: $0).migrate(
                unsubscribeSecretConfigured: unsubscribeSecretConfigured, webhookSecretConfigured: webhookSecretConfigured)
        }
    }

    /// Removes finished enrollments and old deliveries past the horizon, or counts them (`dryRun`).
    public func prune(
        olderThanSeconds: Int, dryRun: Bool, progress: (@Sendable (_ done: Int64, _ total: Int64) throws -> Void)?
    ) async throws -> Retention.Summary {
        try await database.run { try Retention.prune($0, olderThanSeconds: olderThanSeconds, dryRun: dryRun, progress: progress) }
    }
}
