import Foundation
import SeqdConfig
import Testing
import Yams

@Suite("configuration layering and validation")
struct ConfigurationTests {
    /// A scratch YAML file holding `text`.
    func file(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "seqd-config-\(UUID().uuidString).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func load(
        flags: [String: (value: String, flag: String)] = [:], environment: [String: String] = [:], configFile: String? = nil
    ) async throws -> SeqdConfiguration {
        try await SeqdConfiguration.load(flags: flags, environment: environment, configFile: configFile)
    }

    @Test("defaults apply when nothing is set")
    func defaults() async throws {
        let configuration = try await load(configFile: try file("{}\n"))
        #expect(configuration.string("worker.batch_size") == "100")
        #expect(configuration.seconds("worker.poll_interval") == 1)
        #expect(configuration.seconds("inbound.ooo_resume_after") == 7 * 86_400)
        #expect(configuration.string("delivery.transport") == "file")
        #expect(configuration.string("http.port") == nil)
        #expect(configuration.databaseURL == "")
        let source = configuration.resolved.first { $0.key.name == "worker.batch_size" }?.source
        #expect(source == .defaultValue)
    }

    @Test("flags beat the environment, which beats the file, which beats the default")
    func precedence() async throws {
        let path = try file("worker:\n  batch_size: 30\n  concurrency: 3\n  poll_interval: 5\n")
        let environment = ["SEQD_WORKER_BATCH_SIZE": "20", "SEQD_WORKER_CONCURRENCY": "4"]
        let configuration = try await load(
            flags: ["worker.batch_size": ("10", "--set worker.batch_size")], environment: environment, configFile: path)
        func entry(_ name: String) -> ResolvedValue? { configuration.resolved.first { $0.key.name == name } }
        #expect(entry("worker.batch_size")?.value == "10")
        #expect(entry("worker.batch_size")?.source == .flag("--set worker.batch_size"))
        #expect(entry("worker.concurrency")?.value == "4")
        #expect(entry("worker.concurrency")?.source == .environment("SEQD_WORKER_CONCURRENCY"))
        #expect(entry("worker.poll_interval")?.value == "5")
        #expect(entry("worker.poll_interval")?.source == .file(path))
        #expect(configuration.seconds("worker.poll_interval") == 5)
        #expect(entry("worker.shutdown_grace")?.source == .defaultValue)
    }

    @Test("DATABASE_URL wins over SEQD_DATABASE_URL, and a flag wins over both")
    func databaseURL() async throws {
        let environment = ["DATABASE_URL": "postgresql:///a", "SEQD_DATABASE_URL": "postgresql:///b"]
        let fromEnvironment = try await load(environment: environment, configFile: try file("{}\n"))
        #expect(fromEnvironment.databaseURL == "postgresql:///a")
        let onlySeqd = try await load(environment: ["SEQD_DATABASE_URL": "postgresql:///b"], configFile: try file("{}\n"))
        #expect(onlySeqd.databaseURL == "postgresql:///b")
        let fromFlag = try await load(
            flags: ["database.url": ("postgresql:///c", "--database-url")], environment: environment,
            configFile: try file("{}\n"))
        #expect(fromFlag.databaseURL == "postgresql:///c")
    }

    @Test("a secret comes from SEQD_<KEY>_FILE without its trailing newline and is never printed")
    func secretFiles() async throws {
        let secretPath = try file("s3cr3t-password\n")
        let configuration = try await load(
            environment: ["SEQD_DELIVERY_SMTP_PASSWORD_FILE": secretPath], configFile: try file("{}\n"))
        #expect(configuration.string("delivery.smtp.password") == "s3cr3t-password")
        let entry = try #require(configuration.resolved.first { $0.key.name == "delivery.smtp.password" })
        #expect(entry.displayValue == "<redacted>")
        #expect(entry.source == .secretFile(variable: "SEQD_DELIVERY_SMTP_PASSWORD_FILE", path: secretPath))
        let both = await #expect(throws: ConfigError.self) {
            try await load(
                environment: ["SEQD_DELIVERY_SMTP_PASSWORD_FILE": secretPath, "SEQD_DELIVERY_SMTP_PASSWORD": "x"],
                configFile: try file("{}\n"))
        }
        #expect(both?.description.contains("set only one") == true)
        let unreadable = await #expect(throws: ConfigError.self) {
            try await load(environment: ["SEQD_HTTP_API_TOKEN_FILE": "/nonexistent/token"], configFile: try file("{}\n"))
        }
        #expect(unreadable?.description == "configuration key http.api_token (from environment SEQD_HTTP_API_TOKEN_FILE): cannot read the secret file /nonexistent/token")
    }

    @Test("config check shows URLs without their query string, fragment or password")
    func urlsRedacted() async throws {
        let configuration = try await load(
            environment: [
                "SEQD_DELIVERY_HTTP_URL": "https://api.mail.example/v3/send?key=sk_live_123&region=eu",
                "SEQD_UNSUBSCRIBE_BASE_URL": "https://user:hunter2@seqd.example.com/base#frag",
            ],
            configFile: try file("{}\n"))
        let http = try #require(configuration.resolved.first { $0.key.name == "delivery.http.url" })
        #expect(http.displayValue == "https://api.mail.example/v3/send?<redacted>")
        #expect(http.value?.contains("sk_live_123") == true, "the value itself is unchanged")
        let base = try #require(configuration.resolved.first { $0.key.name == "unsubscribe.base_url" })
        #expect(base.displayValue == "https://user:<redacted>@seqd.example.com/base?<redacted>")
        #expect(!base.displayValue.contains("hunter2"))
    }

    @Test("inbound.trust_from needs inbound.authserv_id")
    func trustFromNeedsAuthservID() async throws {
        let off = try await load(configFile: try file("{}\n"))
        #expect(try off.trustedAuthservID() == nil)
        let on = try await load(environment: ["SEQD_INBOUND_TRUST_FROM": "true", "SEQD_INBOUND_AUTHSERV_ID": "mx.example.com"], configFile: try file("{}\n"))
        #expect(try on.trustedAuthservID() == "mx.example.com")
        let missing = try await load(environment: ["SEQD_INBOUND_TRUST_FROM": "true"], configFile: try file("{}\n"))
        #expect(throws: ConfigError.self) { try missing.trustedAuthservID() }
    }

    @Test("an invalid value names the key, where it came from, and what is allowed")
    func invalidValues() async throws {
        let fromEnvironment = await #expect(throws: ConfigError.self) {
            try await load(environment: ["SEQD_WORKER_BATCH_SIZE": "lots"], configFile: try file("{}\n"))
        }
        #expect(fromEnvironment?.description == "configuration key worker.batch_size (from environment SEQD_WORKER_BATCH_SIZE): 'lots' is not a whole number above 0")
        let path = try file("delivery:\n  transport: pigeon\n")
        let fromFile = await #expect(throws: ConfigError.self) { try await load(configFile: path) }
        #expect(fromFile?.description == "configuration key delivery.transport (from file \(path)): 'pigeon' is not one of: file, smtp, http, null")
        let duration = await #expect(throws: ConfigError.self) {
            try await load(flags: ["worker.poll_interval": ("2 business days", "--set worker.poll_interval")], configFile: try file("{}\n"))
        }
        #expect(duration?.key == "worker.poll_interval")
        #expect(duration?.source == .flag("--set worker.poll_interval"))
        let url = await #expect(throws: ConfigError.self) {
            try await load(environment: ["SEQD_DELIVERY_SMTP_URL": "mail.example.com:25"], configFile: try file("{}\n"))
        }
        #expect(url?.description.contains("smtp:// or smtps://") == true)
    }

    @Test("unknown keys in the file or on the command line are rejected, not ignored")
    func unknownKeys() async throws {
        let path = try file("worker:\n  batchsize: 5\n")
        let typo = await #expect(throws: ConfigError.self) { try await load(configFile: path) }
        #expect(typo?.description == "configuration key worker.batchsize (from file \(path)): unknown configuration key")
        let flag = await #expect(throws: ConfigError.self) {
            try await load(flags: ["worker.nope": ("1", "--set worker.nope")], configFile: try file("{}\n"))
        }
        #expect(flag?.key == "worker.nope")
    }

    @Test("a missing --config file is reported as a missing input (exit 66), bad YAML as bad data")
    func fileErrors() async throws {
        let missing = await #expect(throws: ConfigError.self) { try await load(configFile: "/nonexistent/seqd.yaml") }
        #expect(missing?.isMissingFile == true)
        let broken = await #expect(throws: ConfigError.self) { try await load(configFile: try file("worker: [unclosed\n")) }
        #expect(broken?.isMissingFile == false)
        #expect(broken?.description.contains("not valid YAML") == true)
    }

    @Test("Config/seqd.yaml documents exactly the known keys, with their defaults and no secrets")
    func shippedFileMatchesTheTable() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let path = root.appendingPathComponent("Config/seqd.yaml").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        // The file loads cleanly and changes no default.
        let configuration = try await load(configFile: path)
        for entry in configuration.resolved {
            #expect(entry.value == entry.key.defaultValue, "\(entry.key.name) differs from its default")
        }
        // Every key is documented, set or commented out (unset and secret keys).
        for key in ConfigKey.all {
            let leaf = key.name.split(separator: ".").last!
            #expect(text.contains("\(leaf):"), "Config/seqd.yaml does not mention \(key.name)")
            if key.isSecret { #expect(text.contains("# \(leaf):"), "secret \(key.name) must stay commented out") }
        }
    }
}
