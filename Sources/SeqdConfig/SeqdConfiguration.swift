// SeqdConfig: where every setting comes from. It layers flags > environment (`SEQD_` + upper-snake
// key, `DATABASE_URL` first, `SEQD_<KEY>_FILE` for secrets) > the YAML file > defaults with
// apple/swift-configuration's providers, validates each value against `ConfigKey.all`, and remembers
// which layer supplied it so errors and `seqd config check` can say so.
import Configuration
import Foundation
import SequenceEngine
import SystemPackage
import Yams

/// Where a value came from.
public enum ConfigSource: Sendable, Equatable, CustomStringConvertible {
    case flag(String)
    case environment(String)
    case secretFile(variable: String, path: String)
    case file(String)
    case defaultValue

    public var description: String {
        switch self {
        case .flag(let flag): "flag \(flag)"
        case .environment(let name): "environment \(name)"
        case .secretFile(let variable, let path): "environment \(variable) (file \(path))"
        case .file(let path): "file \(path)"
        case .defaultValue: "default"
        }
    }
}

/// A configuration problem, naming the key, where the bad value came from and what is allowed.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public let key: String?
    public let source: ConfigSource?
    public let message: String
    /// The named configuration file does not exist (exit 66 rather than 65).
    public let isMissingFile: Bool

    init(key: String? = nil, source: ConfigSource? = nil, message: String, isMissingFile: Bool = false) {
        self.key = key
        self.source = source
        self.message = message
        self.isMissingFile = isMissingFile
    }

    public var description: String {
        switch (key, source) {
        case (let key?, let source?): "configuration key \(key) (from \(source)): \(message)"
        case (let key?, nil): "configuration key \(key): \(message)"
        case (nil, let source?): "configuration (\(source)): \(message)"
        case (nil, nil): message
        }
    }
}

/// A key's effective value and its origin.
public struct ResolvedValue: Sendable {
    public let key: ConfigKey
    /// nil when unset at every layer and without default.
    public let value: String?
    public let source: ConfigSource

    /// The value as printed: secrets are never shown.
    public var displayValue: String {
        guard let value else { return "(unset)" }
        if key.isSecret { return "<redacted>" }
        if case .url = key.kind { return Self.redactingURL(value) }
        return value
    }

    /// A URL without what may carry a credential: the query string (an API key in
    /// `?key=…`), the fragment and a password in the user information.
    static func redactingURL(_ value: String) -> String {
        var shown = value
        if let mark = shown.firstIndex(where: { $0 == "?" || $0 == "#" }) { shown = String(shown[..<mark]) + "?<redacted>" }
        if let scheme = shown.range(of: "://") {
            let authorityEnd = shown[scheme.upperBound...].firstIndex { $0 == "/" || $0 == "?" } ?? shown.endIndex
            let authority = shown[scheme.upperBound..<authorityEnd]
            if let at = authority.lastIndex(of: "@") {
                let user = authority[..<at].split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
                shown.replaceSubrange(scheme.upperBound..<at, with: user + ":<redacted>")
            }
        }
        return shown
    }
}

/// The effective, validated configuration.
public struct SeqdConfiguration: Sendable {
    /// Every key in `ConfigKey.all` order.
    public let resolved: [ResolvedValue]
    /// The configuration file that was read, if any.
    public let filePath: String?

    /// The default file, read when present and no `--config` is given.
    public static let defaultFilePath = "Config/seqd.yaml"

    /// Loads and validates every key.
    /// - Parameters:
    ///   - flags: values given on the command line, by key name, with the flag that set each.
    ///   - environment: the process environment.
    ///   - configFile: `--config`; when nil, `Config/seqd.yaml` is read if present.
    public static func load(
        flags: [String: (value: String, flag: String)] = [:],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        configFile: String? = nil
    ) async throws(ConfigError) -> SeqdConfiguration {
        for name in flags.keys where ConfigKey.named(name) == nil {
            throw ConfigError(key: name, source: .flag(flags[name]!.flag), message: "unknown configuration key")
        }
        let filePath = try resolveFilePath(configFile)
        let layers = try await makeLayers(flags: flags, environment: environment, filePath: filePath)
        var resolved = [ResolvedValue]()
        for key in ConfigKey.all {
            let (value, source) = try lookup(key, in: layers)
            if let value, let problem = key.validate(value) {
                throw ConfigError(key: key.name, source: source, message: problem)
            }
            resolved.append(ResolvedValue(key: key, value: value, source: source))
        }
        return SeqdConfiguration(resolved: resolved, filePath: filePath)
    }

    /// The effective value of `name` (a key of `ConfigKey.all`), or nil when unset.
    public func string(_ name: String) -> String? {
        guard let entry = resolved.first(where: { $0.key.name == name }) else {
            preconditionFailure("unknown configuration key \(name)")
        }
        return entry.value
    }

    /// A validated duration key, in seconds.
    public func seconds(_ name: String) -> Int {
        (try? WaitDuration.parseConfigDuration(string(name) ?? "0")) ?? 0
    }

    /// A validated integer key.
    public func integer(_ name: String) -> Int? { string(name).flatMap(Int.init) }

    /// `inbound.authserv_id` when `inbound.trust_from` is on (the From fallback needs it), nil when
    /// the fallback is off.
    public func trustedAuthservID() throws(ConfigError) -> String? {
        guard string("inbound.trust_from") == "true" else { return nil }
        guard let id = string("inbound.authserv_id")?.trimmingCharacters(in: .whitespaces), !id.isEmpty else {
            throw ConfigError(
                key: "inbound.trust_from",
                message: "is true but inbound.authserv_id is unset: name your own MTA's authserv-id (the first word of the Authentication-Results header it adds)")
        }
        return id
    }

    /// The libpq connection string: empty means libpq's `PG*` environment.
    public var databaseURL: String { string("database.url") ?? "" }

    // MARK: Layers

    private struct Layer {
        let provider: any ConfigProvider
        /// Only some keys are read from this layer (DATABASE_URL only answers for database.url).
        let answers: (ConfigKey) -> Bool
        let source: (LookupResult) -> ConfigSource
    }

    private static func resolveFilePath(_ configFile: String?) throws(ConfigError) -> String? {
        if let configFile {
            guard FileManager.default.fileExists(atPath: configFile) else {
                throw ConfigError(message: "configuration file \(configFile) does not exist", isMissingFile: true)
            }
            return configFile
        }
        return FileManager.default.fileExists(atPath: defaultFilePath) ? defaultFilePath : nil
    }

    private static func makeLayers(
        flags: [String: (value: String, flag: String)], environment: [String: String], filePath: String?
    ) async throws(ConfigError) -> [Layer] {
        let secretNames = Set(ConfigKey.all.filter(\.isSecret).map(\.environmentName) + ["DATABASE_URL"])
        var layers = [Layer]()

        let flagValues = Dictionary(
            uniqueKeysWithValues: flags.map { name, entry in
                (AbsoluteConfigKey(name.split(separator: ".").map(String.init)), ConfigValue(.string(entry.value), isSecret: false))
            })
        layers.append(
            Layer(
                provider: InMemoryProvider(name: "flags", values: flagValues), answers: { _ in true },
                source: { result in .flag(flags.first { $0.key.split(separator: ".").joined(separator: ".") == result.encodedKey }?.value.flag ?? result.encodedKey) }))

        // DATABASE_URL (the convention of most platforms) wins over SEQD_DATABASE_URL.
        layers.append(
            Layer(
                provider: EnvironmentVariablesProvider(
                    environmentVariables: environment.filter { $0.key == "DATABASE_URL" }, secretsSpecifier: .all),
                answers: { $0.name == "database.url" }, source: { .environment($0.encodedKey) }))

        layers.append(
            Layer(
                provider: EnvironmentVariablesProvider(
                    environmentVariables: environment.filter { $0.key.hasPrefix("SEQD_") },
                    secretsSpecifier: .specific(secretNames)
                ).prefixKeys(with: ConfigKey_("seqd")),
                answers: { _ in true }, source: { .environment($0.encodedKey) }))

        var secretFileValues = [AbsoluteConfigKey: ConfigValue]()
        var secretFileSources = [String: ConfigSource]()
        for key in ConfigKey.all where key.isSecret {
            let variable = key.environmentName + "_FILE"
            guard let path = environment[variable] else { continue }
            if environment[key.environmentName] != nil {
                throw ConfigError(
                    key: key.name, source: .environment(variable),
                    message: "both \(key.environmentName) and \(variable) are set; set only one")
            }
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
            else {
                throw ConfigError(
                    key: key.name, source: .environment(variable), message: "cannot read the secret file \(path)")
            }
            // Files written by editors and `echo` end with a newline that is not part of the secret.
            let secret = text.hasSuffix("\r\n") ? String(text.dropLast(2)) : text.hasSuffix("\n") ? String(text.dropLast()) : text
            let configKey = AbsoluteConfigKey(key.name.split(separator: ".").map(String.init))
            secretFileValues[configKey] = ConfigValue(.string(secret), isSecret: true)
            secretFileSources[configKey.description] = .secretFile(variable: variable, path: path)
        }
        layers.append(
            Layer(
                provider: InMemoryProvider(name: "secret files", values: secretFileValues), answers: { _ in true },
                source: { secretFileSources[$0.encodedKey] ?? .environment($0.encodedKey) }))

        if let filePath {
            try checkFileKeys(filePath)
            do {
                let provider = try await FileProvider<YAMLSnapshot>(filePath: FilePath(filePath))
                layers.append(Layer(provider: provider, answers: { _ in true }, source: { _ in .file(filePath) }))
            } catch {
                throw ConfigError(source: .file(filePath), message: "cannot read it: \(error)")
            }
        }

        let defaults = Dictionary(
            uniqueKeysWithValues: ConfigKey.all.compactMap { key in
                key.defaultValue.map {
                    (AbsoluteConfigKey(key.name.split(separator: ".").map(String.init)), ConfigValue(.string($0), isSecret: false))
                }
            })
        layers.append(
            Layer(provider: InMemoryProvider(name: "defaults", values: defaults), answers: { _ in true }, source: { _ in .defaultValue }))
        return layers
    }

    private static func lookup(_ key: ConfigKey, in layers: [Layer]) throws(ConfigError) -> (String?, ConfigSource) {
        let configKey = AbsoluteConfigKey(key.name.split(separator: ".").map(String.init))
        for layer in layers where layer.answers(key) {
            let result: LookupResult
            do {
                result = try layer.provider.value(forKey: configKey, type: .string)
            } catch {
                let source = layer.source(LookupResult(encodedKey: key.name, value: nil))
                throw ConfigError(key: key.name, source: source, message: "expected a single value, not a list or a map")
            }
            guard let value = result.value, case .string(let text) = value.content else { continue }
            return (text, layer.source(result))
        }
        return (nil, .defaultValue)
    }

    /// Rejects keys the file sets that seqd does not know, so a typo never silently keeps a default.
    private static func checkFileKeys(_ path: String) throws(ConfigError) {
        let node: Node?
        do {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            node = try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(source: .file(path), message: "not valid YAML: \(error)")
        }
        guard let node else { return }
        guard let mapping = node.mapping else {
            throw ConfigError(source: .file(path), message: "the top level must be a mapping of keys")
        }
        var leaves = [String]()
        func walk(_ mapping: Node.Mapping, prefix: String) {
            for (keyNode, value) in mapping where value.null == nil {  // a section left all commented out
                let name = prefix.isEmpty ? (keyNode.string ?? "?") : "\(prefix).\(keyNode.string ?? "?")"
                if let nested = value.mapping { walk(nested, prefix: name) } else { leaves.append(name) }
            }
        }
        walk(mapping, prefix: "")
        if let unknown = leaves.first(where: { ConfigKey.named($0) == nil }) {
            throw ConfigError(key: unknown, source: .file(path), message: "unknown configuration key")
        }
    }
}

/// swift-configuration's key type, renamed here because seqd's own `ConfigKey` describes keys.
typealias ConfigKey_ = Configuration.ConfigKey

extension SeqdConfiguration {
    /// `delivery.max_attempts`, `delivery.backoff` and `delivery.on_unknown` as the engine's policy.
    public var deliveryPolicy: DeliveryPolicy {
        DeliveryPolicy(
            maxAttempts: integer("delivery.max_attempts") ?? 8, backoff: Double(seconds("delivery.backoff")),
            onUnknown: string("delivery.on_unknown") == "hold" ? .hold : .retry)
    }
}
