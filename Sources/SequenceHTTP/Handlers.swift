import Delivery
import Foundation
import Hummingbird
import Logging
import Prometheus
import SeqdApplication
import SequenceStore
import Synchronization

/// What every handler shares: the application's operations, the secrets and the process's health.
final class Handlers: Sendable {
    /// Every `/v1` and `/u` request's work, done as `http:api` on the listener's pooled connections.
    let operations: Operations
    /// Answers `/readyz` from memory; refreshed in the background on a connection of its own.
    let readiness: ReadinessProbe
    let registry: PrometheusCollectorRegistry
    let apiToken: String?
    let unsubscribeSecret: String
    /// Verifies tracked links' tokens (`/c/{token}`); derived from the unsubscribe secret.
    let clickKey: ClickToken.Key
    let health: @Sendable () -> HealthState
    /// What inbound mail must prove (`POST /v1/inbound`).
    let inboundTrust: InboundTrust
    /// `inbound.ooo_resume_after`: how long an auto-reply without a clear return date pauses.
    let oooResumeAfter: Duration
    /// `worker.long_transaction_warning` in seconds, for `GET /v1/status`.
    let longTransactionWarning: Double
    let logger: Logger

    /// How long one background readiness check waits for the database (probes time out too).
    static let readinessTimeout: Duration = .seconds(5)

    init(
        operations: Operations, readiness: ReadinessProbe, registry: PrometheusCollectorRegistry, apiToken: String?,
        unsubscribeSecret: String, health: @escaping @Sendable () -> HealthState, inboundTrust: InboundTrust,
        oooResumeAfter: Duration, longTransactionWarning: Double, logger: Logger
    ) {
        self.operations = operations
        self.readiness = readiness
        self.registry = registry
        self.apiToken = apiToken
        self.unsubscribeSecret = unsubscribeSecret
        clickKey = ClickToken.Key(secret: unsubscribeSecret)
        self.health = health
        self.inboundTrust = inboundTrust
        self.oooResumeAfter = oooResumeAfter
        self.longTransactionWarning = longTransactionWarning
        self.logger = logger
    }

    // MARK: Probes and metrics

    func healthz(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let state = health()
        if state.isAlive { return JSONResponse.make(.ok, .object(["status": .string("ok")])) }
        return JSONResponse.make(
            .serviceUnavailable,
            .object(["status": .string("unhealthy"), "reason": .string(state.reason ?? "a loop stopped ticking")]))
    }

    func readyz(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        func notReady(_ reason: String) -> Response {
            JSONResponse.make(.serviceUnavailable, .object(["status": .string("not_ready"), "reason": .string(reason)]))
        }
        // Right after start the first background check may still be running: wait for it (in
        // memory, bounded), rather than answer "not ready" to the first probe of a healthy process.
        var verdict = readiness.verdict
        let deadline = ContinuousClock.now + Self.readinessTimeout
        while verdict == .starting, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            verdict = readiness.verdict
        }
        switch verdict {
        case .starting:
            return notReady("the first database check has not completed yet")
        case .notReady(let reason):
            return notReady(reason)
        case .ready(let version):
            return JSONResponse.make(
                .ok,
                .object([
                    "status": .string("ready"), "schema_version": .integer(Int64(version)),
                    "minimum_schema_version": .integer(Int64(Migrations.minimumVersion)),
                ]))
        }
    }

    func metrics(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }

    func openAPI(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/yaml; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
    }

    // MARK: Authentication

    /// Checks `Authorization: Bearer <http.api_token>` in constant time. With no token configured
    /// the API is off: 503, because the fix is the operator's, not the client's.
    func authenticate(_ request: Request) throws {
        guard let apiToken else {
            throw APIError(
                .serviceUnavailable, "api_disabled", "the /v1 API is off: set http.api_token (SEQD_HTTP_API_TOKEN) to enable it")
        }
        guard let header = request.headers[.authorization] else {
            throw APIError(.unauthorized, "unauthorized", "missing bearer token")
        }
        let prefix = "bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix,
            constantTimeEquals(Array(header.utf8.dropFirst(prefix.count)), Array(apiToken.utf8))
        else { throw APIError(.unauthorized, "unauthorized", "invalid bearer token") }
    }
}

/// Compares without an early exit, so the time taken says nothing about how much of a guess was
/// right; a length mismatch is folded into the same accumulator instead of returning early.
func constantTimeEquals(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
    var difference = UInt8(truncatingIfNeeded: given.count ^ expected.count)
    for index in 0..<max(given.count, expected.count) {
        let left = index < given.count ? given[index] : 0
        let right = index < expected.count ? expected[index] : 0
        difference |= left ^ right
    }
    return difference == 0 && given.count == expected.count
}

/// Thrown by `withDeadline` when the time ran out first.
struct DeadlineExceeded: Error {}

/// Runs `body`, but answers `DeadlineExceeded` after `limit` even if `body` is still blocked (a
/// hung database), calling `onTimeout` so the caller can cancel the statement. A task group
/// would wait for the blocked child before returning, which is what this must not do.
func withDeadline<T: Sendable>(
    _ limit: Duration, onTimeout: @escaping @Sendable () -> Void, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.pending.withLock { $0 = continuation }
        let timer = Task {
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled, let waiting = race.take() else { return }
            onTimeout()
            waiting.resume(throwing: DeadlineExceeded())
        }
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            timer.cancel()
            race.take()?.resume(with: result)
        }
    }
}

/// The continuation both sides of `withDeadline` race for; whoever takes it resumes it, once.
private final class DeadlineRace<T: Sendable>: Sendable {
    let pending = Mutex<CheckedContinuation<T, any Error>?>(nil)
    func take() -> CheckedContinuation<T, any Error>? { pending.withLock { $0.take() } }
}
