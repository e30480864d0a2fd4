import Hummingbird

/// One endpoint: the table below is both what the router serves and what the OpenAPI test
/// compares with the document, so the two cannot drift apart silently.
package struct Route: Sendable {
    /// `GET`, `POST`.
    package let method: HTTPRequest.Method
    /// The path template in OpenAPI form (`/v1/contacts/{id}/enrollments`), which Hummingbird
    /// also reads; access logs and metrics show this template, never the concrete path.
    package let path: String
    /// Under `/v1`: needs the bearer token.
    package let requiresToken: Bool
    let handle: @Sendable (Handlers, Request, BasicRequestContext) async throws -> Response

    /// `GET`, as the OpenAPI document spells it in upper case.
    package var methodName: String { method.rawValue }
}

extension Route {
    /// The methods served at a concrete path (`/v1/contacts/7/enrollments` matches the template
    /// `/v1/contacts/{id}/enrollments`), in the order of `all`; empty for an unknown path.
    static func methods(servedAt path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        return all.filter { route in
            let template = route.path.split(separator: "/", omittingEmptySubsequences: false)
            return template.count == segments.count
                && zip(template, segments).allSatisfy { $0.hasPrefix("{") && !$1.isEmpty || $0 == $1 }
        }.map(\.method)
    }

    /// Every route the listener serves.
    package static let all: [Route] = [
        Route(method: .get, path: "/healthz", requiresToken: false) { try await $0.healthz($1, $2) },
        Route(method: .get, path: "/readyz", requiresToken: false) { try await $0.readyz($1, $2) },
        Route(method: .get, path: "/metrics", requiresToken: false) { try await $0.metrics($1, $2) },
        // The description of the API holds no data, and clients read it before they have a token.
        Route(method: .get, path: "/v1/openapi.yaml", requiresToken: false) { try await $0.openAPI($1, $2) },
        Route(method: .post, path: "/v1/contacts", requiresToken: true) { try await $0.upsertContact($1, $2) },
        Route(method: .post, path: "/v1/enrollments", requiresToken: true) { try await $0.enroll($1, $2) },
        Route(method: .post, path: "/v1/events", requiresToken: true) { try await $0.recordEvent($1, $2) },
        Route(method: .get, path: "/v1/contacts/{id}/enrollments", requiresToken: true) {
            try await $0.contactEnrollments($1, $2)
        },
        Route(method: .post, path: "/v1/signals", requiresToken: true) { try await $0.signal($1, $2) },
        Route(method: .get, path: "/v1/contacts/{id}/export", requiresToken: true) { try await $0.exportContact($1, $2) },
        Route(method: .delete, path: "/v1/contacts/{id}", requiresToken: true) { try await $0.eraseContact($1, $2) },
        Route(method: .get, path: "/v1/sequences", requiresToken: true) { try await $0.listSequences($1, $2) },
        Route(method: .get, path: "/v1/sequences/{name}", requiresToken: true) { try await $0.showSequence($1, $2) },
        Route(method: .put, path: "/v1/sequences/{name}", requiresToken: true) { try await $0.applySequence($1, $2) },
        Route(method: .post, path: "/v1/sequences/{name}/pause", requiresToken: true) { try await $0.pauseSequence($1, $2) },
        Route(method: .post, path: "/v1/sequences/{name}/resume", requiresToken: true) { try await $0.resumeSequence($1, $2) },
        Route(method: .get, path: "/v1/enrollments", requiresToken: true) { try await $0.listEnrollments($1, $2) },
        Route(method: .get, path: "/v1/enrollments/{id}", requiresToken: true) { try await $0.showEnrollment($1, $2) },
        Route(method: .get, path: "/v1/enrollments/{id}/deliveries", requiresToken: true) {
            try await $0.enrollmentDeliveries($1, $2)
        },
        Route(method: .get, path: "/v1/status", requiresToken: true) { try await $0.status($1, $2) },
        Route(method: .get, path: "/v1/sending", requiresToken: true) { try await $0.sending($1, $2) },
        Route(method: .put, path: "/v1/sending", requiresToken: true) { try await $0.setSending($1, $2) },
        Route(method: .post, path: "/v1/inbound", requiresToken: true) { try await $0.inbound($1, $2) },
        Route(method: .get, path: "/u/{token}", requiresToken: false) { try await $0.unsubscribePage($1, $2) },
        Route(method: .post, path: "/u/{token}", requiresToken: false) { try await $0.unsubscribe($1, $2) },
        // HEAD has a route of its own (not GET's fallback) so that it is recorded as a scanner's.
        Route(method: .get, path: "/c/{token}", requiresToken: false) { try await $0.click($1, $2) },
        Route(method: .head, path: "/c/{token}", requiresToken: false) { try await $0.click($1, $2) },
    ]
}
