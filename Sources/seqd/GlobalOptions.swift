import ArgumentParser
import Foundation
import SeqdConfig

/// Options every command accepts: where configuration comes from and the flag layer on top of it.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: ArgumentHelp("Configuration file.", valueName: "file"))
    var configFile: String?

    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp("libpq connection string or URI (flag layer for database.url).", valueName: "url"))
    var databaseURL: String?

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp("Set any configuration key, e.g. --set worker.batch_size=50 (repeatable).", valueName: "key=value"))
    var settings: [String] = []

    /// Loads the layered configuration with these flags on top.
    func loadConfiguration() async throws -> SeqdConfiguration {
        var flags = [String: (value: String, flag: String)]()
        for setting in settings {
            guard let equals = setting.firstIndex(of: "=") else {
                throw ValidationError("--set expects key=value, got '\(setting)'")
            }
            let key = String(setting[..<equals])
            flags[key] = (String(setting[setting.index(after: equals)...]), "--set \(key)")
        }
        if let databaseURL { flags["database.url"] = (databaseURL, "--database-url") }
        return try await SeqdConfiguration.load(flags: flags, configFile: configFile)
    }
}
