import Foundation
import Testing
@testable import Delivery

/// The classification tables without a server: what the transports see of an exchange, and the
/// outcome each case must produce.
@Suite("SMTP and HTTP failure classification")
struct TransportClassificationTests {
    /// Replays a conversation: lines starting with "> " are commands, the rest replies.
    static func exchange(_ lines: [String], handedOver: Bool = false) -> SMTPExchange {
        var exchange = SMTPExchange()
        for line in lines {
            if line.hasPrefix("> ") { exchange.commandSent(String(line.dropFirst(2)) + "\r\n") }
            else { exchange.replyLineReceived(line + "\r\n") }
        }
        exchange.messageHandedOver = handedOver
        return exchange
    }

    static let hello = ["220 mx.test ESMTP", "> EHLO seqd.test", "250-mx.test", "250-AUTH LOGIN PLAIN", "250 SIZE 1000"]

    @Test("a multi-line reply is one reply, with its enhanced status code")
    func multiLine() {
        let exchange = Self.exchange(Self.hello + ["> MAIL FROM:<a@x.test>", "250 OK", "> RCPT TO:<b@y.test>",
                                                   "550-5.1.1 The email account does not exist.", "550 5.1.1 https://help.test"])
        #expect(exchange.stage == .recipient)
        #expect(exchange.replyToLastCommand == SMTPReply(
            code: 550, enhancedStatus: "5.1.1", text: "550-5.1.1 The email account does not exist. 5.1.1 https://help.test"))
        #expect(SMTPClassifier.outcome(failure: .connectionLost, detail: "RCPT failed: 550", exchange: exchange).kind == "bounce")
    }

    @Test("AUTH LOGIN's credential lines are not commands and never reach a reason")
    func authLogin() {
        let user = Data("seqd".utf8).base64EncodedString()
        let password = Data("hunter2".utf8).base64EncodedString()
        let exchange = Self.exchange(Self.hello + ["> AUTH LOGIN", "334 VXNlcm5hbWU6", "> \(user)", "334 UGFzc3dvcmQ6",
                                                   "> \(password)", "535 5.7.8 Authentication credentials invalid"])
        let outcome = SMTPClassifier.outcome(failure: .loginDenied, detail: "Authentication failed: 535", exchange: exchange)
        #expect(exchange.stage == .auth)
        #expect(outcome == .transportFault(reason: "SMTP AUTH rejected: 535 5.7.8 Authentication credentials invalid"))
    }

    @Test("QUIT and its reply after a failure do not hide the failing reply")
    func quitIgnored() {
        let exchange = Self.exchange(Self.hello + ["> MAIL FROM:<a@x.test>", "250 OK", "> RCPT TO:<b@y.test>",
                                                   "451 4.3.0 try later", "> QUIT", "221 bye"])
        #expect(SMTPClassifier.outcome(failure: .connectionLost, detail: "", exchange: exchange)
            == .temporaryFailure(reason: "SMTP RCPT TO rejected: 451 4.3.0 try later", retryAfter: nil))
    }

    @Test("the reply to the data decides; no reply after the data is ambiguous, no reply before it temporary")
    func afterData() {
        let upToData = Self.hello + ["> MAIL FROM:<a@x.test>", "250 OK", "> RCPT TO:<b@y.test>", "250 OK", "> DATA", "354 go ahead"]
        let accepted = Self.exchange(upToData + ["250 2.0.0 Ok: queued as 4BX1"], handedOver: true)
        #expect(SMTPClassifier.outcome(failure: nil, detail: "", exchange: accepted) == .sent(providerID: "Ok: queued as 4BX1"))
        let lost = Self.exchange(upToData, handedOver: true)
        #expect(SMTPClassifier.outcome(failure: .connectionLost, detail: "", exchange: lost).kind == "ambiguous")
        #expect(SMTPClassifier.outcome(failure: .timedOut, detail: "", exchange: lost).kind == "ambiguous")
        let midUpload = Self.exchange(upToData, handedOver: false)
        #expect(SMTPClassifier.outcome(failure: .connectionLost, detail: "", exchange: midUpload).kind == "temporary")
    }

    @Test("failures before any reply are the transport's; a greeting refusal too")
    func beforeGreeting() {
        let none = SMTPExchange()
        for failure in [CurlFailure.unreachable, .tls, .startTLSRefused, .timedOut, .connectionLost] {
            #expect(SMTPClassifier.outcome(failure: failure, detail: "x", exchange: none).kind == "fault")
        }
        let refused = Self.exchange(["554 5.3.2 no service for you"])
        #expect(SMTPClassifier.outcome(failure: .connectionLost, detail: "", exchange: refused).kind == "fault")
        let busy = Self.exchange(Self.hello + ["> STARTTLS", "454 4.7.0 TLS not available"])
        #expect(SMTPClassifier.outcome(failure: .startTLSRefused, detail: "", exchange: busy).kind == "fault")
    }

    @Test("slow-down replies are throttling at any stage but STARTTLS, whose 454 4.7.0 means no TLS")
    func throttling() {
        let throttled = [
            Self.exchange(["421 4.7.0 mx.test too many connections"]),
            Self.exchange(Self.hello + ["> MAIL FROM:<a@b.c>", "421 4.3.2 service shutting down"]),
            Self.exchange(Self.hello + ["> MAIL FROM:<a@b.c>", "250 ok", "> RCPT TO:<x@y.z>", "454 4.7.0 Throttling failure: Maximum sending rate exceeded."]),
            Self.exchange(Self.hello + ["> MAIL FROM:<a@b.c>", "250 ok", "> RCPT TO:<x@y.z>", "450 4.7.1 throttled, try later"]),
        ]
        for exchange in throttled {
            #expect(SMTPClassifier.outcome(failure: .other, detail: "", exchange: exchange).kind == "throttled", "\(exchange)")
        }
        let noTLS = Self.exchange(Self.hello + ["> STARTTLS", "454 4.7.0 TLS not available"])
        #expect(SMTPClassifier.outcome(failure: .startTLSRefused, detail: "", exchange: noTLS).kind == "fault")
        let mailboxFull = Self.exchange(Self.hello + ["> MAIL FROM:<a@b.c>", "250 ok", "> RCPT TO:<x@y.z>", "452 4.2.2 mailbox full"])
        #expect(SMTPClassifier.outcome(failure: .other, detail: "", exchange: mailboxFull).kind == "temporary")
    }

    @Test("a greeting after QUIT starts a new session on a new connection")
    func newConnectionAfterQuit() {
        let exchange = Self.exchange(["> QUIT", "221 bye", "220 mx.test again", "> EHLO seqd.test", "421 4.3.2 shutting down"])
        #expect(exchange.stage == .hello)
        #expect(exchange.replyToLastCommand?.code == 421)
    }

    @Test("Retry-After as seconds and as each HTTP-date form")
    func retryAfter() {
        let now = Date(timeIntervalSince1970: 784_111_717)  // Sun, 06 Nov 1994 08:48:37 GMT
        #expect(HTTPClassifier.retryAfterDuration("7", now: now) == .seconds(7))
        #expect(HTTPClassifier.retryAfterDuration(" 0 ", now: now) == .seconds(0))
        #expect(HTTPClassifier.retryAfterDuration("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == .seconds(60))
        #expect(HTTPClassifier.retryAfterDuration("Sunday, 06-Nov-94 08:49:37 GMT", now: now) == .seconds(60))
        #expect(HTTPClassifier.retryAfterDuration("Sun Nov  6 08:49:37 1994", now: now) == .seconds(60))
        #expect(HTTPClassifier.retryAfterDuration("Sun, 06 Nov 1994 08:00:00 GMT", now: now) == .seconds(0))
        #expect(HTTPClassifier.retryAfterDuration("soon", now: now) == nil)
        #expect(HTTPClassifier.retryAfterDuration("-5", now: now) == nil)
    }

    @Test("provider ids come from id or message_id of a JSON object")
    func providerID() {
        #expect(HTTPClassifier.providerID(Array(#"{"id": "abc"}"#.utf8)) == "abc")
        #expect(HTTPClassifier.providerID(Array(#"{"message_id": "<x@y>"}"#.utf8)) == "<x@y>")
        #expect(HTTPClassifier.providerID(Array(#"{"id": 42}"#.utf8)) == "42")
        #expect(HTTPClassifier.providerID(Array("accepted".utf8)) == nil)
        #expect(HTTPClassifier.providerID([]) == nil)
    }

    @Test("without a status, what was sent decides between fault, temporary and ambiguous")
    func httpWithoutStatus() {
        let none = HTTPResponse(status: 0, retryAfter: nil, body: [])
        func outcome(_ failure: CurlFailure, sent: Bool, connected: Bool) -> String {
            HTTPClassifier.outcome(response: none, failure: failure, detail: "x", requestSent: sent, connected: connected, now: Date()).kind
        }
        #expect(outcome(.unreachable, sent: false, connected: false) == "fault")
        #expect(outcome(.tls, sent: false, connected: false) == "fault")
        #expect(outcome(.timedOut, sent: false, connected: false) == "fault")
        #expect(outcome(.connectionLost, sent: false, connected: true) == "temporary")
        #expect(outcome(.connectionLost, sent: true, connected: true) == "ambiguous")
        #expect(outcome(.timedOut, sent: true, connected: true) == "ambiguous")
    }
}
