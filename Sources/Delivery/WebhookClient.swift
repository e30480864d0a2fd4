import CCurl
import Foundation
import Synchronization

/// One HTTP request to a webhook: a sequence's webhook step or the event webhook. Built by the
/// caller (templates rendered, secrets resolved); the client adds nothing but what libcurl needs.
public struct WebhookRequest: Sendable, Equatable {
    public var method: String
    public var url: String
    /// Name and value, in order; names and values are checked for CR, LF and NUL before sending.
    public var headers: [Header]
    public var body: [UInt8]
    /// Bounds connecting, and the whole request and response.
    public var timeout: TimeInterval

    public struct Header: Sendable, Equatable, Codable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(method: String, url: String, headers: [Header], body: [UInt8], timeout: TimeInterval) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

/// What became of a webhook request.
public enum WebhookResult: Sendable, Equatable {
    /// The receiver answered; `body` is at most `WebhookClient.maxResponseBytes` of it.
    case responded(status: Int, retryAfter: String?, body: [UInt8])
    /// Not sent: the URL is unusable or points where webhooks may not go (private networks).
    case refused(reason: String)
    /// Not sent completely (no connection, or it failed before the request left): safe to retry.
    case notDelivered(reason: String)
    /// The request left and no answer came: the receiver may have acted on it.
    case noAnswer(reason: String)

    /// The delivery machine's view: 2xx sent; 408, 429 and 5xx, and requests that never left,
    /// retried (`Retry-After` honoured); other statuses (redirects included, which are not
    /// followed) and refused URLs fail permanently; no answer after sending is ambiguous.
    /// A webhook receiver's troubles never open the email transport's circuit breaker nor slow its
    /// rate: they are the step's outcome, not the relay's.
    public func outcome(now: Date) -> TransportOutcome {
        switch self {
        case .responded(let status, let retryAfter, let body):
            let reason = "HTTP \(status)" + (HTTPClassifier.excerpt(body).map { ": " + $0 } ?? "")
            let delay = retryAfter.flatMap { HTTPClassifier.retryAfterDuration($0, now: now) }
            switch status {
            case 200..<300: return .sent(providerID: nil)
            case 408, 429, 500..<600: return .temporaryFailure(reason: reason, retryAfter: delay)
            case 300..<400: return .permanentFailure(reason: reason + " (redirects are not followed)", isBounce: false)
            case 400..<500: return .permanentFailure(reason: reason, isBounce: false)
            default: return .temporaryFailure(reason: reason, retryAfter: nil)
            }
        case .refused(let reason):
            return .permanentFailure(reason: reason, isBounce: false)
        case .notDelivered(let reason):
            return .temporaryFailure(reason: reason, retryAfter: nil)
        case .noAnswer(let reason):
            return .ambiguous(reason: reason)
        }
    }
}

/// Makes webhook requests through libcurl, one at a time, reusing connections between them. Refuses
/// private, loopback and link-local destinations unless allowed (SSRF): the host is resolved first,
/// every address checked, and libcurl pinned to the checked addresses, so a DNS answer that changes
/// between the check and the connection cannot slip through. Redirects are never followed.
/// Blocking; run it on a dedicated thread.
public final class WebhookClient: Sendable {
    /// Response bytes kept (the rest is read and dropped): enough for saved fields and an excerpt.
    public static let maxResponseBytes = 64 * 1024
    /// The longest a request may take, whatever a step asks for.
    public static let maxTimeout: TimeInterval = 60

    private let allowPrivateNetworks: Bool
    private let session: Mutex<WebhookSession?>

    public init(allowPrivateNetworks: Bool) {
        self.allowPrivateNetworks = allowPrivateNetworks
        session = Mutex(nil)
    }

    public func perform(_ request: WebhookRequest) -> WebhookResult {
        guard let components = URLComponents(string: request.url), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else { return .refused(reason: "'\(Self.redacted(request.url))' is not an http(s) URL") }
        guard components.user == nil, components.password == nil else {
            return .refused(reason: "credentials in a webhook URL are refused; send them in a header")
        }
        for header in request.headers {
            let bad = { (text: String) in text.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" } }
            guard !header.name.isEmpty, !bad(header.name), !bad(header.value), !header.name.contains(":") else {
                return .refused(reason: "header '\(header.name)' has a character not allowed in a header")
            }
        }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        let bareHost = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        let addresses: [String]
        switch NetworkAddress.resolve(bareHost, port: port) {
        case .failure(let reason): return .notDelivered(reason: "cannot resolve \(bareHost): \(reason)")
        case .success(let resolved): addresses = resolved
        }
        if !allowPrivateNetworks, let blocked = addresses.first(where: NetworkAddress.isPrivate) {
            return .refused(
                reason: "\(bareHost) resolves to \(blocked), a private, loopback or link-local address "
                    + "(set webhook.allow_private_networks to allow it)")
        }
        return session.withLock { session in
            if session == nil {
                do throws(CurlSetupError) {
                    session = try WebhookSession()
                } catch {
                    return .notDelivered(reason: "cannot set up the request: \(error.reason)")
                }
            }
            return session!.perform(request, host: bareHost, port: port, addresses: addresses)
        }
    }

    /// The URL without its query, for messages (a query may carry a token).
    static func redacted(_ url: String) -> String {
        String(url.prefix { $0 != "?" }.prefix(200))
    }
}

/// Resolving host names and telling private destinations apart.
enum NetworkAddress {
    static func resolve(_ host: String, port: Int) -> Result<[String], ResolveError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            return .failure(ResolveError(description: String(cString: gai_strerror(status))))
        }
        defer { freeaddrinfo(list) }
        var addresses = [String]()
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let entry = next {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !addresses.contains(text) { addresses.append(text) }
            }
            next = entry.pointee.ai_next
        }
        return addresses.isEmpty ? .failure(ResolveError(description: "no address")) : .success(addresses)
    }

    struct ResolveError: Error, CustomStringConvertible {
        let description: String
    }

    /// Loopback, private (RFC 1918, unique local), link-local, carrier-grade NAT, unspecified,
    /// multicast and reserved ranges, and IPv4 addresses embedded in IPv6 ones that are.
    static func isPrivate(_ address: String) -> Bool {
        if let v4 = ipv4(address) { return isPrivateV4(v4) }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, address.split(separator: "%").first.map(String.init) ?? address, &bytes) == 1 else { return true }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return isPrivateV4(Array(bytes[12..<16]))  // ::ffff:a.b.c.d
        }
        if bytes[0..<12].allSatisfy({ $0 == 0 }) { return true }  // ::, ::1, and IPv4-compatible
        if bytes[0] == 0x64 && bytes[1] == 0xFF && bytes[2] == 0x9B { return isPrivateV4(Array(bytes[12..<16])) }  // NAT64
        switch bytes[0] {
        case 0xFC, 0xFD: return true  // unique local fc00::/7
        case 0xFE: return bytes[1] & 0xC0 == 0x80 || bytes[1] & 0xC0 == 0xC0  // link-local fe80::/10, site-local fec0::/10
        case 0xFF: return true  // multicast
        default: return bytes[0] == 0x20 && bytes[1] == 0x01 && bytes[2] == 0x0D && bytes[3] == 0xB8  // documentation
        }
    }

    private static func ipv4(_ address: String) -> [UInt8]? {
        var value = in_addr()
        guard inet_pton(AF_INET, address, &value) == 1 else { return nil }
        return withUnsafeBytes(of: value.s_addr) { Array($0) }
    }

    private static func isPrivateV4(_ b: [UInt8]) -> Bool {
        switch b[0] {
        case 0, 10, 127: return true
        case 100: return b[1] & 0xC0 == 64  // 100.64.0.0/10
        case 169: return b[1] == 254
        case 172: return b[1] & 0xF0 == 16
        case 192: return (b[1] == 168) || (b[1] == 0 && b[2] == 0) || (b[1] == 0 && b[2] == 2)
        case 198: return b[1] & 0xFE == 18 || (b[1] == 51 && b[2] == 100)
        case 203: return b[1] == 0 && b[2] == 113
        case 224...255: return true
        default: return false
        }
    }
}

/// The libcurl handle of one `WebhookClient` and what its callbacks collect during a request.
/// Only used under the client's lock; the callbacks reach it through libcurl's user-data pointer.
final class WebhookSession {
    private let handle: CurlHandle
    private let capture = HTTPCapture(maxBodyLength: WebhookClient.maxResponseBytes)

    init() throws(CurlSetupError) {
        handle = try CurlHandle()
        try handle.set(CURLOPT_PROTOCOLS_STR, "http,https")
        try handle.set(CURLOPT_FOLLOWLOCATION, false)
        try handle.set(CURLOPT_USERAGENT, "seqd-webhook")
        try capture.install(on: handle)
    }

    func perform(_ request: WebhookRequest, host: String, port: Int, addresses: [String]) -> WebhookResult {
        let method = request.method.uppercased()
        let timeout = Int((min(max(request.timeout, 0.1), WebhookClient.maxTimeout) * 1000).rounded(.up))
        let sendsBody = method != "GET" && method != "HEAD"
        do {
            try handle.set(CURLOPT_URL, request.url)
            // Connect only to the addresses that were checked.
            let pinned = addresses.map { $0.contains(":") ? "[\($0)]" : $0 }.joined(separator: ",")
            try handle.set(CURLOPT_RESOLVE, list: ["\(host):\(port):\(pinned)"])
            try handle.set(CURLOPT_CONNECTTIMEOUT_MS, timeout)
            try handle.set(CURLOPT_TIMEOUT_MS, timeout)
            try handle.set(CURLOPT_HTTPHEADER, list: request.headers.map { "\($0.name): \($0.value)" } + ["Expect:"])
            if sendsBody {
                try handle.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(request.body.count))
                try handle.set(CURLOPT_COPYPOSTFIELDS, copying: request.body)
            } else {
                try handle.set(CURLOPT_HTTPGET, true)
            }
            try handle.set(CURLOPT_NOBODY, method == "HEAD")
            // After the body options, which reset the method to POST.
            try handle.set(CURLOPT_CUSTOMREQUEST, method)
        } catch {
            return .notDelivered(reason: "cannot set up the request: \(error.reason)")
        }
        capture.reset()
        defer { capture.reset() }
        let (_, detail) = handle.perform()
        let status = handle.info(CURLINFO_RESPONSE_CODE)
        if status >= 100 {
            return .responded(status: status, retryAfter: capture.retryAfter, body: capture.body)
        }
        return capture.progress.requestSent(bodyLength: sendsBody ? request.body.count : 0)
            ? .noAnswer(reason: "no response after the request was sent (\(detail)); the receiver may have acted on it")
            : .notDelivered(reason: detail)
    }
}
