import ArgumentParser
import Foundation
import SeqdApplication
import SeqdConfig
import SequenceStore

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or upgrade the seqd schema.",
        discussion: """
            Safe to run from several processes at once: an advisory lock serialises them and the later ones \
            find nothing to do. Refuses to continue if a migration that was already applied has changed.

            Examples:
              seqd migrate
              seqd migrate --print        # show the SQL that would run, change nothing
              DATABASE_URL=postgresql://seqd_owner@db/seqd seqd migrate
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the SQL of pending migrations instead of applying them.")
    var print = false

    func run() async throws {
        let configuration = try await global.loadConfiguration()
        let operations = configuration.operations("migrate")
        if print {
            let sql = try await operations.pendingMigrationSQL()
            Swift.print(sql.isEmpty ? "-- nothing to apply: the schema is up to date" : sql)
            return
        }
        let report = try await operations.migrate(
            unsubscribeSecretConfigured: configuration.string("unsubscribe.secret") != nil,
            webhookSecretConfigured: configuration.string("webhook.secret") != nil)
        for file in report.applied { Swift.print("applied \(file)") }
        if report.applied.isEmpty {
            Swift.print("schema is up to date (version \(Migrations.latestVersion))")
        }
        if report.generatedUnsubscribeSecret {
            Swift.print("generated the unsubscribe secret and stored it in seqd.settings")
        }
    }
}
