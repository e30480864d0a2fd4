import Postgres

/// Installation-wide values stored at the first migrate (`seqd.settings`).
public struct InstallationSettings: Sendable {
    /// Short random id that makes delivery keys (and so Message-IDs) unique to this installation.
    public let installationID: String
    /// The stored HMAC key for unsubscribe tokens; nil when one is configured instead.
    public let storedUnsubscribeSecret: String?
    /// The stored HMAC key for `Seqd-Signature`; nil when one is configured instead (or before
    /// the first migrate of a build that signs webhooks).
    public let storedWebhookSecret: String?

    /// Loads the settings after checking the schema is one this binary supports.
    public static func load(_ connection: Connection) throws -> InstallationSettings {
        try SchemaCheck.requireSupported(connection)
        var values = [String: String]()
        for row in try connection.query("SELECT name, value FROM seqd.settings").rows {
            values[try row.decode("name")] = try row.decode("value")
        }
        guard let installationID = values["installation.id"] else {
            throw StoreError(.notMigrated, "seqd.settings has no installation.id: run `seqd migrate`")
        }
        return InstallationSettings(
            installationID: installationID, storedUnsubscribeSecret: values["unsubscribe.secret"],
            storedWebhookSecret: values["webhook.secret"])
    }
}

extension InstallationSettings {
    /// The secret that signs unsubscribe tokens and Message-IDs: `unsubscribe.secret` when
    /// configured, else the one `seqd migrate` stored. Every reader of the secret asks here.
    public func unsubscribeSecret(configured: String?) throws -> String {
        guard let secret = configured ?? storedUnsubscribeSecret else {
            throw StoreError(.notMigrated, "no unsubscribe secret: configure unsubscribe.secret or run `seqd migrate`")
        }
        return secret
    }
}
