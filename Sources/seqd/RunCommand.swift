import ArgumentParser
import Delivery
import Foundation
import Logging
import SeqdApplication
import SeqdConfig
import SequenceDaemon
import SequenceEngine
import SequenceHTTP
import SequenceStore
import ServiceLifecycle
import Synchronization
import UnixSignals

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: advance due enrollments and send their deliveries.",
        discussion: """
            Any number of replicas may run against one database. SIGTERM or SIGINT stops claiming, finishes \
            in-flight work within worker.shutdown_grace and exits 0.

            Database connections per process: worker.concurrency (advancing) + 5 (claim, 2 settle, maintenance, \
            LISTEN), plus the HTTP listener's when http.port is set. delivery.concurrency is the number of \
            transport sessions (SMTP or HTTP connections), which hold no database connection. With \
            event_webhook.url set, enrollment events are posted there by one more thread, which shares the \
            maintenance connection (see `seqd event-webhook status`).

            Examples:
              seqd run
              seqd run --once                                  # everything due now, then exit
              seqd run --until-finished --sequence onboarding  # until no enrollment is active or paused
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Process everything that is due now, then exit.")
    var once = false

    @Flag(help: "Run until no enrollment (of --sequence, or at all) is active or paused, showing progress.")
    var untilFinished = false

    @Option(help: "With --until-finished: only wait for this sequence.")
    var sequence: String?

    func validate() throws {
        if once && untilFinished { throw ValidationError("--once and --until-finished exclude each other") }
        if sequence != nil && !untilFinished { throw ValidationError("--sequence goes with --until-finished") }
    }

    func run() async throws {
        let configuration = try await global.loadConfiguration()
        let logger = LogSetup.bootstrap(configuration)
        SeqdMetrics.bootstrap()  // before the daemon creates its metrics
        let settings = try daemonSettings(configuration)
        let daemon = Daemon(settings: settings, logger: logger)
        if once {
            try await onDedicatedThread { try daemon.runOnce() }
            print("advanced \(daemon.counters.advanced.load(ordering: .relaxed)) enrollments, sent \(daemon.counters.sent.load(ordering: .relaxed)) messages")
            return
        }
        // Connecting and checking the schema block: off the concurrency pool.
        let daemonServices = try await onDedicatedThread { try daemon.services() }
        // The optional listener (http.port) runs in this process: /healthz reports whether the
        // daemon's loops are making progress.
        let listener = try await makeListener(configuration, logger: logger) {
            daemon.loopsAreTicking(within: daemon.tickTolerance)
                ? .alive : HealthState(isAlive: false, reason: "a worker loop has made no progress")
        }
        // One ServiceGroup: SIGTERM or SIGINT shuts the services down in reverse order (progress,
        // advancers, claimer, sessions, maintenance, settle writer, listener), each finishing what
        // it is doing; past worker.shutdown_grace the rest is cancelled. A listener that cannot
        // serve (port taken) stops the whole process: an orchestrator's probes would fail anyway,
        // and a loud exit beats a silently half-working replica.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let listener {
            services.append(.init(service: ListenerService(listener: listener), failureTerminationBehavior: .gracefullyShutdownGroup))
        }
        services += daemonServices.map { .init(service: $0) }
        if untilFinished {
            services.append(
                .init(
                    service: ProgressService(operations: configuration.operations("progress"), sequence: sequence),
                    successTerminationBehavior: .gracefullyShutdownGroup))
        }
        var groupConfiguration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(settings.shutdownGrace)
        try await ServiceGroup(configuration: groupConfiguration).run()
    }

    /// The daemon's settings from the effective configuration; refuses transports this build lacks.
    private func daemonSettings(_ configuration: SeqdConfiguration) throws -> DaemonSettings {
        let makeTransport = try transportFactory(configuration)
        var settings = DaemonSettings(
            databaseURL: configuration.databaseURL,
            pollInterval: Double(max(1, configuration.seconds("worker.poll_interval"))),
            batchSize: configuration.integer("worker.batch_size") ?? 100,
            workerConcurrency: configuration.integer("worker.concurrency") ?? 2,
            shutdownGrace: Double(configuration.seconds("worker.shutdown_grace")),
            deliveryConcurrency: configuration.integer("delivery.concurrency") ?? 16,
            rateLimit: configuration.string("delivery.rate_limit").flatMap(Double.init),
            leaseTimeout: max(1, configuration.seconds("delivery.lease_timeout")),
            policy: configuration.deliveryPolicy,
            unsubscribeBaseURL: configuration.string("unsubscribe.base_url"),
            unsubscribeMailto: configuration.string("unsubscribe.mailto"),
            unsubscribeSecret: configuration.string("unsubscribe.secret"),
            longTransactionWarning: Double(configuration.seconds("worker.long_transaction_warning")),
            transportName: configuration.string("delivery.transport") ?? "file", makeTransport: makeTransport)
        settings.webhookAllowPrivateNetworks = configuration.string("webhook.allow_private_networks") == "true"
        settings.webhookSecret = configuration.string("webhook.secret")
        settings.trackingBaseURL = configuration.string("tracking.base_url")
        settings.eventWebhook = try eventWebhookSettings(configuration)
        return settings
    }

    /// `event_webhook.*`, or nil when `event_webhook.url` is unset; an unknown type exits 65.
    private func eventWebhookSettings(_ configuration: SeqdConfiguration) throws -> EventWebhookSettings? {
        guard let url = configuration.string("event_webhook.url") else { return nil }
        do {
            return EventWebhookSettings(url: url, types: try EventWebhookType.parse(list: configuration.string("event_webhook.types") ?? ""))
        } catch let error as StoreError {
            throw CommandFailure(status: .dataError, message: "configuration key \(error.description)")
        }
    }
}

/// The configured transport, one instance per sender thread. The smtp and http transports refuse
/// to start without `unsubscribe.base_url`: every message they send carries a one-click link.
func transportFactory(_ configuration: SeqdConfiguration) throws -> @Sendable () throws -> any MailTransport {
    let name = configuration.string("delivery.transport") ?? "file"
    func required(_ key: String) throws -> String {
        guard let value = configuration.string(key) else {
            throw CommandFailure(
                status: .dataError, message: "configuration key \(key) is required by delivery.transport \(name)")
        }
        return value
    }
    if name == "smtp" || name == "http" {
        // tracking.base_url too: over plain http anyone on the path could change where a
        // tracked link's redirect leads.
        let bases = [("unsubscribe.base_url", try required("unsubscribe.base_url"))]
            + (configuration.string("tracking.base_url").map { [("tracking.base_url", $0)] } ?? [])
        for (key, base) in bases {
            if let url = URLComponents(string: base), url.scheme == "http",
                !["localhost", "127.0.0.1", "::1", "[::1]"].contains(url.host ?? "")
            {
                throw CommandFailure(
                    status: .dataError,
                    message: "configuration key \(key): plain http is allowed only on loopback; use https")
            }
        }
    }
    let timeout = Double(max(1, configuration.seconds("delivery.smtp.timeout")))
    switch name {
    case "file":
        let directory = configuration.string("delivery.file.directory") ?? "outbox"
        return { try FileTransport(directory: directory) }
    case "null":
        return { NullTransport() }
    case "smtp":
        let url = try required("delivery.smtp.url")
        let (username, password) = (configuration.string("delivery.smtp.username"), configuration.string("delivery.smtp.password"))
        let starttls = configuration.string("delivery.smtp.starttls").flatMap(SMTPTransport.StartTLS.init(rawValue:))
        let perConnection = configuration.integer("delivery.smtp.messages_per_connection") ?? 100
        let make: @Sendable () throws -> any MailTransport = {
            try SMTPTransport(
                url: url, username: username, password: password, starttls: starttls, timeout: timeout,
                messagesPerConnection: perConnection)
        }
        _ = try make()
        return make
    case "http":
        let url = try required("delivery.http.url")
        let token = configuration.string("delivery.http.token")
        _ = try HTTPTransport(url: url, token: token, timeout: timeout)
        return { try HTTPTransport(url: url, token: token, timeout: timeout) }
    default:
        throw CommandFailure(status: .dataError, message: "configuration key delivery.transport: unknown transport '\(name)'")
    }
}

/// Runs blocking work (joining threads, the `--once` loop) on a thread of its own, never on the
/// Swift concurrency pool.
func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// The HTTP listener as a service of `seqd run`'s group.
struct ListenerService: Service {
    let listener: HTTPListener

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await listener.run()
        } onGracefulShutdown: {
            Task { await listener.shutdown() }
        }
    }
}

/// `--until-finished`: shows progress until no enrollment (of the sequence) is active or paused,
/// then returns, which shuts the group down gracefully.
struct ProgressService: Service {
    let operations: Operations
    let sequence: String?

    func run() async throws {
        defer { operations.database.close() }
        let progress = RunProgressDisplay()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                guard let state = try? await operations.runProgress(sequence: sequence) else {
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                progress.show(state)
                if state.remaining == 0 { break }
                try? await Task.sleep(for: .milliseconds(300))
            }
        }
        progress.finish()
    }
}
