/// One complete SMTP reply: the code, the RFC 3463 enhanced status code when the server sent one,
/// and the text an operator reads ("451 4.3.0 try later").
struct SMTPReply: Equatable, Sendable {
    /// The three-digit reply code.
    var code: Int
    /// The enhanced status code (`5.1.1`), if the first line carried one.
    var enhancedStatus: String?
    /// The reply as sent: the first line in full, continuation lines without their code prefix.
    var text: String

    /// The reply's text after the code and enhanced status code ("OK queued as Q1"), for provider IDs.
    var message: String {
        var rest = Substring(text).dropFirst(4)  // "250 " or "250-"
        if let enhancedStatus, rest.hasPrefix(enhancedStatus) { rest = rest.dropFirst(enhancedStatus.count) }
        return rest.trimmingSpaces()
    }

    /// Longest reply text kept: enough for any real diagnostic, bounded so a chatty server cannot
    /// bloat the attempt rows that store reasons.
    static let maxTextLength = 400
}

/// The step of an SMTP transaction a command starts; failures are classified by the step whose
/// command got the reply (or got none).
enum SMTPStage: String, Equatable, Sendable {
    case greeting = "greeting"
    case hello = "EHLO"
    case startTLS = "STARTTLS"
    case auth = "AUTH"
    case mail = "MAIL FROM"
    case recipient = "RCPT TO"
    case data = "DATA"
    /// The message content, after the server's 354; its reply is the one that accepts the message.
    case message = "end of data"
}

/// What libcurl showed of one send: fed from the debug callback (commands out, reply lines in) and
/// the read callback (whether the whole message was handed over).
///
/// Only command verbs are recorded, never their arguments, so AUTH credentials (in the AUTH line
/// itself or in the lines answering the server's 334 challenges) never reach a reason.
struct SMTPExchange: Equatable, Sendable {
    /// The stage whose command was sent last.
    private(set) var stage: SMTPStage = .greeting
    /// The last complete reply and the stage it answered.
    private(set) var lastReply: SMTPReply?
    /// True between a command and its complete reply (and before the greeting).
    private(set) var awaitingReply = true
    /// True once any reply arrived during this send: the connection demonstrably worked.
    private(set) var sawReply = false
    /// True once the read callback handed libcurl the last byte of the message: from then on the
    /// end-of-data marker may be on the wire, and a lost reply makes the outcome ambiguous.
    var messageHandedOver = false

    private var pendingLines: [String] = []
    /// After QUIT (libcurl closing a connection) replies are bookkeeping, not the transaction's.
    private var quitting = false

    /// A command line libcurl wrote (CURLINFO_HEADER_OUT).
    mutating func commandSent(_ line: String) {
        // Lines answering an AUTH challenge are base64 credentials, not commands.
        if stage == .auth, lastReply?.code == 334, !awaitingReply {
            awaitingReply = true
            return
        }
        // Character, not byte, comparisons: "\r\n" is a single Character in Swift.
        let verb = line.prefix { !$0.isWhitespace }.uppercased()
        let next: SMTPStage
        switch verb {
        case "EHLO", "HELO": next = .hello
        case "STARTTLS": next = .startTLS
        case "AUTH": next = .auth
        case "MAIL": next = .mail
        case "RCPT": next = .recipient
        case "DATA": next = .data
        case "QUIT":
            quitting = true
            return
        default: return  // nothing else changes what a failure means
        }
        quitting = false
        stage = next
        awaitingReply = true
        pendingLines = []
    }

    /// A reply line libcurl read (CURLINFO_HEADER_IN), CRLF included or not.
    mutating func replyLineReceived(_ rawLine: String) {
        var line = Substring(rawLine)
        while line.last?.isNewline == true { line = line.dropLast() }  // "\r\n" is one Character
        let bytes = Array(line.utf8)
        guard bytes.count >= 3, bytes[0...2].allSatisfy({ (0x30...0x39).contains($0) }),
              let code = Int(String(decoding: bytes[0...2], as: UTF8.self))
        else { return }
        if quitting {
            // A 220 after QUIT is the greeting of the next connection; anything else answers QUIT.
            guard code == 220 else { return }
            quitting = false
            stage = .greeting
            awaitingReply = true
            pendingLines = []
        }
        pendingLines.append(String(line))
        if bytes.count > 3, bytes[3] == UInt8(ascii: "-") { return }  // more lines follow

        let reply = Self.reply(code: code, lines: pendingLines)
        pendingLines = []
        lastReply = reply
        sawReply = true
        awaitingReply = false
        if stage == .data, code == 354 {
            stage = .message
            awaitingReply = true
        }
    }

    /// The complete reply to the last command, if it arrived.
    var replyToLastCommand: SMTPReply? {
        awaitingReply ? nil : lastReply
    }

    private static func reply(code: Int, lines: [String]) -> SMTPReply {
        let first = lines[0]
        let afterCode = first.dropFirst(4)
        let candidate = afterCode.prefix { $0 != " " }
        let parts = candidate.split(separator: ".", omittingEmptySubsequences: false)
        let enhanced: String? =
            if parts.count == 3, let head = parts[0].first, "245".contains(head), parts[0].count == 1,
               parts[1...].allSatisfy({ (1...3).contains($0.count) && $0.allSatisfy(\.isASCIIDigit) }) {
                String(candidate)
            } else { nil }
        var text = first
        for line in lines.dropFirst() {
            let rest = line.dropFirst(4).trimmingSpaces()
            if !rest.isEmpty { text += " " + rest }
        }
        if text.count > SMTPReply.maxTextLength { text = String(text.prefix(SMTPReply.maxTextLength)) + "…" }
        return SMTPReply(code: code, enhancedStatus: enhanced, text: text)
    }
}

/// What kind of failure libcurl reported, reduced to what the classification needs.
enum CurlFailure: Equatable, Sendable {
    /// DNS failure or nothing accepting connections at the address.
    case unreachable
    /// TLS handshake or certificate failure.
    case tls
    /// STARTTLS was required and the server does not offer it or refused it.
    case startTLSRefused
    /// Authentication failed.
    case loginDenied
    /// A connect, response or low-speed timeout.
    case timedOut
    /// The connection broke (or the server said something that is not the protocol).
    case connectionLost
    /// The handle was set up with something this libcurl cannot do.
    case configuration
    /// Anything else.
    case other
}

/// Maps an SMTP send to a `TransportOutcome`, from the stage that failed and the server's reply
/// (design §6). Pure, so every row of the table is tested without a server.
enum SMTPClassifier {
    /// - Parameters:
    ///   - failure: nil when libcurl reported success.
    ///   - detail: libcurl's message for the failure (never contains credentials).
    static func outcome(failure: CurlFailure?, detail: String, exchange: SMTPExchange) -> TransportOutcome {
        let reply = exchange.replyToLastCommand
        if let reply, exchange.stage == .message, reply.code / 100 == 2 {
            let id = reply.message
            return .sent(providerID: id.isEmpty ? nil : id)
        }
        guard let failure else {
            // libcurl succeeded without a visible final reply; it checks the 250 itself.
            return .sent(providerID: nil)
        }
        if let reply, reply.code >= 400 {
            return outcome(rejection: reply, at: exchange.stage)
        }
        if exchange.messageHandedOver, exchange.stage == .message, exchange.replyToLastCommand == nil {
            return .ambiguous(reason: "SMTP: no reply after the message data was sent (\(detail)); the server may have accepted it")
        }
        let during = " (during \(exchange.stage.rawValue))"
        switch failure {
        case .unreachable, .configuration:
            return .transportFault(reason: "SMTP: \(detail)")
        case .tls:
            return .transportFault(reason: "SMTP TLS failure: \(detail)")
        case .startTLSRefused:
            return .transportFault(reason: "SMTP: STARTTLS is required but the server did not start TLS: \(detail)")
        case .loginDenied:
            return .transportFault(reason: "SMTP authentication failed: \(detail)")
        case .timedOut:
            // Without a single reply the server was never reached (or never greeted): that is the
            // transport's problem, not this message's.
            return exchange.sawReply
                ? .temporaryFailure(reason: "SMTP timeout\(during): \(detail)", retryAfter: nil)
                : .transportFault(reason: "SMTP: \(detail)")
        case .connectionLost:
            return exchange.sawReply
                ? .temporaryFailure(reason: "SMTP connection lost\(during): \(detail)", retryAfter: nil)
                : .transportFault(reason: "SMTP server closed the connection without a greeting: \(detail)")
        case .other:
            return .temporaryFailure(reason: "SMTP\(during): \(detail)", retryAfter: nil)
        }
    }

    /// A 4xx/5xx reply to the command of `stage`.
    static func outcome(rejection reply: SMTPReply, at stage: SMTPStage) -> TransportOutcome {
        let reason = "SMTP \(stage.rawValue) rejected: \(reply.text)"
        // A relay that says "slow down" says it of every message, at whatever stage: nothing is
        // the message's fault, and the sender's rate must drop rather than the circuit open.
        if stage != .startTLS, isThrottling(reply) { return .throttled(reason: reason, retryAfter: nil) }
        switch stage {
        case .greeting, .hello, .startTLS, .auth, .mail:
            // Nothing about this message was looked at yet: every other message would meet the
            // same refusal, so the circuit breaker backs off and no attempt is spent.
            return .transportFault(reason: reason)
        case .recipient, .data, .message:
            if isRecipientSpecific(reply, at: stage) { return .permanentFailure(reason: reason, isBounce: true) }
            if reply.code / 100 == 4 { return .temporaryFailure(reason: reason, retryAfter: nil) }
            return .permanentFailure(reason: reason, isBounce: false)
        }
    }

    /// A reply that asks the client to slow down rather than refusing this message: 421 (the
    /// service closes the channel; "too many connections", "try again later"), 454 4.7.0
    /// (Amazon SES's "Throttling failure: Maximum sending rate exceeded"), or any 4xx whose text
    /// says it throttles. (The caller leaves out STARTTLS, whose 454 4.7.0 means "TLS not available".)
    static func isThrottling(_ reply: SMTPReply) -> Bool {
        guard reply.code / 100 == 4 else { return false }
        if reply.code == 421 || (reply.code == 454 && reply.enhancedStatus == "4.7.0") { return true }
        return reply.text.lowercased().contains("throttl")
    }

    /// A permanent reply about the recipient itself (design §6): RCPT 550/551/553, or enhanced
    /// status 5.1.x / 5.2.1 at RCPT or for the message data. When the server sends an enhanced
    /// status code it decides: `550 5.7.1 relaying denied` is about the relay's policy, and
    /// suppressing the address for it would be wrong.
    static func isRecipientSpecific(_ reply: SMTPReply, at stage: SMTPStage) -> Bool {
        guard reply.code / 100 == 5 else { return false }
        if let status = reply.enhancedStatus {
            return status.hasPrefix("5.1.") || status == "5.2.1"
        }
        return stage == .recipient && [550, 551, 553].contains(reply.code)
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
