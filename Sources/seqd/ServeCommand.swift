import ArgumentParser
import Foundation
import Logging
import SeqdApplication
import SeqdConfig
import SequenceDaemon
import SequenceHTTP
import SequenceStore

/// `seqd serve`: the HTTP listener alone, for deployments that run it apart from the daemon.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run only the HTTP listener: probes, metrics, the /v1 API and one-click unsubscribe.",
        discussion: """
            For deployments that run the listener apart from `seqd run`. Needs http.port; binds http.host \
            (default 127.0.0.1). The /v1 API is off (503) until http.api_token is set. SIGTERM or SIGINT stops \
            accepting, finishes requests in flight and exits 0.

            Connections per process: \(HTTPListener.connectionBudget) (\(HTTPListener.apiConnections) for the API and \
            unsubscribe, 1 for /readyz, 1 for the SQL gauges of /metrics).

            Examples:
              seqd serve --set http.port=8080
              SEQD_HTTP_API_TOKEN_FILE=/run/secrets/api-token seqd serve --set http.host=0.0.0.0 --set http.port=8080
            """)

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let configuration = try await global.loadConfiguration()
        let logger = LogSetup.bootstrap(configuration)
        SeqdMetrics.bootstrap()
        guard let listener = try await makeListener(configuration, logger: logger, health: { .alive }) else {
            throw CommandFailure(
                status: .usage, message: "http.port is not set, so the listener is off: set it, e.g. --set http.port=8080")
        }
        let signals = ShutdownSignals { signal in
            logger.info("received signal \(signal)")
            Task { await listener.shutdown() }
        }
        defer { signals.cancel() }
        try await listener.run()
    }
}

/// The HTTP listener as configured, or nil when `http.port` is unset (the listener is off).
/// Shared by `seqd serve` and `seqd run`; the caller runs it and shuts it down.
func makeListener(
    _ configuration: SeqdConfiguration, logger: Logger, health: @escaping @Sendable () -> HealthState
) async throws -> HTTPListener? {
    guard let port = configuration.integer("http.port") else { return nil }
    let setup = configuration.operations("http setup")
    let installation = try await setup.installation()
    setup.database.close()
    let secret = try installation.unsubscribeSecret(configured: configuration.string("unsubscribe.secret"))
    do {
        return try HTTPListener(
            host: configuration.string("http.host") ?? "127.0.0.1", port: port, databaseURL: configuration.databaseURL,
            apiToken: configuration.string("http.api_token"), unsubscribeSecret: secret,
            health: health, logger: logger,
            inFlightWait: .seconds(configuration.seconds("delivery.lease_timeout") + 5),
            oooResumeAfter: .seconds(configuration.seconds("inbound.ooo_resume_after")),
            longTransactionWarning: .seconds(configuration.seconds("worker.long_transaction_warning")),
            trustedAuthservID: try configuration.trustedAuthservID())
    } catch let error as HTTPListener.SetupError {
        throw CommandFailure(status: .dataError, message: error.description)
    }
}
