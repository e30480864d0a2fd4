import Delivery
import Hummingbird
import Logging
import Metrics
import SeqdApplication
import SequenceStore

/// `GET` and `HEAD /c/{token}`: a tracked link (`tracking.clicks: true`). Records the hit, then
/// redirects to the URL the token signed, and nowhere else: the endpoint is no open redirect.
///
/// A token that does not verify (malformed, tampered with, too long, signed under another secret)
/// gets the same 404 page as a bad unsubscribe link and never a redirect. A valid token whose
/// delivery is unknown (a preview's link) or whose contact was erased still redirects, since
/// the signed URL is safe to send anyone to, but records nothing. So does a valid token while the
/// database is unreachable: the reader gets where they were going, and the miss is logged.
///
/// What counts as a scanner is decided with the hit (`Clicks`): a `HEAD`, a hit within seconds of
/// the send, or a hit on the message's hidden decoy link. The URL is never logged (its query may
/// name the reader); access logs show the route template only.
extension Handlers {
    func click(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard let token = context.parameters.get("token"), token.utf8.count <= ClickToken.maxTokenLength,
            let click = ClickToken.verify(token, key: clickKey)
        else { return Self.invalidLink }
        do {
            if let recorded = try await operations.recordClick(
                deliveryID: click.deliveryID, url: click.url, head: request.method == .head, decoy: click.isDecoy)
            {
                Counter(label: "seqd_clicks_total", dimensions: [("kind", recorded.scanner == nil ? "human" : "scanner")]).increment()
                if recorded.reclassified > 0 {
                    logger.debug("a decoy hit on delivery \(click.deliveryID) flagged \(recorded.reclassified) earlier clicks as a scanner's")
                }
            }
        } catch let error as ApplicationError {
            // The kind and SQLSTATE only: the message may quote the URL.
            logger.warning(
                "a click on a link of delivery \(click.deliveryID) was not recorded (\(error.kind), SQLSTATE \(error.sqlState ?? "none")); redirected anyway")
        } catch {
            logger.warning("a click on a link of delivery \(click.deliveryID) was not recorded (\(type(of: error))); redirected anyway")
        }
        var headers = HTTPFields()
        headers[.location] = click.url
        headers[.cacheControl] = "no-store"
        headers[.init("Referrer-Policy")!] = "no-referrer"
        return Response(status: .found, headers: headers)
    }
}
