import CCurl
import Foundation
import Mail
import Synchronization

/// Sends each message to an SMTP relay through libcurl and classifies every failure by the step of
/// the SMTP transaction that failed (design §6): a recipient-specific permanent reply is a bounce;
/// connection, TLS, AUTH and MAIL-stage failures are the transport's fault; other 4xx are temporary;
/// a connection lost after the message data was sent is ambiguous.
///
/// One libcurl handle per transport, kept across messages, so consecutive messages share one SMTP
/// connection; after any failure the next message starts on a fresh connection. `send` blocks and
/// must run on a dedicated thread (the daemon gives each sender thread its own transport); calls from
/// several threads at once are serialised rather than unsafe.
///
/// Reasons carry the command and the server's reply ("SMTP RCPT TO rejected: 451 4.3.0 try later")
/// and never the password: only command verbs are recorded. The transport logs nothing itself.
public final class SMTPTransport: MailTransport {
    /// When to use STARTTLS on an `smtp://` URL (`smtps://` is TLS from the first byte regardless).
    public enum StartTLS: String, Sendable, CaseIterable {
        /// TLS or nothing: a server that does not offer or refuses STARTTLS is a transport fault.
        case required
        /// TLS when the server offers it, plain text otherwise.
        case opportunistic
        /// Never TLS; only sensible for a relay on the same host.
        case off

        /// The default: `required`, except `opportunistic` for a relay on a loopback address,
        /// where plain text never leaves the machine.
        public static func defaultPolicy(forHost host: String) -> StartTLS {
            SMTPTransport.isLoopback(host: host) ? .opportunistic : .required
        }
    }

    /// Always `smtp`.
    public var name: String { "smtp" }

    /// The relay URL as configured.
    public let url: String
    /// The STARTTLS policy in effect (after applying the default).
    public let startTLS: StartTLS

    private let session: Mutex<SMTPSession>

    /// Creates the transport; connects only when the first message is sent.
    /// - Parameters:
    ///   - url: `smtp://host[:port]` or `smtps://host[:port]` (credentials do not belong in the URL).
    ///   - username: AUTH user; nil to send without authenticating.
    ///   - password: AUTH password; requires `username`.
    ///   - starttls: STARTTLS policy; nil for `StartTLS.defaultPolicy(forHost:)`.
    ///   - timeout: Bounds every wait: connecting (TCP, TLS, greeting, EHLO, AUTH), each later reply,
    ///     and any stretch of the upload without progress. Rounded up to whole seconds for the waits
    ///     libcurl only takes in seconds.
    ///   - heloName: The name sent with EHLO; nil for this host's name.
    ///   - messagesPerConnection: Messages one connection carries before the next message opens a
    ///     new one (`delivery.smtp.messages_per_connection`), so a relay's per-connection limits and
    ///     load balancing see fresh connections now and then.
    /// - Throws: `TransportConfigurationError` for an unusable URL, HELO name or libcurl build.
    public init(
        url: String, username: String?, password: String?, starttls: StartTLS? = nil,
        timeout: TimeInterval, heloName: String? = nil, messagesPerConnection: Int = 100
    ) throws {
        func invalid(_ reason: String) -> TransportConfigurationError {
            TransportConfigurationError(transport: "smtp", reason: reason)
        }
        guard var components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              scheme == "smtp" || scheme == "smtps", let host = components.host, !host.isEmpty
        else { throw invalid("delivery.smtp.url must look like smtp://host:port or smtps://host:port, not '\(url)'") }
        guard components.user == nil, components.password == nil else {
            // Keeps the password out of the URL, which libcurl and operators print.
            throw invalid("put credentials in delivery.smtp.username and delivery.smtp.password, not in the URL")
        }
        guard password == nil || username != nil else { throw invalid("a password needs a username") }
        guard timeout > 0 else { throw invalid("the timeout must be positive") }
        guard messagesPerConnection > 0 else { throw invalid("messages_per_connection must be at least 1") }
        if let heloName {
            guard !heloName.isEmpty, heloName.unicodeScalars.allSatisfy({ $0.isASCII && Self.isHeloCharacter($0) })
            else { throw invalid("the HELO name '\(heloName)' is not a host name or address literal") }
            // libcurl takes the EHLO argument from the URL's path.
            components.path = "/" + heloName
        }
        guard let effectiveURL = components.string else { throw invalid("cannot use the URL '\(url)'") }

        let policy = starttls ?? StartTLS.defaultPolicy(forHost: host)
        self.url = url
        self.startTLS = policy
        let settings = SMTPSession.Settings(
            url: effectiveURL, username: username, password: password, startTLS: policy, timeout: timeout,
            messagesPerConnection: messagesPerConnection)
        do {
            session = Mutex(try SMTPSession(settings))
        } catch {
            throw invalid(error.reason)
        }
    }

    /// Sends `message` from `envelopeFrom` to `envelopeTo`, reusing the open connection when there
    /// is one. Blocks for up to a few timeouts; never throws.
    public func send(_ message: ComposedMessage) -> TransportOutcome {
        session.withLock { $0.send(message) }
    }

    static func isLoopback(host: String) -> Bool {
        var host = host.lowercased()
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" || host.hasSuffix(".localhost") || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// Letters, digits, `-` and `.` (host names) plus `[`, `]` and `:` (address literals).
    private static func isHeloCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "-", ".", "[", "]", ":": true
        default: false
        }
    }
}

/// The libcurl handle of one `SMTPTransport` and the state its callbacks fill during a send. Only
/// used under the transport's lock; the callbacks reach it through libcurl's user-data pointer.
final class SMTPSession {
    struct Settings {
        var url: String
        var username: String?
        var password: String?
        var startTLS: SMTPTransport.StartTLS
        var timeout: TimeInterval
        var messagesPerConnection: Int
    }

    private let handle: CurlHandle
    /// The message being uploaded and how much of it libcurl has taken.
    private var upload: [UInt8] = []
    private var uploadOffset = 0
    private var exchange = SMTPExchange()
    /// Set after a failure, so the next message cannot inherit a connection in an unknown state.
    /// libcurl has no RSET between transactions; a new connection is its clean equivalent.
    private var needsFreshConnection = false
    /// Messages accepted on the current connection, and how many it may carry.
    private var sentOnConnection = 0
    private let messagesPerConnection: Int

    init(_ settings: Settings) throws(CurlSetupError) {
        messagesPerConnection = settings.messagesPerConnection
        handle = try CurlHandle()
        let wholeSeconds = Int(settings.timeout.rounded(.up))
        try handle.set(CURLOPT_PROTOCOLS_STR, "smtp,smtps")
        try handle.set(CURLOPT_URL, settings.url)
        if let username = settings.username { try handle.set(CURLOPT_USERNAME, username) }
        if let password = settings.password { try handle.set(CURLOPT_PASSWORD, password) }
        let useSSL: curl_usessl =
            switch settings.startTLS {
            case .required: CURLUSESSL_ALL
            case .opportunistic: CURLUSESSL_TRY
            case .off: CURLUSESSL_NONE
            }
        try handle.set(CURLOPT_USE_SSL, Int(useSSL.rawValue))
        try handle.set(CURLOPT_CONNECTTIMEOUT_MS, Int((settings.timeout * 1000).rounded(.up)))
        // A server that stops answering a command (pingpong wait) ...
        try handle.set(CURLOPT_SERVER_RESPONSE_TIMEOUT, wholeSeconds)
        // ... or stops taking the message data (under 1 byte/s for the whole timeout) ends the attempt.
        try handle.set(CURLOPT_LOW_SPEED_LIMIT, 1)
        try handle.set(CURLOPT_LOW_SPEED_TIME, wholeSeconds)
        try handle.set(CURLOPT_UPLOAD, true)

        let user = Unmanaged.passUnretained(self).toOpaque()
        try handle.setReadCallback(Self.readCallback)
        try handle.set(CURLOPT_READDATA, pointer: user)
        // The debug callback is only called in verbose mode; with it set, libcurl prints nothing.
        try handle.setDebugCallback(Self.debugCallback)
        try handle.set(CURLOPT_DEBUGDATA, pointer: user)
        try handle.set(CURLOPT_VERBOSE, true)
    }

    func send(_ message: ComposedMessage) -> TransportOutcome {
        if sentOnConnection >= messagesPerConnection { needsFreshConnection = true }
        if needsFreshConnection { sentOnConnection = 0 }
        let outcome = attempt(message)
        // libcurl closes the connection itself after most failures; asking for a fresh one makes
        // sure, whatever the failure was, that the next message starts a clean SMTP session.
        if case .sent = outcome {
            needsFreshConnection = false
            sentOnConnection += 1
        } else {
            needsFreshConnection = true
        }
        return outcome
    }

    private func attempt(_ message: ComposedMessage) -> TransportOutcome {
        do {
            try handle.set(CURLOPT_MAIL_FROM, "<\(message.envelopeFrom)>")
            try handle.set(CURLOPT_MAIL_RCPT, list: ["<\(message.envelopeTo)>"])
            // Lets a server that announces SIZE refuse an oversized message at MAIL FROM.
            try handle.set(CURLOPT_INFILESIZE_LARGE, offset: Int64(message.data.count))
        } catch {
            return .transportFault(reason: "SMTP: cannot set up the message: \(error.reason)")
        }
        var (failure, detail) = perform(message, freshConnection: needsFreshConnection)
        // A kept-alive connection the server has since closed fails at the first command, before
        // anything of this message was accepted; one retry on a new connection is always safe.
        if failure == .connectionLost, !exchange.sawReply, !exchange.messageHandedOver,
           handle.info(CURLINFO_NUM_CONNECTS) == 0 {
            (failure, detail) = perform(message, freshConnection: true)
        }
        return SMTPClassifier.outcome(failure: failure, detail: detail, exchange: exchange)
    }

    private func perform(_ message: ComposedMessage, freshConnection: Bool) -> (CurlFailure?, String) {
        upload = message.data
        uploadOffset = 0
        exchange = SMTPExchange()
        do {
            try handle.set(CURLOPT_FRESH_CONNECT, freshConnection)
        } catch {
            return (.configuration, error.reason)
        }
        let (code, detail) = handle.perform()
        upload = []
        return (code == CURLE_OK ? nil : CurlFailure(code), detail)
    }

    /// CURLOPT_READFUNCTION: hands libcurl the next piece of the message. libcurl dot-stuffs and
    /// appends the end-of-data marker itself, so the composed bytes go out exactly as they are.
    private static let readCallback: curl_read_callback = { buffer, size, count, user in
        guard let buffer, let user else { return 0 }
        let session = Unmanaged<SMTPSession>.fromOpaque(user).takeUnretainedValue()
        let remaining = session.upload.count - session.uploadOffset
        let length = min(remaining, size * count)
        if length > 0 {
            session.upload.withUnsafeBytes { bytes in
                UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + session.uploadOffset, byteCount: length)
            }
            session.uploadOffset += length
        }
        // Marked as soon as the last byte is handed over: libcurl knows the size (SIZE, and
        // CURLOPT_INFILESIZE_LARGE) and does not necessarily ask again to see the end.
        if session.uploadOffset == session.upload.count { session.exchange.messageHandedOver = true }
        return length
    }

    /// CURLOPT_DEBUGFUNCTION: the SMTP conversation, line by line. Commands (HEADER_OUT) and replies
    /// (HEADER_IN) feed the exchange; message data and TLS records are ignored.
    private static let debugCallback: curl_debug_callback = { _, type, data, size, user in
        guard let data, let user, type == CURLINFO_HEADER_IN || type == CURLINFO_HEADER_OUT else { return 0 }
        let session = Unmanaged<SMTPSession>.fromOpaque(user).takeUnretainedValue()
        let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
        // Splitting on "\n" would not split at all: "\r\n" is one Character in Swift.
        for line in text.split(whereSeparator: \.isNewline) {
            if type == CURLINFO_HEADER_IN {
                session.exchange.replyLineReceived(String(line))
            } else {
                session.exchange.commandSent(String(line))
            }
        }
        return 0
    }
}
