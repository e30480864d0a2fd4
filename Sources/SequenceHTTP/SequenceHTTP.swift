// SequenceHTTP: seqd's optional HTTP listener, built on Hummingbird 2. It owns the probes
// (`/healthz`, `/readyz`), the Prometheus endpoint (`/metrics`) with the SQL gauges behind it, the
// `/v1` API, and one-click unsubscribe (`/u/{token}`). Handlers decide nothing: every write goes
// through the store code the CLI uses, and every statement runs on a confined connection's own
// thread, never on the event loop or the concurrency pool.
import Delivery
import Foundation
import Hummingbird
import Logging
import Mail
import NIOCore
import Prometheus
import SeqdApplication
import SequenceStore
import ServiceLifecycle
import Synchronization

/// The HTTP listener: `run()` serves until `shutdown()` (or cancellation), then drains in-flight
/// requests and returns.
///
/// Its database budget: `HTTPListener.connectionBudget` PostgreSQL connections per process —
/// `apiConnections` shared by the `/v1` API and unsubscribe requests, one for the background
/// readiness check behind `/readyz`, one for the SQL gauges. Connections open lazily, on first use.
/// Idle client connections are closed after `idleTimeout`, so idle sockets cannot pile up.
public final class HTTPListener: Sendable {
    /// Connections shared by `/v1` and `/u` requests; more requests than this wait their turn.
    public static let apiConnections = 3
    /// Every connection the listener may hold: the API's, `/readyz`'s and the gauges'.
    public static let connectionBudget = apiConnections + 2

    private let host: String
    private let port: Int
    private let handlers: Handlers
    private let gauges: Operations
    private let gaugeInterval: Duration
    private let idleTimeout: Duration
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var group: ServiceGroup?
        var shutdownRequested = false
        var finished = false
        var boundPort: Int?
        var portWaiters: [CheckedContinuation<Int?, Never>] = []
    }

    /// Thrown by `init` for settings the listener cannot work with.
    public struct SetupError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// - Parameters:
    ///   - host: address to bind (`http.host`).
    ///   - port: port to bind (`http.port`); 0 picks a free one (see `boundPort()`).
    ///   - databaseURL: handed to libpq untouched.
    ///   - apiToken: `http.api_token`; nil turns `/v1` off (503 with a JSON error saying so).
    ///   - unsubscribeSecret: `unsubscribe.secret` if configured, else the one stored at migrate.
    ///   - health: whether the process's loops are ticking, for `/healthz`.
    ///   - logger: access log (route templates only) and errors.
    ///   - registry: rendered by `/metrics`; the SQL gauges and request counters go into it.
    ///   - gaugeInterval: how often the SQL gauges are recomputed.
    ///   - inFlightWait: how long signals that stop mail wait for a send already under way
    ///     (`delivery.lease_timeout` plus a margin, as the CLI waits).
    ///   - oooResumeAfter: `inbound.ooo_resume_after`, for `POST /v1/inbound`.
    ///   - longTransactionWarning: `worker.long_transaction_warning`, for `GET /v1/status`.
    ///   - trustedAuthservID: `inbound.authserv_id` when `inbound.trust_from` is on, else nil.
    ///   - readinessInterval: how often the background check behind `/readyz` runs.
    ///   - idleTimeout: how long a client connection may sit idle before the listener closes it.
    public init(
        host: String, port: Int, databaseURL: String, apiToken: String?, unsubscribeSecret: String,
        health: @escaping @Sendable () -> HealthState = { .alive }, logger: Logger,
        registry: PrometheusCollectorRegistry = SeqdMetrics.registry, gaugeInterval: Duration = .seconds(15),
        inFlightWait: Duration = .seconds(35), oooResumeAfter: Duration = .seconds(7 * 86_400), longTransactionWarning: Duration = .seconds(30),
        trustedAuthservID: String? = nil,
        readinessInterval: Duration = .seconds(2), idleTimeout: Duration = .seconds(60)
    ) throws {
        guard (0...65_535).contains(port) else { throw SetupError(description: "http.port \(port) is not a port number (1–65535)") }
        guard !unsubscribeSecret.isEmpty else { throw SetupError(description: "the unsubscribe secret is empty") }
        if let apiToken, apiToken.count < 16 {
            throw SetupError(description: "http.api_token is too short: use at least 16 random characters")
        }
        self.host = host
        self.port = port
        self.gaugeInterval = gaugeInterval
        self.idleTimeout = idleTimeout
        self.logger = logger
        func operations(_ database: Database, waiting: Duration = .zero) -> Operations {
            Operations(
                database: database, actor: Actor(name: Handlers.apiActor, source: "http"),
                inFlight: InFlightWaiter(database: database, timeout: waiting))
        }
        let messageIDKey = MessageID.Key(secret: unsubscribeSecret)
        handlers = Handlers(
            operations: operations(.pool(databaseURL, purpose: "http", size: Self.apiConnections), waiting: inFlightWait),
            readiness: ReadinessProbe(
                operations: operations(.dedicated(databaseURL, purpose: "http readyz", statementTimeoutMilliseconds: 5_000)),
                interval: readinessInterval, timeout: Handlers.readinessTimeout, logger: logger),
            registry: registry, apiToken: apiToken, unsubscribeSecret: unsubscribeSecret, health: health,
            inboundTrust: InboundTrust(
                verifyReference: { MessageID.verify($0, deliveryKey: $1, key: messageIDKey) }, trustedAuthservID: trustedAuthservID),
            oooResumeAfter: oooResumeAfter, longTransactionWarning: Double(longTransactionWarning.components.seconds), logger: logger)
        gauges = operations(.dedicated(databaseURL, purpose: "http gauges", statementTimeoutMilliseconds: 10_000))
    }

    /// Binds and serves until `shutdown()` is called or the task is cancelled. On shutdown the
    /// listener stops accepting connections, lets requests in flight finish, and returns.
    /// Throws when the address cannot be bound.
    public func run() async throws {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: AccessLog(logger: logger, registry: handlers.registry))
        router.add(middleware: MethodNotAllowed())
        for route in Route.all {
            let handlers = self.handlers
            router.on(RouterPath(stringLiteral: route.path), method: route.method) { request, context -> Response in
                if route.requiresToken { try handlers.authenticate(request) }
                return try await route.handle(handlers, request, context)
            }
        }

        let idle = TimeAmount.milliseconds(Int64(idleTimeout / .milliseconds(1)))
        let application = Application(
            router: router, server: .http1(configuration: .init(idleTimeout: idle)),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { [weak self] channel in self?.bound(channel.localAddress?.port) },
            logger: logger)
        let gauges = GaugeRefresher(
            operations: self.gauges, interval: gaugeInterval, registry: handlers.registry, logger: logger)
        // No signal handling here: the executable owns SIGTERM and calls `shutdown()`.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [application, gauges, handlers.readiness], logger: logger))
        let alreadyStopped = state.withLock { state in
            state.group = group
            return state.shutdownRequested
        }
        defer { finish() }
        if alreadyStopped { return }
        do {
            try await group.run()
        } catch {
            await closeConnections()
            throw error
        }
        await closeConnections()
    }

    /// Stops accepting, finishes requests in flight, and makes `run()` return. Safe to call
    /// before `run()` (it then returns at once) and more than once.
    public func shutdown() async {
        let group = state.withLock { state in
            state.shutdownRequested = true
            return state.group
        }
        await group?.triggerGracefulShutdown()
    }

    /// The port the listener is bound to, once it is; nil when `run()` ended without binding.
    /// With port 0 this is how a caller (a test) learns the port the system picked.
    public func boundPort() async -> Int? {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Int?? in
                if let port = state.boundPort { return .some(port) }
                if state.finished { return .some(nil) }
                state.portWaiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func bound(_ port: Int?) {
        let waiters = state.withLock { state in
            state.boundPort = port
            defer { state.portWaiters = [] }
            return state.portWaiters
        }
        if let port { logger.info("HTTP listener bound", metadata: ["http.host": "\(host)", "http.port": "\(port)"]) }
        waiters.forEach { $0.resume(returning: port) }
    }

    private func finish() {
        let waiters = state.withLock { state in
            state.finished = true
            defer { state.portWaiters = [] }
            return state.portWaiters
        }
        waiters.forEach { $0.resume(returning: nil) }
    }

    /// Closes every connection on a thread of its own: `close()` waits for the connection's queue,
    /// which must never hold up the concurrency pool.
    private func closeConnections() async {
        let databases = [handlers.operations.database, handlers.readiness.operations.database, gauges.database]
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread {
                for database in databases {
                    database.cancel()
                    database.close()
                }
                continuation.resume()
            }.start()
        }
    }
}
