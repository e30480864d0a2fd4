// The Delivery module hands a composed message (Mail's `ComposedMessage`) to a transport. Transports
// (`file`, `null`, and `smtp`/`http` through libcurl) only move bytes and classify what happened as a
// `TransportOutcome`; they never decide state. DKIM signing is the relay's job: seqd hands over the
// final bytes and never rewrites them. Webhooks (`WebhookClient`, `WebhookSignature`) and the
// unsubscribe tokens in `List-Unsubscribe` links live here too; composing and parsing the message
// format is Mail's.

import Mail

/// What happened to one send attempt, classified for the delivery state machine.
///
/// The classification is the transport's job because only it knows where in the protocol a failure
/// happened; the state machine only decides what each class means (attempts, backoff, bounce).
public enum TransportOutcome: Sendable, Equatable {
    /// Accepted by the next hop. `providerID` is whatever identifies it there (SMTP queue id, API
    /// message id, file path), kept for the audit trail.
    case sent(providerID: String?)
    /// A temporary refusal of this message (4xx at RCPT/DATA, HTTP 429/5xx): retry with backoff,
    /// no sooner than `retryAfter` when the server said so.
    case temporaryFailure(reason: String, retryAfter: Duration?)
    /// A permanent refusal. `isBounce` is true only for recipient-specific replies (RCPT or DATA
    /// 550/551/553, enhanced status 5.1.x or 5.2.1), which suppress the address.
    case permanentFailure(reason: String, isBounce: Bool)
    /// The transport itself is broken (connection, TLS, AUTH or MAIL-stage errors, HTTP
    /// 401/403/404, an unwritable outbox): opens the circuit breaker and spends no attempt,
    /// because no message could have left.
    case transportFault(reason: String)
    /// The relay asked us to slow down (SMTP 421, 454 4.7.0, a "throttling" reply; HTTP 429):
    /// nothing was accepted, no attempt is spent, the sender lowers its rate and retries later
    /// (no sooner than `retryAfter` when the server said so).
    case throttled(reason: String, retryAfter: Duration?)
    /// The message may or may not have been accepted (for example the connection dropped after the
    /// data was sent): the delivery becomes `unknown`.
    case ambiguous(reason: String)
}

/// Moves composed messages somewhere.
///
/// `send` blocks by design: the daemon runs each transport on its own thread, never on the Swift
/// concurrency pool, where one slow SMTP server would stall every task. Implementations must be
/// safe to call from several such threads at once.
public protocol MailTransport: Sendable {
    /// The configuration name (`file`, `smtp`, `http`, `null`), for logs and metrics.
    var name: String { get }
    /// Sends one message and classifies the result; never throws, every failure is an outcome.
    func send(_ message: ComposedMessage) -> TransportOutcome
    /// Called after a batch of `send`s, before their outcomes are recorded: a transport that
    /// defers work common to the batch (the file transport's directory `fsync`) finishes it here.
    func finishBatch()
}

extension MailTransport {
    /// Nothing to finish by default.
    public func finishBatch() {}
}

/// Discards every message and reports it sent, so benchmarks measure seqd rather than a mail server.
public struct NullTransport: MailTransport {
    /// Always `null`.
    public var name: String { "null" }

    /// Creates the transport.
    public init() {}

    /// Returns `.sent(providerID: nil)` without looking at the message.
    public func send(_ message: ComposedMessage) -> TransportOutcome {
        .sent(providerID: nil)
    }
}
