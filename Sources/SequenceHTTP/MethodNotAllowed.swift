import Hummingbird

/// A path that exists, asked with a method it does not serve (any method, `QUERY` included),
/// answers 405 with `Allow` naming the methods it does serve (RFC 9110 §15.5.6), rather than the
/// router's 404 as if the path were unknown.
struct MethodNotAllowed: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError where error.status == .notFound {
            let allowed = Route.methods(servedAt: request.uri.path)
            guard !allowed.isEmpty, !allowed.contains(request.method) else { throw error }
            // HEAD is answered wherever GET is.
            if request.method == .head && allowed.contains(.get) { throw error }
            throw APIError.methodNotAllowed(allowed: allowed)
        }
    }
}
