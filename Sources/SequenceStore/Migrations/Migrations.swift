import Foundation
import Postgres

/// One numbered schema change. The SQL ships inside the binary; `seqd migrate --print` shows it.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// Files marked `-- seqd:no-transaction` (for `CREATE INDEX CONCURRENTLY`) run outside a
    /// transaction; everything else runs in one transaction per file.
    public var isTransactional: Bool { !sql.contains("-- seqd:no-transaction") }

    /// `0001_schema`, as operators see it in `seqd.schema_migrations`.
    public var fileName: String { String(format: "%04d_%@", version, name) }
}

/// The ordered list of every migration this binary knows.
public enum Migrations {
    public static let all: [Migration] = [
        schema, views, privacy, senderLimits, suppressionCheck, leastPrivilege, operationsAtSize, historyIndex,
        dropEventsIndex, throttledAttempts, webhookSteps, eventWebhooks,
        convertedStatus, triggersGoals, variantsClicksResults,
    ]

    /// The newest schema version this binary knows.
    public static var latestVersion: Int { all.last!.version }

    /// The oldest schema this binary can work with. Newer schemas are accepted: migrations only
    /// add (expand), so a rolling upgrade that migrates first keeps old replicas serving. A
    /// migration that removes something old binaries use must raise this in those binaries first.
    ///
    /// 6: contact erasure scrubs append-only rows through `seqd.erase_contact_history`, which
    /// 0006 adds; before it, this binary's erasure would fail. Migrating first is the documented
    /// upgrade order, so replicas of this binary wait (`/readyz` 503) until it has run.
    /// 10: this binary records `throttled` attempts, which older schemas' CHECK refuses.
    /// 11: this binary reads and writes `enrollments.step_data`.
    /// 14: this binary reads `enrollments.event_properties` in every claim and records events in
    /// `seqd.events`; the status `converted` and its transitions must exist before a goal is met.
    /// 15: this binary writes `deliveries.variant` and records clicks in `seqd.clicks`.
    public static let minimumVersion = 15
}
