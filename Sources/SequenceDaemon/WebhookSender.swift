import Delivery
import Foundation
import SequenceEngine
import SequenceStore

/// Makes a webhook step's request for a sending session: the rendered request from the outbox,
/// its `${ENV_NAME}` secrets read now (never stored), `Idempotency-Key` (the delivery key, the same
/// on every retry) and `Seqd-Signature`. Each session has its own, so its connection is reused.
struct WebhookSender: Sendable {
    let client: WebhookClient
    /// The HMAC key of `Seqd-Signature`.
    let secret: String
    /// Reads `NAME`, or the file named by `NAME_FILE`.
    let environment: @Sendable (String) -> String?

    init(allowPrivateNetworks: Bool, secret: String, environment: @escaping @Sendable (String) -> String? = WebhookSender.processEnvironment) {
        client = WebhookClient(allowPrivateNetworks: allowPrivateNetworks)
        self.secret = secret
        self.environment = environment
    }

    /// A secret from the process environment, or from the file `NAME_FILE` names (its trailing
    /// newline dropped), as every other secret seqd reads.
    static let processEnvironment: @Sendable (String) -> String? = { name in
        let environment = ProcessInfo.processInfo.environment
        if let value = environment[name] { return value }
        guard let path = environment[name + "_FILE"], let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return text.hasSuffix("\n") ? String(text.dropLast()) : text
    }

    /// Sends the delivery's request and translates the answer for the delivery machine; a 2xx JSON
    /// object's fields named in `save` come back as `savedData`.
    func send(_ delivery: ClaimedDelivery, now: Date = Date()) -> SendResult {
        let jitter = Double.random(in: 0...1)
        guard let webhook = delivery.message.webhook else {
            return Self.result(
                delivery, outcome: .permanentFailure(reason: "the webhook request could not be rendered", isBounce: false), jitter: jitter)
        }
        let request: WebhookRequest
        do {
            request = try self.request(for: webhook, deliveryKey: delivery.deliveryKey, now: now)
        } catch {
            return Self.result(delivery, outcome: .permanentFailure(reason: "\(error)", isBounce: false), jitter: jitter)
        }
        let answer = client.perform(request)
        var saved: String?
        if case .responded(200..<300, _, let body) = answer, !webhook.save.isEmpty {
            saved = Self.savedFields(webhook.save, from: body)
        }
        return Self.result(delivery, outcome: answer.outcome(now: now), jitter: jitter, savedData: saved)
    }

    /// The request as it goes out: headers with their secrets, then seqd's own.
    func request(for webhook: RenderedWebhook, deliveryKey: String, now: Date) throws -> WebhookRequest {
        let body = Array((webhook.body ?? "").utf8)
        var headers = try webhook.headers.map { header in
            WebhookRequest.Header(name: header.name, value: try SecretReferences.resolve(header.value, lookup: environment))
        }
        if webhook.body != nil { headers.append(.init(name: "Content-Type", value: "application/json")) }
        headers.append(.init(name: "Idempotency-Key", value: deliveryKey))
        headers.append(
            .init(
                name: WebhookSignature.headerName,
                value: WebhookSignature.header(body: body, timestamp: Int64(now.timeIntervalSince1970), secret: secret)))
        return WebhookRequest(method: webhook.method, url: webhook.url, headers: headers, body: body, timeout: TimeInterval(webhook.timeout))
    }

    /// The named top-level fields of a JSON object response, as a JSON object; nil when the body
    /// is not a JSON object or has none of them.
    static func savedFields(_ names: [String], from body: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        let kept = object.filter { names.contains($0.key) && !($0.value is NSNull) }
        guard !kept.isEmpty, let data = try? JSONSerialization.data(withJSONObject: kept, options: [.sortedKeys]) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    static func result(_ delivery: ClaimedDelivery, outcome: TransportOutcome, jitter: Double, savedData: String? = nil) -> SendResult {
        let (event, attemptOutcome, reply) = SendingSession.event(for: outcome, token: delivery.token, jitter: jitter)
        return SendResult(
            delivery: delivery, event: event, attemptOutcome: attemptOutcome, reply: reply, messageID: nil, savedData: savedData)
    }
}
