import Hummingbird
import Logging
import Prometheus
import SeqdApplication

/// Logs one line per request and counts it, and turns any error that escaped a handler into the
/// API's JSON error shape.
///
/// Only the route template is logged and counted (`/u/{token}`, `/v1/contacts/{id}/enrollments`):
/// never the concrete path, which holds unsubscribe tokens, nor the query string, headers or body,
/// which may hold addresses and the bearer token.
struct AccessLog: RouterMiddleware {
    typealias Context = BasicRequestContext

    let logger: Logger
    let registry: PrometheusCollectorRegistry

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            let api = APIError.from(error)
            if api.status == .internalServerError {
                // The type and SQLSTATE say what broke; the message could quote request data.
                var metadata: Logger.Metadata = ["error.type": "\(type(of: error))"]
                if let failure = ApplicationError.mapping(error) as? ApplicationError { metadata["sqlstate"] = "\(failure.sqlState ?? "none")" }
                logger.error("request failed", metadata: metadata)
            }
            response = api.response
        }
        // Methods are client-chosen text: only the standard ones are logged and become label values.
        let method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].contains(request.method.rawValue)
            ? request.method.rawValue : "other"
        let route = context.endpointPath.flatMap { $0 == "NotFound" ? nil : $0 } ?? "unmatched"
        let elapsed = ContinuousClock.now - start
        let milliseconds = Double(elapsed.components.seconds) * 1_000 + Double(elapsed.components.attoseconds) / 1e15
        logger.info(
            "request",
            metadata: [
                "http.method": "\(method)", "http.route": "\(route)",
                "http.status": "\(response.status.code)", "duration_ms": "\(Int(milliseconds.rounded()))",
            ])
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "seqd", metricName: "http_requests", unitName: "total",
                helpText: "HTTP requests by method, route template and status"),
            labels: [("method", method), ("route", route), ("status", String(response.status.code))]
        ).increment()
        return response
    }
}
