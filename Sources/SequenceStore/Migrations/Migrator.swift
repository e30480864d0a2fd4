import Crypto
import Foundation
import Postgres

/// Applies pending migrations safely from any number of processes at once.
///
/// A session advisory lock serialises migrators: the second waits, finds nothing to do, and
/// succeeds. Each applied file is recorded with a checksum, and a changed applied file is refused
/// rather than silently diverging from what the database holds.
public struct Migrator {
    /// What a `migrate` run did.
    public struct Report: Sendable {
        public var applied: [String] = []
        public var alreadyApplied: Int = 0
        public var generatedUnsubscribeSecret = false
    }

    /// Why migrating was refused.
    public struct RefusedError: Error, CustomStringConvertible {
        public let description: String
    }

    /// `hashtext('seqd.migrate')`, fixed so every binary version contends on the same lock.
    static let advisoryLockKey: Int64 = 0x5345_5144_4D49_4752

    let connection: Connection
    let migrations: [Migration]
    /// Longest wait for a lock that DDL needs, so a migration never queues behind a long
    /// transaction while blocking every query behind itself.
    let lockTimeoutMilliseconds: Int

    public init(connection: Connection, migrations: [Migration] = Migrations.all, lockTimeoutMilliseconds: Int = 10_000) {
        self.connection = connection
        self.migrations = migrations
        self.lockTimeoutMilliseconds = lockTimeoutMilliseconds
    }

    /// Applies what is pending. `unsubscribeSecretConfigured` and `webhookSecretConfigured` skip
    /// generating the stored secrets.
    public func migrate(unsubscribeSecretConfigured: Bool = false, webhookSecretConfigured: Bool = false) throws -> Report {
        // Polled, not waited for in one statement: a migrator blocked inside `pg_advisory_lock` is
        // a running transaction, and `CREATE INDEX CONCURRENTLY` in the migrator holding the lock
        // waits for every running transaction to end: a deadlock (seen with three concurrent
        // migrates and 0008). Between polls a waiter runs no transaction.
        while try !connection.query("SELECT pg_try_advisory_lock($1) AS locked", [Self.advisoryLockKey])[0]
            .decode("locked", as: Bool.self)
        {
            Thread.sleep(forTimeInterval: 0.05)
        }
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [Self.advisoryLockKey]) }

        try connection.execute(
            """
            CREATE SCHEMA IF NOT EXISTS seqd;
            CREATE TABLE IF NOT EXISTS seqd.schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now(),
                applied_by  text NOT NULL DEFAULT session_user
            );
            """)
        let applied = try verifyApplied()
        var report = Report()
        report.alreadyApplied = applied.count
        for migration in migrations where !applied.contains(migration.version) {
            try apply(migration)
            report.applied.append(migration.fileName)
        }
        if !unsubscribeSecretConfigured {
            report.generatedUnsubscribeSecret = try storeSettingIfMissing("unsubscribe.secret", randomHex(bytes: 32))
        }
        // Signs every request seqd makes to a webhook (`Seqd-Signature`), unless configured.
        if !webhookSecretConfigured {
            _ = try storeSettingIfMissing("webhook.secret", randomHex(bytes: 32))
        }
        // Part of every delivery key, so two installations sharing a sender domain never mint the
        // same Message-ID.
        _ = try storeSettingIfMissing("installation.id", randomHex(bytes: 4))
        return report
    }

    /// The SQL that `migrate` would run now, in order, for `seqd migrate --print`.
    public func pendingSQL() throws -> String {
        let exists = try connection.query("SELECT to_regclass('seqd.schema_migrations') IS NOT NULL AS present")[0]
            .decode("present", as: Bool.self)
        let applied = exists ? try verifyApplied() : []
        return migrations.filter { !applied.contains($0.version) }
            .map { "-- \($0.fileName)\($0.isTransactional ? "" : " (outside a transaction)")\n\($0.sql)\n" }
            .joined(separator: "\n")
    }

    /// The applied versions, after checking every applied file is still the one this binary has.
    private func verifyApplied() throws -> Set<Int> {
        let rows = try connection.query(
            "SELECT version, name, checksum FROM seqd.schema_migrations ORDER BY version")
        var versions = Set<Int>()
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for row in rows.rows {
            let version = try row.decode("version", as: Int.self)
            versions.insert(version)
            guard let migration = known[version] else { continue }  // newer binary applied it
            let stored = try row.decode("checksum", as: String.self)
            if stored != Self.checksum(migration.sql) {
                throw RefusedError(
                    description: """
                        migration \(migration.fileName) was applied with checksum \(stored) but this binary's \
                        copy has \(Self.checksum(migration.sql)); applied migrations must never change. \
                        Restore the original file and add a new migration instead.
                        """)
            }
        }
        return versions
    }

    private func apply(_ migration: Migration) throws {
        let record = "INSERT INTO seqd.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"
        let parameters: [any PostgresEncodable] = [migration.version, migration.name, Self.checksum(migration.sql)]
        if migration.isTransactional {
            try connection.transaction { connection in
                try connection.execute("SET LOCAL lock_timeout = \(lockTimeoutMilliseconds)")
                try connection.execute(migration.sql)
                try connection.query(record, parameters)
            }
        } else {
            try connection.execute("SET lock_timeout = \(lockTimeoutMilliseconds)")
            defer { _ = try? connection.execute("RESET lock_timeout") }
            try connection.execute(migration.sql)
            try connection.query(record, parameters)
        }
    }

    /// Stores a generated installation-wide value once; later runs keep the first one.
    private func storeSettingIfMissing(_ name: String, _ value: String) throws -> Bool {
        try connection.query(
            "INSERT INTO seqd.settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", [name, value]
        ).affectedRows == 1
    }

    /// Hex of `bytes` random bytes from getrandom(2), which is cryptographically secure on Linux.
    private func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }.joined()
    }

    /// SHA-256 of the file's text, hex-encoded.
    static func checksum(_ sql: String) -> String {
        SHA256.hash(data: Array(sql.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
