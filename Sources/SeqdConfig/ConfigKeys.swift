import SequenceEngine

/// One configuration key: its name, default, whether it is a secret, and what values it allows.
///
/// This table is the single reference for every key; `Config/seqd.yaml` mirrors it and a test
/// checks that the file lists exactly these keys with these defaults.
public struct ConfigKey: Sendable {
    /// What values a key accepts; each kind validates and explains itself.
    public enum Kind: Sendable {
        case text
        /// A connection string, handed to libpq untouched.
        case connectionString
        /// The sequence duration grammar (`90s`, `5m`), or a bare number of seconds.
        case duration
        case positiveInteger
        /// A number above 0, fractions allowed (`0.5` messages a second).
        case positiveNumber
        case port
        case choice([String])
        /// An absolute URL whose scheme is one of these.
        case url(schemes: [String])
        case emailAddress
    }

    /// Dotted name, e.g. `worker.batch_size`.
    public let name: String
    /// The value used when no layer sets one; nil means "unset" (the feature stays off).
    public let defaultValue: String?
    public let kind: Kind
    /// Secrets are redacted when printed and may come from `SEQD_<KEY>_FILE`.
    public let isSecret: Bool
    /// One line for `Config/seqd.yaml` and `seqd config check`.
    public let help: String

    /// `SEQD_` + the key in upper snake case: `worker.batch_size` → `SEQD_WORKER_BATCH_SIZE`.
    public var environmentName: String {
        "SEQD_" + name.uppercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined()
    }

    /// Checks `value`; the error text says what is allowed.
    func validate(_ value: String) -> String? {
        switch kind {
        case .text, .connectionString:
            return nil
        case .duration:
            do {
                _ = try WaitDuration.parseConfigDuration(value)
                return nil
            } catch {
                return "\(error) — or a bare number of seconds"
            }
        case .positiveInteger:
            guard let number = Int(value), number > 0 else { return "'\(value)' is not a whole number above 0" }
            return nil
        case .positiveNumber:
            guard let number = Double(value), number > 0, number.isFinite else { return "'\(value)' is not a number above 0" }
            return nil
        case .port:
            guard let port = Int(value), (1...65_535).contains(port) else {
                return "'\(value)' is not a port number (1–65535)"
            }
            return nil
        case .choice(let options):
            return options.contains(value)
                ? nil : "'\(value)' is not one of: \(options.joined(separator: ", "))"
        case .url(let schemes):
            guard let colon = value.firstIndex(of: ":"), schemes.contains(String(value[..<colon]).lowercased()),
                value[colon...].hasPrefix("://"), value.count > value.distance(from: value.startIndex, to: colon) + 3
            else {
                return "'\(value)' is not a URL starting with \(schemes.map { "\($0)://" }.joined(separator: " or "))"
            }
            return nil
        case .emailAddress:
            let parts = value.split(separator: "@", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !value.contains(where: \.isWhitespace)
            else { return "'\(value)' is not an email address" }
            return nil
        }
    }
}

extension ConfigKey {
    /// Every key seqd reads, in the order `Config/seqd.yaml` documents them.
    public static let all: [ConfigKey] = [
        ConfigKey(
            name: "database.url", defaultValue: nil, kind: .connectionString, isSecret: true,
            help: "libpq connection string or URI; unset uses libpq's PG* environment. DATABASE_URL wins over SEQD_DATABASE_URL"),
        ConfigKey(
            name: "worker.poll_interval", defaultValue: "1s", kind: .duration, isSecret: false,
            help: "how often the daemon looks for due work when idle (jittered)"),
        ConfigKey(
            name: "worker.batch_size", defaultValue: "100", kind: .positiveInteger, isSecret: false,
            help: "enrollments claimed per transaction"),
        ConfigKey(
            name: "worker.concurrency", defaultValue: "2", kind: .positiveInteger, isSecret: false,
            help: "advancing connections per process"),
        ConfigKey(
            name: "worker.shutdown_grace", defaultValue: "20s", kind: .duration, isSecret: false,
            help: "time to finish in-flight work on SIGTERM"),
        ConfigKey(
            name: "worker.long_transaction_warning", defaultValue: "30s", kind: .duration, isSecret: false,
            help: "warn (log, seqd status) when another session holds a transaction open this long; 0 = never"),
        ConfigKey(
            name: "delivery.transport", defaultValue: "file", kind: .choice(["file", "smtp", "http", "null"]),
            isSecret: false, help: "file, smtp, http or null"),
        ConfigKey(
            name: "delivery.concurrency", defaultValue: "16", kind: .positiveInteger, isSecret: false,
            help: "concurrent transport sessions (SMTP/HTTP connections) per process; not database connections"),
        ConfigKey(
            name: "delivery.rate_limit", defaultValue: nil, kind: .positiveNumber, isSecret: false,
            help: "messages per second per process, for a relay's quota; a throttling reply slows it further"),
        ConfigKey(
            name: "delivery.lease_timeout", defaultValue: "30s", kind: .duration, isSecret: false,
            help: "after which a delivery still 'sending' becomes 'unknown'"),
        ConfigKey(
            name: "delivery.max_attempts", defaultValue: "8", kind: .positiveInteger, isSecret: false,
            help: "attempts before a delivery is 'failed'"),
        ConfigKey(
            name: "delivery.backoff", defaultValue: "10s", kind: .duration, isSecret: false,
            help: "first retry delay (doubles, jittered, capped at 1h)"),
        ConfigKey(
            name: "delivery.on_unknown", defaultValue: "retry", kind: .choice(["retry", "hold"]), isSecret: false,
            help: "retry an ambiguous attempt with the same Message-ID, or hold it for an operator"),
        ConfigKey(
            name: "delivery.file.directory", defaultValue: "outbox", kind: .text, isSecret: false,
            help: "where the file transport writes one .eml per message"),
        ConfigKey(
            name: "delivery.smtp.url", defaultValue: nil, kind: .url(schemes: ["smtp", "smtps"]), isSecret: false,
            help: "smtp://host:port or smtps://host:port"),
        ConfigKey(
            name: "delivery.smtp.username", defaultValue: nil, kind: .text, isSecret: false,
            help: "AUTH user name"),
        ConfigKey(
            name: "delivery.smtp.password", defaultValue: nil, kind: .text, isSecret: true,
            help: "AUTH password (secret: prefer SEQD_DELIVERY_SMTP_PASSWORD_FILE)"),
        ConfigKey(
            name: "delivery.smtp.starttls", defaultValue: nil,
            kind: .choice(["required", "opportunistic", "off"]), isSecret: false,
            help: "required (default; opportunistic when the server is on loopback) or off"),
        ConfigKey(
            name: "delivery.smtp.messages_per_connection", defaultValue: "100", kind: .positiveInteger, isSecret: false,
            help: "messages one SMTP connection carries before the next one opens"),
        ConfigKey(
            name: "delivery.smtp.timeout", defaultValue: "30s", kind: .duration, isSecret: false,
            help: "connect and command timeout"),
        ConfigKey(
            name: "delivery.http.url", defaultValue: nil, kind: .url(schemes: ["http", "https"]), isSecret: false,
            help: "endpoint of the http transport"),
        ConfigKey(
            name: "delivery.http.token", defaultValue: nil, kind: .text, isSecret: true,
            help: "bearer token of the http transport (secret)"),
        ConfigKey(
            name: "unsubscribe.base_url", defaultValue: nil, kind: .url(schemes: ["http", "https"]), isSecret: false,
            help: "public base URL of the unsubscribe endpoint; required by the smtp and http transports"),
        ConfigKey(
            name: "unsubscribe.mailto", defaultValue: nil, kind: .emailAddress, isSecret: false,
            help: "optional mailto unsubscribe address"),
        ConfigKey(
            name: "unsubscribe.secret", defaultValue: nil, kind: .text, isSecret: true,
            help: "HMAC key for unsubscribe tokens; generated and stored at the first migrate when unset"),
        ConfigKey(
            name: "tracking.base_url", defaultValue: nil, kind: .url(schemes: ["http", "https"]), isSecret: false,
            help: "public base URL of the click endpoint (/c/) for sequences with tracking.clicks; unset uses unsubscribe.base_url"),
        ConfigKey(
            name: "http.host", defaultValue: "127.0.0.1", kind: .text, isSecret: false,
            help: "address of the HTTP listener"),
        ConfigKey(
            name: "http.port", defaultValue: nil, kind: .port, isSecret: false,
            help: "port of the HTTP listener; unset keeps it off"),
        ConfigKey(
            name: "http.api_token", defaultValue: nil, kind: .text, isSecret: true,
            help: "bearer token for the /v1 API (secret)"),
        ConfigKey(
            name: "inbound.ooo_resume_after", defaultValue: "7d", kind: .duration, isSecret: false,
            help: "how long an out-of-office reply pauses an enrollment"),
        ConfigKey(
            name: "inbound.trust_from", defaultValue: "false", kind: .choice(["true", "false"]), isSecret: false,
            help: "match replies without a verified Message-ID by their From address, only with DMARC pass from inbound.authserv_id"),
        ConfigKey(
            name: "inbound.authserv_id", defaultValue: nil, kind: .text, isSecret: false,
            help: "authserv-id of your own MTA's Authentication-Results header; required by inbound.trust_from"),
        ConfigKey(
            name: "webhook.allow_private_networks", defaultValue: "false", kind: .choice(["true", "false"]), isSecret: false,
            help: "let webhook steps call private, loopback and link-local addresses (refused by default: SSRF)"),
        ConfigKey(
            name: "webhook.secret", defaultValue: nil, kind: .text, isSecret: true,
            help: "HMAC key of the Seqd-Signature header on webhook requests; generated and stored at the first migrate when unset"),
        ConfigKey(
            name: "event_webhook.url", defaultValue: nil, kind: .url(schemes: ["http", "https"]), isSecret: false,
            help: "enrollment events are posted here, signed; unset keeps it off"),
        ConfigKey(
            name: "event_webhook.types", defaultValue: "replied,bounced,opted_out,completed,failed,stopped,converted,delivered", kind: .text,
            isSecret: false, help: "comma-separated event types posted to event_webhook.url"),
        ConfigKey(
            name: "retention.older_than", defaultValue: "180d", kind: .duration, isSecret: false,
            help: "seqd prune removes message bodies, attempts and events of finished work older than this"),
        ConfigKey(
            name: "log.level", defaultValue: "info",
            kind: .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]), isSecret: false,
            help: "trace, debug, info, notice, warning, error or critical"),
        ConfigKey(
            name: "log.format", defaultValue: "text", kind: .choice(["text", "json"]), isSecret: false,
            help: "text or json"),
    ]

    /// The key named `name`, if seqd knows it.
    public static func named(_ name: String) -> ConfigKey? { all.first { $0.name == name } }
}
