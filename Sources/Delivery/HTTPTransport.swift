import CCurl
import Foundation
import Mail
import Synchronization

/// Posts each message as JSON to an HTTP endpoint (an email API or a relay of the operator's own)
/// through libcurl, and classifies the response (design §6, issue 4).
///
/// The request body is `{"message_id", "delivery_key", "from", "to", "raw", "envelope_from",
/// "envelope_to"}`: `raw` is the complete composed RFC 5322 message (ASCII, CRLF line endings),
/// `from` and `to` are that message's header values as composed (display names RFC 2047-encoded
/// when not ASCII). Headers: `Authorization: Bearer <token>`, `Content-Type: application/json` and
/// `Idempotency-Key: <delivery key>`, identical on every retry of a delivery so the endpoint can
/// drop duplicates.
///
/// 2xx is sent (keeping an `id` or `message_id` field of a JSON response); 408, 429 and 5xx are
/// temporary, honouring `Retry-After`; 401, 403 and 404 (and redirects, which are not followed) are
/// the transport's fault; other 4xx fail the delivery permanently. No connection is a transport
/// fault; a connection lost after the whole request was sent is ambiguous.
///
/// One libcurl handle per transport, so consecutive requests reuse the connection. `send` blocks
/// and must run on a dedicated thread; concurrent calls are serialised. Nothing is logged here, and
/// reasons never contain the token.
public final class HTTPTransport: MailTransport {
    /// Always `http`.
    public var name: String { "http" }

    /// The endpoint as configured.
    public let url: String

    private let session: Mutex<HTTPSession>

    /// Creates the transport; connects only when the first message is sent.
    /// - Parameters:
    ///   - url: `http://` or `https://` endpoint that receives the POST.
    ///   - token: Bearer token; nil sends no `Authorization` header.
    ///   - timeout: Bounds connecting, and the whole request and response.
    /// - Throws: `TransportConfigurationError` for an unusable URL or token.
    public init(url: String, token: String?, timeout: TimeInterval) throws {
        func invalid(_ reason: String) -> TransportConfigurationError {
            TransportConfigurationError(transport: "http", reason: reason)
        }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else { throw invalid("delivery.http.url must be an http:// or https:// URL, not '\(url)'") }
        guard components.user == nil, components.password == nil else {
            throw invalid("put the credential in delivery.http.token, not in the URL")
        }
        if let token {
            // A CR or LF would let the token end the header and inject others.
            guard !token.isEmpty, token.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F })
            else { throw invalid("delivery.http.token must be printable ASCII") }
        }
        guard timeout > 0 else { throw invalid("the timeout must be positive") }
        self.url = url
        do {
            session = Mutex(try HTTPSession(url: url, token: token, timeout: timeout))
        } catch {
            throw invalid(error.reason)
        }
    }

    /// Posts `message` and classifies the response. Blocks for up to the timeout; never throws.
    public func send(_ message: ComposedMessage) -> TransportOutcome {
        session.withLock { $0.send(message) }
    }
}

/// The JSON document an `HTTPTransport` posts.
struct HTTPMessagePayload: Encodable, Equatable {
    var messageID: String
    var deliveryKey: String
    var from: String
    var to: String
    var raw: String
    var envelopeFrom: String
    var envelopeTo: String

    enum CodingKeys: String, CodingKey {
        case messageID = "message_id", deliveryKey = "delivery_key", from, to, raw
        case envelopeFrom = "envelope_from", envelopeTo = "envelope_to"
    }

    init(_ message: ComposedMessage) {
        messageID = message.messageID
        deliveryKey = message.deliveryKey
        let fields = Self.headerFields(message.data)
        from = fields["from"] ?? message.envelopeFrom
        to = fields["to"] ?? message.envelopeTo
        // Composed messages are ASCII (RFC 2047 and quoted-printable), so this decoding is lossless.
        raw = String(decoding: message.data, as: UTF8.self)
        envelopeFrom = message.envelopeFrom
        envelopeTo = message.envelopeTo
    }

    func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding strings cannot fail.
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// The header section's fields, unfolded, keyed by lowercased name (first occurrence wins).
    static func headerFields(_ data: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        var current: (name: String, value: String)?
        func flush() {
            if let current, fields[current.name] == nil { fields[current.name] = current.value }
        }
        for line in String(decoding: data, as: UTF8.self).components(separatedBy: "\r\n") {
            if line.isEmpty { break }
            if line.first == " " || line.first == "\t" {
                current?.value += line
            } else if let colon = line.firstIndex(of: ":") {
                flush()
                current = (line[..<colon].lowercased(), Substring(line[line.index(after: colon)...]).trimmingSpaces())
            }
        }
        flush()
        return fields
    }
}

/// The libcurl handle of one `HTTPTransport` and what its callbacks collect during a request. Only
/// used under the transport's lock.
final class HTTPSession {
    private let handle: CurlHandle
    private let capture = HTTPCapture(maxBodyLength: HTTPSession.maxBodyLength)
    private let token: String?
    private var needsFreshConnection = false

    /// Response bytes kept: enough for an id or an error excerpt; the rest is read and dropped.
    static let maxBodyLength = 16 * 1024

    init(url: String, token: String?, timeout: TimeInterval) throws(CurlSetupError) {
        handle = try CurlHandle()
        self.token = token
        try handle.set(CURLOPT_PROTOCOLS_STR, "http,https")
        try handle.set(CURLOPT_URL, url)
        try handle.set(CURLOPT_POST, true)
        // Redirects are not followed: a POST that moved is a configuration problem to fix, not to
        // silently re-send somewhere else.
        try handle.set(CURLOPT_FOLLOWLOCATION, false)
        try handle.set(CURLOPT_CONNECTTIMEOUT_MS, Int((timeout * 1000).rounded(.up)))
        try handle.set(CURLOPT_TIMEOUT_MS, Int((timeout * 1000).rounded(.up)))
        try capture.install(on: handle)
    }

    func send(_ message: ComposedMessage) -> TransportOutcome {
        let outcome = attempt(message)
        if case .sent = outcome { needsFreshConnection = false } else { needsFreshConnection = true }
        return outcome
    }

    private func attempt(_ message: ComposedMessage) -> TransportOutcome {
        let body = HTTPMessagePayload(message).encoded()
        do {
            var headers = [
                "Content-Type: application/json",
                "Accept: application/json",
                "Idempotency-Key: \(HeaderEncoding.sanitizeText(message.deliveryKey))",
                // Without this libcurl waits for a 100 Continue before large bodies, which many
                // servers never send.
                "Expect:",
            ]
            if let token { headers.append("Authorization: Bearer \(token)") }
            try handle.set(CURLOPT_HTTPHEADER, list: headers)
            try handle.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(body.count))
            try handle.set(CURLOPT_COPYPOSTFIELDS, copying: body)
            try handle.set(CURLOPT_FRESH_CONNECT, needsFreshConnection)
        } catch {
            return .transportFault(reason: "HTTP: cannot set up the request: \(error.reason)")
        }
        capture.reset()
        let (code, detail) = handle.perform()
        let status = handle.info(CURLINFO_RESPONSE_CODE)
        let response = HTTPResponse(status: status, retryAfter: capture.retryAfter, body: capture.body)
        defer { capture.reset() }
        return HTTPClassifier.outcome(
            response: response, failure: code == CURLE_OK ? nil : CurlFailure(code), detail: detail,
            requestSent: capture.progress.requestSent(bodyLength: body.count), connected: capture.progress.headerSent,
            now: Date())
    }
}

/// How far one request got on the wire; libcurl may send a request twice (it retries once on a
/// fresh connection when a reused one was dead), so each header block starts the count again.
struct HTTPExchange: Equatable, Sendable {
    private(set) var headerSent = false
    private(set) var bodyBytes = 0

    mutating func headerWasSent() {
        headerSent = true
        bodyBytes = 0
    }

    mutating func bodyBytesSent(_ count: Int) {
        bodyBytes += count
    }

    func requestSent(bodyLength: Int) -> Bool {
        headerSent && bodyBytes >= bodyLength
    }
}

/// What came back: the status (0 when no status line arrived), `Retry-After` and the start of the body.
struct HTTPResponse: Equatable, Sendable {
    var status: Int
    var retryAfter: String?
    var body: [UInt8]
}

/// Maps an HTTP exchange to a `TransportOutcome`. Pure, so every row is tested without a server.
enum HTTPClassifier {
    static func outcome(
        response: HTTPResponse, failure: CurlFailure?, detail: String, requestSent: Bool, connected: Bool, now: Date
    ) -> TransportOutcome {
        let status = response.status
        if status >= 100 {
            // The status line is the server's decision, even if the body was cut off afterwards.
            let reason = "HTTP \(status)" + (excerpt(response.body).map { ": " + $0 } ?? "")
            switch status {
            case 200..<300:
                return .sent(providerID: providerID(response.body))
            case 429:
                return .throttled(reason: reason, retryAfter: response.retryAfter.flatMap { retryAfterDuration($0, now: now) })
            case 408, 500..<600:
                return .temporaryFailure(
                    reason: reason, retryAfter: response.retryAfter.flatMap { retryAfterDuration($0, now: now) })
            case 401, 403, 404:
                return .transportFault(reason: reason)
            case 300..<400:
                return .transportFault(reason: reason + " (redirects are not followed: configure the final URL)")
            case 400..<500:
                return .permanentFailure(reason: reason, isBounce: false)
            default:
                return .temporaryFailure(reason: reason, retryAfter: nil)
            }
        }
        let failure = failure ?? .connectionLost  // success without a status cannot happen; be safe
        switch failure {
        case .unreachable, .tls, .startTLSRefused, .loginDenied, .configuration:
            return .transportFault(reason: "HTTP: \(detail)")
        case .timedOut, .connectionLost, .other:
            if requestSent {
                return .ambiguous(reason: "HTTP: no response after the request was sent (\(detail)); the endpoint may have accepted it")
            }
            // A server that takes the connection and then fails before reading a request is broken
            // for every message alike.
            return connected
                ? .temporaryFailure(reason: "HTTP: \(detail)", retryAfter: nil)
                : .transportFault(reason: "HTTP: \(detail)")
        }
    }

    /// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); a date in the past means
    /// "now". Nil for anything else.
    static func retryAfterDuration(_ value: String, now: Date) -> Duration? {
        let value = value.trimmingCharacters(in: .whitespaces)
        if !value.isEmpty, value.allSatisfy(\.isASCIIDigit) {
            // Capped long before Int's range; the delivery machine caps it again at the backoff cap.
            return .seconds(min(Int(value.prefix(9)) ?? 86_400, 86_400))
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        // IMF-fixdate first; RFC 850 and asctime are obsolete but recipients must accept them.
        for format in ["EEE, dd MMM yyyy HH:mm:ss 'GMT'", "EEEE, dd-MMM-yy HH:mm:ss 'GMT'", "EEE MMM d HH:mm:ss yyyy"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: value) {
                return .seconds(max(0, Int(date.timeIntervalSince(now).rounded(.up))))
            }
        }
        return nil
    }

    /// An `id` or `message_id` field of a JSON object body.
    static func providerID(_ body: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        for key in ["id", "message_id"] {
            if let text = object[key] as? String, !text.isEmpty { return String(text.prefix(200)) }
            if let number = object[key] as? NSNumber { return number.stringValue }
        }
        return nil
    }

    /// The start of a body, on one line, for a reason an operator reads.
    static func excerpt(_ body: [UInt8]) -> String? {
        let text = String(decoding: body.prefix(400), as: UTF8.self)
            .split(whereSeparator: { $0.isWhitespace || $0.isNewline }).joined(separator: " ")
        guard !text.isEmpty else { return nil }
        return text.count > 200 ? String(text.prefix(200)) + "…" : text
    }
}
