import Delivery
import Foundation
import Hummingbird
import SeqdApplication
import SequenceStore

/// `GET /u/{token}` (a page with a confirm button) and `POST /u/{token}` (RFC 8058 one-click).
///
/// The token names an enrollment and is HMAC-signed (`UnsubscribeToken`), so the URL carries no
/// address. The POST writes the suppression through `OperatorActions` — the same transaction as
/// `seqd opt-out` — before it answers. Every bad token gets the same 400 page, whether malformed,
/// tampered with or naming an enrollment that does not exist, so the endpoint is no oracle.
extension Handlers {
    /// Recorded as the actor of one-click unsubscribes in `enrollment_events`.
    static let unsubscribeActor = "http:unsubscribe"

    func unsubscribePage(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard verifiedEnrollment(context) != nil else { return Self.invalidLink }
        // No action attribute: the form posts back to the very URL it was served from, which stays
        // right behind a proxy that mounts seqd under a path prefix.
        return Self.page(
            .ok, title: "Unsubscribe",
            body: """
                <h1>Unsubscribe?</h1>
                <p>You will receive no further emails from this sender.</p>
                <form method="post">
                <input type="hidden" name="List-Unsubscribe" value="One-Click">
                <button type="submit">Unsubscribe</button>
                </form>
                """)
    }

    func unsubscribe(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard let enrollmentID = verifiedEnrollment(context) else { return Self.invalidLink }
        var request = request
        let body = try await request.collectBody(upTo: 16 * 1024)
        guard Self.isOneClick(body: String(decoding: body.readableBytesView, as: UTF8.self), contentType: request.headers[.contentType])
        else {
            return Self.page(.badRequest, title: "Unsubscribe", body: "<h1>Unsubscribe</h1><p>The request must carry List-Unsubscribe=One-Click.</p>")
        }
        do {
            // Idempotent: an address already suppressed stays as first recorded, and enrollments
            // that already ended are left alone.
            _ = try await operations.acting(as: Actor(name: Self.unsubscribeActor, source: "http")).signal(
                .optOut, to: .enrollment(enrollmentID), reason: "one-click unsubscribe", waitingForInFlightSends: false)
        } catch let error as ApplicationError where error.kind == .notFound {
            return Self.invalidLink
        }
        return Self.page(.ok, title: "Unsubscribed", body: "<h1>You are unsubscribed</h1><p>You will receive no further emails from this sender.</p>")
    }

    private func verifiedEnrollment(_ context: BasicRequestContext) -> Int64? {
        guard let token = context.parameters.get("token"), token.count <= 128 else { return nil }
        return UnsubscribeToken.verify(token, secret: unsubscribeSecret)
    }

    /// RFC 8058 §3.1: the body is `List-Unsubscribe=One-Click`, form-urlencoded or as a
    /// multipart/form-data field. The confirm page's form sends the same.
    static func isOneClick(body: String, contentType: String?) -> Bool {
        if let contentType, contentType.lowercased().hasPrefix("multipart/form-data") {
            return body.contains("name=\"List-Unsubscribe\"") && body.contains("One-Click")
        }
        return body.split(separator: "&").contains { pair in
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding?.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return parts.count == 2 && parts[0] == "List-Unsubscribe" && parts[1] == "One-Click"
        }
    }

    /// 404: a link that does not verify names nothing this server knows (and says no more). The
    /// same page for unsubscribe and tracked links.
    static var invalidLink: Response {
        page(.notFound, title: "Invalid link", body: "<h1>This link is not valid</h1><p>Please use the link from the most recent email.</p>")
    }

    /// A self-contained page: no scripts, no external resources, not cached, not indexed, and no
    /// Referer carrying the token anywhere else.
    static func page(_ status: HTTPResponse.Status, title: String, body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">
            <title>\(title)</title>
            <style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}button{font-size:1rem;padding:.5rem 1rem}</style>
            </head><body>
            \(body)
            </body></html>

            """
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }
}
