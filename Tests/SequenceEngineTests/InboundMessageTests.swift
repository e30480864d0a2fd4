import Foundation
import Testing

@testable import Mail
@testable import SequenceEngine

/// Parsing and classifying raw inbound mail, with realistic fixtures from `Tests/Fixtures/inbound`
/// (placeholders filled in as the end-to-end tests fill them with real Message-IDs).
@Suite("inbound mail: parsing and classification")
struct InboundMessageTests {
    static let ourID = "<seqd.9b3cdc50-e1-hello@example.com>"
    /// 2026-11-30T07:50:00Z: the fixtures' return dates lie ahead of it.
    static let now = Date(timeIntervalSince1970: 1_796_025_000)

    static func fixture(_ name: String, lineEnd: String = "\n", filePath: String = #filePath) throws -> [UInt8] {
        let url = URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/inbound/\(name)")
        let text = try String(contentsOf: url, encoding: .utf8)
            .replacingOccurrences(of: "{{MESSAGE_ID}}", with: ourID)
            .replacingOccurrences(of: "{{CONTACT}}", with: "Ada@Example.org")
            .replacingOccurrences(of: "{{SENDER}}", with: "team@example.com")
        // The German fixture is Latin-1 on the wire: its bytes must stay what they are.
        let bytes = Array(text.replacingOccurrences(of: "\n", with: lineEnd).utf8)
        return bytes
    }

    static func parse(_ text: String) throws -> InboundMessage { try InboundMessage.parse(Array(text.utf8)) }

    static func classify(_ name: String, lineEnd: String = "\n") throws -> (InboundMessage, InboundClassification) {
        let message = try InboundMessage.parse(try fixture(name, lineEnd: lineEnd))
        return (message, InboundClassifier.classify(message, now: now))
    }

    // MARK: Fixtures

    @Test("a Gmail reply with quoted text is a reply, matched by In-Reply-To; its quoted date is not read", arguments: ["\n", "\r\n"])
    func gmailReply(lineEnd: String) throws {
        let (message, classification) = try Self.classify("gmail-reply.eml", lineEnd: lineEnd)
        #expect(classification == .reply)
        #expect(message.from == "ada@example.org")
        #expect(message.recipients == ["team@example.com"])
        #expect(message.subject == "Re: Welcome, Ada")
        #expect(message.messageID == "<CAJ8b1vX2mZq9Lr4kP0+YkzF3Tg@mail.gmail.com>")
        #expect(message.matchReferences.first == .init(messageID: Self.ourID, header: "In-Reply-To"))
        #expect(message.text.contains("Thursday"))
        #expect(!message.text.contains("2026-12-24"), "quoted lines are dropped")
        #expect(message.value("received")?.contains("with SMTP id") == true, "folded headers are unfolded")
    }

    @Test("a Thunderbird reply: base64 encoded-word subject, References across a folded line, 8-bit UTF-8 body")
    func thunderbirdReply() throws {
        let (message, classification) = try Self.classify("thunderbird-reply.eml")
        #expect(classification == .reply)
        #expect(message.subject == "Re: Willkommen, Jürgen 👋🏻")
        #expect(message.references == ["<unrelated-thread-start@example.net>", Self.ourID])
        #expect(message.matchReferences.map(\.header) == ["In-Reply-To", "References"])
        #expect(message.from == "ada@example.org")
        #expect(message.text.contains("gerne – bitte"))
    }

    @Test("an Outlook automatic reply is out of office with the stated return date")
    func outlookAutoReply() throws {
        let (_, classification) = try Self.classify("outlook-auto-reply.eml", lineEnd: "\r\n")
        #expect(classification == .outOfOffice(returnDate: LocalDate("2026-12-07"), marker: "Auto-Submitted: auto-replied"))
    }

    @Test("a German out-of-office without Auto-Submitted: subject marker, Latin-1 quoted-printable, '14. Dezember 2026'")
    func germanOutOfOffice() throws {
        let (message, classification) = try Self.classify("german-out-of-office.eml")
        #expect(message.subject == "Abwesenheitsnotiz: Willkommen")
        #expect(message.text.contains("nicht im Büro"))
        #expect(classification == .outOfOffice(returnDate: LocalDate("2026-12-14"), marker: "Subject: abwesenheitsnotiz"))
    }

    @Test("a Postfix 5.1.1 report is a bounce of the Final-Recipient, matched by the returned headers' Message-ID")
    func postfixBounce() throws {
        let (message, classification) = try Self.classify("postfix-dsn-511.eml")
        #expect(message.reportType == "delivery-status")
        #expect(message.deliveryReport?.originalMessageID == Self.ourID)
        #expect(message.matchReferences == [.init(messageID: Self.ourID, header: "Message-ID of the returned message")])
        guard case .bounce(let recipients) = classification else {
            Issue.record("not a bounce: \(classification)")
            return
        }
        #expect(recipients.map(\.address) == ["ada@example.org"])
        #expect(recipients.map(\.status) == ["5.1.1"])
        #expect(recipients.first?.diagnostic?.contains("User unknown") == true)
    }

    @Test("a 4.4.7 delayed report is ignored, never a reply")
    func delayedReport() throws {
        let (_, classification) = try Self.classify("postfix-delayed-447.eml")
        guard case .ignored(let reason) = classification else {
            Issue.record("not ignored: \(classification)")
            return
        }
        #expect(reason.contains("4.4.7"))
    }

    @Test("an Exchange NDR (nested multipart, message/rfc822 original) is a 5.1.10 bounce; the original's text is not read")
    func exchangeNDR() throws {
        let (message, classification) = try Self.classify("exchange-ndr.eml", lineEnd: "\r\n")
        #expect(message.deliveryReport?.originalMessageID == Self.ourID)
        #expect(classification == .bounce([
            .init(address: "ada@example.org", action: "failed", status: "5.1.10",
                  diagnostic: "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"),
        ]))
        #expect(message.text.contains("couldn't be delivered"))
        #expect(!message.text.contains("2026-12-20"))
    }

    // MARK: Classification rules

    @Test("auto-reply markers: Auto-Submitted (not 'no'), X-Autoreply, X-Autorespond, Precedence, subject words")
    func autoReplyMarkers() throws {
        let autoReplies = [
            "Auto-Submitted: auto-generated", "Auto-Submitted: auto-replied; owner-email=\"a@example.com\"", "X-Autoreply: yes",
            "X-Autorespond: vacation", "Precedence: auto_reply", "Subject: Out of Office: Welcome", "Subject: Automatic reply: Hi",
            "Subject: AUTO: Ada is away", "Subject: Autoreply", "Subject: Abwesend", "Subject: Absence: Welcome",
            "Subject: =?UTF-8?Q?R=C3=A9ponse_automatique=3A_Bienvenue?=",
        ]
        for header in autoReplies {
            let message = try Self.parse("From: a@example.com\n\(header)\n\nI will be back soon.")
            guard case .outOfOffice(let date, _) = InboundClassifier.classify(message, now: Self.now) else {
                Issue.record("\(header) is not an auto-reply")
                continue
            }
            #expect(date == nil)
        }
        let replies = [
            "Auto-Submitted: no", "Precedence: bulk", "Subject: Re: Welcome", "Subject: Re: about your autoreplyish tool",
            "Subject: Re: absences policy", "X-Auto-Response-Suppress: All",
        ]
        for header in replies {
            let message = try Self.parse("From: a@example.com\n\(header)\n\nThanks!")
            #expect(InboundClassifier.classify(message, now: Self.now) == .reply, "\(header)")
        }
    }

    @Test("read receipts and non-standard bounces are ignored, never replies")
    func otherAutomaticMail() throws {
        let receipt = try Self.parse(
            "From: a@example.com\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b\n\n--b\n\nread\n--b--\n")
        #expect(InboundClassifier.classify(receipt, now: Self.now).kind == "ignored")
        let oldBounce = try Self.parse("From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.com>\nSubject: Returned mail\n\nsorry")
        #expect(InboundClassifier.classify(oldBounce, now: Self.now).kind == "ignored")
    }

    @Test("a report with several recipients bounces only the 5.x.x ones; 2.x.x and 4.x.x only are not bounces")
    func mixedReport() throws {
        func report(_ blocks: String) throws -> InboundClassification {
            let text = """
                From: MAILER-DAEMON@mx.example.com
                Content-Type: multipart/report; report-type="delivery-status"; boundary="=_b"

                --=_b
                Content-Type: message/delivery-status

                Reporting-MTA: dns; mx.example.com

                \(blocks)
                --=_b--
                """
            return InboundClassifier.classify(try Self.parse(text), now: Self.now)
        }
        let mixed = try report(
            "Final-Recipient: rfc822; ok@example.org\nAction: delivered\nStatus: 2.0.0\n\nFinal-Recipient: rfc822; gone@example.org\nAction: failed\nStatus: 5.0.0 (permanent failure)\n\nFinal-Recipient: rfc822; slow@example.org\nAction: delayed\nStatus: 4.2.2\n")
        guard case .bounce(let recipients) = mixed else {
            Issue.record("\(mixed)")
            return
        }
        #expect(recipients.map(\.address) == ["gone@example.org"])
        #expect(recipients.map(\.status) == ["5.0.0"])
        #expect(try report("Final-Recipient: rfc822; ok@example.org\nAction: delivered\nStatus: 2.0.0\n").kind == "ignored")
        #expect(try report("Final-Recipient: rfc822; x@example.org\nAction: failed\n").kind == "bounce", "failed without a status")
        #expect(try report("Final-Recipient: rfc822; x@example.org\nAction: failed\nStatus: 4.7.1\n").kind == "ignored")
    }

    @Test("return dates: ISO, 'December 7, 2026', '7 December 2026', ordinals, day-first dots; future and unambiguous only")
    func returnDates() {
        let now = Self.now  // 2026-11-30
        let clear: [(String, String)] = [
            ("I am back on 2026-12-07.", "2026-12-07"), ("Back Monday, December 7, 2026.", "2026-12-07"),
            ("back on 7 December 2026", "2026-12-07"), ("until Dec 7th, 2026", "2026-12-07"), ("until the 7th of December 2026", "2026-12-07"),
            ("bis zum 7. Dezember 2026", "2026-12-07"), ("ab dem 07.12.2026 wieder da", "2026-12-07"), ("returning 3 Jan 2027", "2027-01-03"),
            ("away from November 20, 2026 until December 7, 2026", "2026-12-07"),  // the first date has passed
        ]
        for (text, expected) in clear {
            #expect(InboundClassifier.returnDate(in: text, now: now) == LocalDate(expected), "\(text)")
        }
        let unclear = [
            "back soon", "back on 12/07/2026", "I was away on 2026-11-02", "back 2026-12-07 or maybe 2026-12-09",
            "back on February 30, 2027", "see you 2031-01-01", "today 2026-11-30", "order 12026-12-07x",
        ]
        for text in unclear {
            #expect(InboundClassifier.returnDate(in: text, now: now) == nil, "\(text)")
        }
    }

    @Test("resume_at: the start of the return date in the contact's zone, else the sequence's; otherwise now + default")
    func resumeAt() {
        let now = Self.now
        let berlin = InboundClassifier.resumeAt(
            returnDate: LocalDate("2026-12-07"), contactZone: "Europe/Berlin", sequenceZone: "UTC", now: now, defaultDelay: 7 * 86_400)
        #expect(berlin == Date(timeIntervalSince1970: 1_796_598_000))  // 2026-12-06T23:00:00Z
        let sequenceZone = InboundClassifier.resumeAt(
            returnDate: LocalDate("2026-12-07"), contactZone: nil, sequenceZone: "America/New_York", now: now, defaultDelay: 0)
        #expect(sequenceZone == Date(timeIntervalSince1970: 1_796_619_600))  // 2026-12-07T05:00:00Z
        #expect(InboundClassifier.resumeAt(returnDate: nil, contactZone: nil, sequenceZone: "UTC", now: now, defaultDelay: 60) == now + 60)
    }

    // MARK: Malformed input

    // (Refusals naming the line: MailTests.InboundMessageParsingTests.)

    @Test("broken MIME inside is read leniently: no boundary, no closing delimiter, garbage part headers, deep nesting")
    func lenientMIME() throws {
        let noBoundary = try Self.parse("From: a@example.com\nContent-Type: multipart/mixed\n\nhello")
        #expect(InboundClassifier.classify(noBoundary, now: Self.now) == .reply)
        let unclosed = try Self.parse("From: a@example.com\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nback 2026-12-07\n")
        #expect(unclosed.text.contains("2026-12-07"))
        let garbage = try Self.parse("From: a@example.com\nContent-Type: multipart/mixed; boundary=x\n\n--x\nno colon\n: x\n\nhi\n--x--\n")
        #expect(garbage.text == "hi")
        var deep = "From: a@example.com\nContent-Type: multipart/mixed; boundary=b0\n\n"
        for level in 1..<200 { deep += "--b\(level - 1)\nContent-Type: multipart/mixed; boundary=b\(level)\n\n" }
        _ = try Self.parse(deep)
        let base64 = try Self.parse(
            "From: a@example.com\nAuto-Submitted: auto-replied\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n\(Data("Zurück am 7. Dezember 2026".utf8).base64EncodedString())\n")
        #expect(InboundClassifier.classify(base64, now: Self.now) == .outOfOffice(returnDate: LocalDate("2026-12-07"), marker: "Auto-Submitted: auto-replied"))
    }
}
