import Foundation
import Postgres
import SequenceStore
import Testing
import TestSupport

@Suite("migrations")
struct MigrationTests {
    @Test("three concurrent migrations all succeed and apply each file once")
    func concurrentMigrations() async throws {
        let url = try await TestDatabase.shared.makeEmptyDatabase(prefix: "migrate_concurrent")
        let reports = try await withThrowingTaskGroup(of: Migrator.Report.self) { group in
            for index in 0..<3 {
                group.addTask {
                    try await ConfinedConnection(url, label: "migrator-\(index)").run { connection in
                        try Migrator(connection: connection).migrate()
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.count == 3)
        #expect(reports.map(\.applied.count).sorted() == [0, 0, Migrations.all.count])
        #expect(reports.filter(\.generatedUnsubscribeSecret).count == 1)
        let connection = try Connection(url)
        let versions = try connection.query("SELECT version FROM seqd.schema_migrations ORDER BY version").rows
            .map { try $0.decode("version", as: Int.self) }
        #expect(versions == Migrations.all.map(\.version))
        let secrets = try connection.query("SELECT value FROM seqd.settings WHERE name = 'unsubscribe.secret'").rows
        #expect(secrets.count == 1)
        #expect(try secrets[0].decode("value", as: String.self).count == 64)
    }

    @Test("a changed applied migration is refused with a clear message")
    func changedMigrationRefused() async throws {
        let url = try await TestDatabase.shared.makeEmptyDatabase(prefix: "migrate_changed")
        let connection = try Connection(url)
        _ = try Migrator(connection: connection).migrate()
        let first = Migrations.all[0]
        let edited = Migration(version: first.version, name: first.name, sql: first.sql + "\n-- edited")
        let error = #expect(throws: Migrator.RefusedError.self) {
            try Migrator(connection: connection, migrations: [edited]).migrate()
        }
        #expect(error?.description.contains("0001_schema was applied with checksum") == true)
        #expect(error?.description.contains("must never change") == true)
    }

    @Test("a configured unsubscribe secret is not replaced by a generated one")
    func configuredSecretIsNotGenerated() async throws {
        let url = try await TestDatabase.shared.makeEmptyDatabase(prefix: "migrate_secret")
        let connection = try Connection(url)
        let report = try Migrator(connection: connection).migrate(unsubscribeSecretConfigured: true)
        #expect(report.generatedUnsubscribeSecret == false)
        #expect(try connection.query("SELECT 1 FROM seqd.settings WHERE name = 'unsubscribe.secret'").count == 0)
    }

    @Test("--print shows pending SQL before, and nothing after, migrating")
    func printPending() async throws {
        let url = try await TestDatabase.shared.makeEmptyDatabase(prefix: "migrate_print")
        let connection = try Connection(url)
        let before = try Migrator(connection: connection).pendingSQL()
        #expect(before.contains("-- 0001_schema"))
        #expect(before.contains("CREATE TABLE seqd.enrollments"))
        // Printing changes nothing.
        #expect(try connection.query("SELECT to_regclass('seqd.enrollments') AS t")[0].text("t") == nil)
        _ = try Migrator(connection: connection).migrate()
        #expect(try Migrator(connection: connection).pendingSQL().isEmpty)
    }

    @Test("a migration marked no-transaction runs outside a transaction")
    func noTransactionMigration() async throws {
        let url = try await TestDatabase.shared.makeEmptyDatabase(prefix: "migrate_notx")
        let connection = try Connection(url)
        let concurrently = Migration(
            version: 999, name: "concurrent_index",
            sql: "-- seqd:no-transaction\nCREATE INDEX CONCURRENTLY contacts_first_name ON seqd.contacts (first_name);")
        #expect(concurrently.isTransactional == false)
        let report = try Migrator(connection: connection, migrations: Migrations.all + [concurrently]).migrate()
        #expect(report.applied.last == "0999_concurrent_index")
        #expect(try connection.query("SELECT to_regclass('seqd.contacts_first_name') AS t")[0].text("t") != nil)
    }
}
