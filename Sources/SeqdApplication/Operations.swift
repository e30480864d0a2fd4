// SeqdApplication: one function per operator action and query, shared by the CLI commands and the
// HTTP handlers. It owns where connections come from (`Database`), the waits that follow actions
// which stop mail (`InFlightWaiter`), and what a failure is (`ApplicationError`); front ends parse
// input and render results, and never see a connection or SQL.
import SequenceStore

/// Who acts, as the audit trail records it: `cli:alice`, `http:api`, `inbound`.
public struct Actor: Sendable {
    /// Recorded in `enrollment_events.actor` and `signals`.
    public let name: String
    /// `cli` or `http`: the front end, recorded with operator signals.
    public let source: String

    public init(name: String, source: String) {
        self.name = name
        self.source = source
    }
}

/// The application's actions and queries, on one `Database`, done by one `Actor`.
public struct Operations: Sendable {
    public let database: Database
    public let actor: Actor
    /// Actions that stop mail answer once a send already under way has settled.
    public let inFlight: InFlightWaiter

    public init(database: Database, actor: Actor, inFlight: InFlightWaiter) {
        self.database = database
        self.actor = actor
        self.inFlight = inFlight
    }

    /// The same operations done by someone else (one-click unsubscribe acts as `http:unsubscribe`).
    public func acting(as actor: Actor) -> Operations {
        Operations(database: database, actor: actor, inFlight: inFlight)
    }

    /// This installation's id and stored secrets.
    public func installation() async throws -> InstallationSettings {
        try await database.run { try InstallationSettings.load($0) }
    }
}
