import Foundation
import Mail
import Postgres
import SequenceEngine
import SequenceStore
import Testing
import TestSupport

/// Matching inbound mail to enrollments and applying it, against a real database: each way of
/// matching, unmatched mail, and the state each classification leaves behind.
@Suite("inbound mail: matching and applying")
struct InboundMailTests {
    let connection: Connection

    /// Two sequences from different senders; ada, bob, cy and dee enrolled in `welcome`, ada also
    /// in `other`. Each first email is "sent": its delivery carries the Message-ID the composer
    /// derives from the delivery key, as the sender records it.
    init() async throws {
        connection = try Connection(try await TestDatabase.shared.makeMigratedDatabase(prefix: "inbound"))
        let welcome = try SequenceDefinition.parse(
            """
            name: welcome
            sender: { address: Team@Example.com }
            time_zone: Europe/Berlin
            steps:
              - { key: hello, type: email, subject: "Hi {{first_name}}", body: "Hello" }
              - { type: wait, duration: 2d }
              - { key: again, type: email, subject: "Again", body: "Again" }
            """, fileName: "welcome.yaml")
        let other = try SequenceDefinition.parse(
            """
            name: other
            sender: { address: sales@example.net }
            steps:
              - { key: pitch, type: email, subject: "Offer", body: "Buy" }
            """, fileName: "other.yaml")
        try SequenceCatalog.apply(connection, [welcome, other])
        _ = try ContactStore.upsert(
            connection, ["ada", "bob", "cy", "dee"].map { ContactFields(email: "\($0)@example.org", firstName: $0.capitalized) })
        _ = try Enroller.enroll(connection, sequence: "welcome", selection: .all, actor: "test")
        _ = try Enroller.enroll(connection, sequence: "other", selection: .emails(["ada@example.org"]), actor: "test")
        _ = try Advancer(actor: "test", installationID: "t1").advanceBatch(connection, limit: 100)
        try InboundFixtures.recordMessageIDs(connection)
    }

    func messageID(_ email: String, sequence: String = "welcome") throws -> String {
        try connection.query(
            """
            SELECT d.message_id FROM seqd.deliveries d JOIN seqd.contacts c ON c.id = d.contact_id
            JOIN seqd.enrollments e ON e.id = d.enrollment_id JOIN seqd.sequences s ON s.id = e.sequence_id
            WHERE c.email = $1 AND s.name = $2
            """, [email, sequence])[0].decode("message_id")
    }

    func enrollment(_ email: String, sequence: String = "welcome") throws -> (id: Int64, status: String, resumeAt: Date?) {
        let row = try connection.query(
            """
            SELECT e.id, e.status::text AS status, e.resume_at FROM seqd.enrollments e
            JOIN seqd.contacts c ON c.id = e.contact_id JOIN seqd.sequences s ON s.id = e.sequence_id
            WHERE c.email = $1 AND s.name = $2
            """, [email, sequence])[0]
        return (try row.decode("id"), try row.decode("status"), try row.decode("resume_at", as: Date?.self))
    }

    func signals() throws -> [(kind: String, source: String, enrollment: Int64?)] {
        try connection.query("SELECT kind, source, enrollment_id FROM seqd.signals ORDER BY id").rows.map {
            (try $0.decode("kind"), try $0.decode("source"), try $0.decode("enrollment_id", as: Int64?.self))
        }
    }

    func process(_ text: String, resumeAfter: TimeInterval = 7 * 86_400, authservID: String? = nil) throws -> InboundResult {
        let message = try InboundMessage.parse(Array(text.utf8))
        return try InboundMail(
            actor: "inbound", installationID: "t1", oooResumeAfter: resumeAfter,
            trust: try InboundFixtures.trust(connection, authservID: authservID)
        ).process(message, using: connection)
    }

    @Test("a reply matched by In-Reply-To ends the enrollment as replied, records an inbound signal, cancels the pending send")
    func replyByInReplyTo() throws {
        let id = try messageID("ada@example.org")
        let result = try process("From: Ada <ada@example.org>\nTo: team@example.com\nIn-Reply-To: \(id)\nSubject: Re: Hi\n\nThanks!")
        #expect(result.outcome == .applied)
        #expect(result.classification == "reply")
        #expect(result.matchedBy == "In-Reply-To \(id)")
        let ada = try enrollment("ada@example.org")
        #expect(result.enrollments.map(\.id) == [ada.id])
        #expect(ada.status == "replied")
        #expect(try enrollment("ada@example.org", sequence: "other").status == "active", "only the matched enrollment")
        #expect(try signals().map { "\($0.kind)/\($0.source)/\($0.enrollment ?? 0)" } == ["reply/inbound/\(ada.id)"])
        let event = try connection.query(
            "SELECT actor, reason FROM seqd.enrollment_events WHERE enrollment_id = $1 AND to_status = 'replied'", [ada.id])[0]
        #expect(try event.decode("actor", as: String.self) == "inbound")
        #expect(try event.decode("reason", as: String.self) == "inbound reply, matched by In-Reply-To")
        let pending = try connection.query(
            "SELECT count(*) AS n FROM seqd.deliveries WHERE enrollment_id = $1 AND status = 'pending'", [ada.id])[0]
        #expect(try pending.decode("n", as: Int.self) == 0)
    }

    @Test("a reply matched only through References (the newest of ours)")
    func replyByReferences() throws {
        let id = try messageID("bob@example.org")
        let result = try process(
            "From: bob@example.org\nIn-Reply-To: <someone-elses@mail.example>\nReferences: <thread-start@mail.example> \(id)\n <someone-elses@mail.example>\n\nok")
        #expect(result.outcome == .applied)
        #expect(result.matchedBy == "References \(id)")
        #expect(try enrollment("bob@example.org").status == "replied")
    }

    @Test("a 5.1.1 report matched by the returned original's Message-ID suppresses the Final-Recipient and bounces it")
    func bounceByReturnedMessageID() throws {
        let id = try messageID("cy@example.org")
        let result = try process(
            """
            From: MAILER-DAEMON@mx.example.com
            To: team@example.com
            Content-Type: multipart/report; report-type=delivery-status; boundary=R

            --R
            Content-Type: message/delivery-status

            Reporting-MTA: dns; mx.example.com

            Final-Recipient: rfc822; Cy@Example.org
            Action: failed
            Status: 5.1.1

            --R
            Content-Type: text/rfc822-headers

            Message-ID: \(id)
            --R--
            """)
        #expect(result.outcome == .applied)
        #expect(result.classification == "bounce")
        #expect(result.detail == "5.1.1")
        #expect(result.matchedBy == "Message-ID of the returned message \(id)")
        #expect(result.suppressed == 1)
        #expect(try enrollment("cy@example.org").status == "bounced")
        let suppression = try connection.query("SELECT reason, source FROM seqd.suppressions WHERE email = 'cy@example.org'")
        #expect(suppression.count == 1)
        #expect(try suppression[0].decode("reason", as: String.self) == "bounce")
        #expect(try suppression[0].decode("source", as: String.self) == "inbound")
        #expect(try signals().map(\.kind) == ["bounce"])
    }

    @Test("a 4.x.x report, even one that matches, changes nothing")
    func delayedReportChangesNothing() throws {
        let id = try messageID("cy@example.org")
        let result = try process(
            "From: MAILER-DAEMON@mx.example.com\nContent-Type: multipart/report; report-type=delivery-status; boundary=R\n\n--R\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; cy@example.org\nAction: delayed\nStatus: 4.4.7\n\n--R\nContent-Type: text/rfc822-headers\n\nMessage-ID: \(id)\n--R--\n")
        #expect(result.outcome == .ignored)
        #expect(try enrollment("cy@example.org").status == "active")
        #expect(try signals().isEmpty)
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.suppressions")[0].decode("n", as: Int.self) == 0)
    }

    @Test("fallback, when trusted: the contact's address and the sequence's sender address as recipient (case-insensitive)")
    func fallbackBySenderAddress() throws {
        let auth = InboundFixtures.authenticationResults(domain: "example.org")
        let text = "\(auth)\nFrom: \"Dee\" <DEE@example.org>\nTo: Example <team@EXAMPLE.com>\nSubject: question\n\nHi there"
        // Off unless configured: the same message is unmatched.
        let untrusted = try process(text)
        #expect(untrusted.outcome == .unmatched)
        #expect(untrusted.note?.contains("inbound.trust_from") == true)
        let result = try process(text, authservID: "mx.example.com")
        #expect(result.outcome == .applied)
        #expect(result.matchedBy == "sender address and sequence sender (dmarc=pass for example.org by mx.example.com)")
        #expect(try enrollment("dee@example.org").status == "replied")
        // Ada is enrolled in both; mail to the other sequence's sender matches only that one.
        let other = try process("\(auth)\nFrom: ada@example.org\nTo: sales@example.net\n\nHow much?", authservID: "mx.example.com")
        #expect(other.enrollments.map(\.sequence) == ["other"])
        #expect(try enrollment("ada@example.org").status == "active")
    }

    @Test("unmatched mail is reported and changes nothing: unknown ids, unknown sender, a known sender to another address")
    func unmatched() throws {
        for text in [
            "From: stranger@example.org\nTo: team@example.com\nIn-Reply-To: <not-ours@example.com>\n\nwho?",
            "From: bob@example.org\nTo: someone-else@example.com\n\nwrong address",
            "From: MAILER-DAEMON@mx.example.com\nContent-Type: multipart/report; report-type=delivery-status; boundary=R\n\n--R\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; bob@example.org\nAction: failed\nStatus: 5.1.1\n--R--\n",
        ] {
            let result = try process(text)
            #expect(result.outcome == .unmatched, "\(text)")
            #expect(result.enrollments.isEmpty)
            #expect(result.note?.isEmpty == false)
        }
        #expect(try signals().isEmpty)
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.suppressions")[0].decode("n", as: Int.self) == 0)
        #expect(try enrollment("bob@example.org").status == "active", "a bounce without our Message-ID is never guessed")
    }

    @Test("a reply to a finished enrollment is refused naming its status")
    func finishedEnrollment() throws {
        let id = try messageID("ada@example.org")
        _ = try process("From: ada@example.org\nIn-Reply-To: \(id)\n\nfirst")
        let again = try process("From: ada@example.org\nIn-Reply-To: \(id)\n\nsecond")
        #expect(again.outcome == .refused)
        #expect(again.note == "no live enrollment (finished: replied)")
        #expect(try signals().count == 1)
    }

    @Test("an auto-reply with a stated return date pauses until that day starts in the contact's zone")
    func outOfOfficeWithReturnDate() throws {
        let id = try messageID("bob@example.org")
        let now = try connection.query("SELECT now() AS now")[0].decode("now", as: Date.self)
        // A return date five days ahead, by the database's clock.
        let date = Date(timeInterval: 5 * 86_400, since: now).formatted(.iso8601.year().month().day())
        let result = try process("From: bob@example.org\nIn-Reply-To: \(id)\nAuto-Submitted: auto-replied\nSubject: Out of Office\n\nBack on \(date).")
        #expect(result.outcome == .applied)
        #expect(result.returnDate == date)
        let bob = try enrollment("bob@example.org")
        #expect(bob.status == "paused")
        // Europe/Berlin (the sequence's zone; bob has none): midnight there.
        let expected = try connection.query("SELECT ($1::date::timestamp AT TIME ZONE 'Europe/Berlin') AS t", [date])[0].decode("t", as: Date.self)
        #expect(bob.resumeAt == expected)
        #expect(result.resumeAt == expected)
        #expect(try signals().map(\.kind) == ["pause"])
    }

    @Test("an auto-reply without a date pauses for inbound.ooo_resume_after by the database clock; the resumer makes it active again")
    func outOfOfficeResumes() async throws {
        let id = try messageID("cy@example.org")
        let before = try connection.query("SELECT now() AS now")[0].decode("now", as: Date.self)
        let result = try process("From: cy@example.org\nIn-Reply-To: \(id)\nX-Autoreply: yes\n\nI am away.", resumeAfter: 1)
        #expect(result.outcome == .applied)
        let cy = try enrollment("cy@example.org")
        #expect(cy.status == "paused")
        let resumeAt = try #require(cy.resumeAt)
        #expect(resumeAt.timeIntervalSince(before) >= 1 && resumeAt.timeIntervalSince(before) < 5)
        let resumer = Resumer(actor: "test", installationID: "t1")
        #expect(try resumer.resumeDue(connection) == 0, "not before resume_at")
        try await waitUntil(timeout: .seconds(10), "resume_at to pass") { try resumer.resumeDue(connection) == 1 }
        #expect(try enrollment("cy@example.org").status == "active")
        #expect(try enrollment("cy@example.org").resumeAt == nil)
    }

    @Test("one message matching several enrollments applies to all of them in one transaction")
    func severalEnrollments() throws {
        // Mail to both senders from ada: the fallback finds both of her live enrollments.
        let auth = InboundFixtures.authenticationResults(domain: "example.org")
        let result = try process(
            "\(auth)\nFrom: ada@example.org\nTo: team@example.com, sales@example.net\n\nPlease stop writing.", authservID: "mx.example.com")
        #expect(Set(result.enrollments.map(\.sequence)) == ["welcome", "other"])
        #expect(try enrollment("ada@example.org").status == "replied")
        #expect(try enrollment("ada@example.org", sequence: "other").status == "replied")
    }

    @Test("a reply under stop_company_on_reply also stops the colleagues' enrollments, and the result lists them")
    func companyStops() throws {
        let company = try SequenceDefinition.parse(
            """
            name: company
            sender: { address: hello@example.com }
            stop_company_on_reply: true
            steps:
              - { key: pitch, type: email, subject: "Offer", body: "Buy" }
            """, fileName: "company.yaml")
        try SequenceCatalog.apply(connection, [company])
        _ = try Enroller.enroll(connection, sequence: "company", selection: .emails(["ada@example.org", "bob@example.org"]), actor: "test")
        let auth = InboundFixtures.authenticationResults(domain: "example.org")
        // Without evidence the From proves nothing, so nobody's enrollment moves.
        #expect(try process("From: ada@example.org\nTo: hello@example.com\n\nNot interested, nor is my team.").outcome == .unmatched)
        #expect(try enrollment("bob@example.org", sequence: "company").status == "active")
        let result = try process("\(auth)\nFrom: ada@example.org\nTo: hello@example.com\n\nNot interested, nor is my team.", authservID: "mx.example.com")
        #expect(result.outcome == .applied)
        let bob = try enrollment("bob@example.org", sequence: "company")
        #expect(bob.status == "stopped")
        #expect(try enrollment("ada@example.org", sequence: "company").status == "replied")
        #expect(result.enrollments.map { "\($0.id):\($0.to ?? "-"):\($0.note ?? "-")" }.last == "\(bob.id):stopped:stop_company_on_reply")
        #expect(try enrollment("bob@example.org").status == "active", "other sequences are not touched")
    }

    // MARK: Issue 16: what inbound mail must prove

    @Test("a reply to a guessed Message-ID (the old form, a neighbour's key, a forged MAC) is unmatched and changes nothing")
    func guessedMessageIDs() throws {
        let ada = try messageID("ada@example.org")
        let bob = try enrollment("bob@example.org")
        let bobKey: String = try connection.query("SELECT idempotency_key FROM seqd.deliveries WHERE enrollment_id = $1", [bob.id])[0]
            .decode("idempotency_key")
        // The guessable pre-MAC form of bob's id, even when stored so on his delivery (sent before the upgrade).
        let oldForm = "<seqd.\(bobKey)@example.com>"
        let forgedMAC = ada.replacingOccurrences(of: "-e\(try enrollment("ada@example.org").id)-", with: "-e\(bob.id)-")
        for guess in [oldForm, forgedMAC, "<seqd.\(bobKey).00000000000000000000000000000000@example.com>"] {
            let result = try process("From: mallory@evil.example\nTo: team@example.com\nIn-Reply-To: \(guess)\nSubject: Auto: away until 2027-06-01\n\nstop")
            #expect(result.outcome == .unmatched, "\(guess)")
        }
        try connection.query("UPDATE seqd.deliveries SET message_id = $1 WHERE enrollment_id = $2", [oldForm, bob.id])
        let stored = try process("From: mallory@evil.example\nTo: team@example.com\nIn-Reply-To: \(oldForm)\n\nstop")
        #expect(stored.outcome == .unmatched, "an id without a MAC is not honoured even when it is the one recorded")
        #expect(try enrollment("bob@example.org").status == "active")
        #expect(try signals().isEmpty)
    }

    @Test("a forged report listing 100 other addresses bounces only the matched delivery's recipient")
    func forgedReportSuppressesOnlyTheMatchedRecipient() throws {
        let id = try messageID("cy@example.org")
        var blocks = (0..<100).map { "Final-Recipient: rfc822; victim\($0)@example.org\nAction: failed\nStatus: 5.1.1\n" }
        blocks += ["Final-Recipient: rfc822; bob@example.org\nAction: failed\nStatus: 5.1.1\n"]
        func report(_ blocks: [String]) -> String {
            """
            From: MAILER-DAEMON@mx.evil.example
            To: team@example.com
            Content-Type: multipart/report; report-type=delivery-status; boundary=R

            --R
            Content-Type: message/delivery-status

            Reporting-MTA: dns; mx.evil.example

            \(blocks.joined(separator: "\n"))
            --R
            Content-Type: text/rfc822-headers

            Message-ID: \(id)
            --R--
            """
        }
        // Without cy among them, nobody is bounced.
        let others = try process(report(blocks))
        #expect(others.outcome == .ignored)
        #expect(others.ignoredRecipients == 101)
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.suppressions")[0].decode("n", as: Int.self) == 0)
        // With cy named too, cy alone.
        let result = try process(report(blocks + ["Final-Recipient: rfc822; cy@example.org\nAction: failed\nStatus: 5.1.1\n"]))
        #expect(result.outcome == .applied)
        #expect(result.suppressed == 1)
        #expect(result.ignoredRecipients == 101)
        let suppressed = try connection.query("SELECT email FROM seqd.suppressions").rows.map { try $0.decode("email", as: String.self) }
        #expect(suppressed == ["cy@example.org"])
        #expect(try enrollment("bob@example.org").status == "active")
        #expect(try enrollment("cy@example.org").status == "bounced")
    }

    @Test("From-only: no Authentication-Results, another authserv-id, dmarc=fail or a foreign domain's pass change nothing")
    func fromFallbackNeedsEvidence() throws {
        let body = "From: bob@example.org\nTo: team@example.com\n\nplease stop"
        for header in [
            "", InboundFixtures.authenticationResults(authservID: "mx.evil.example", domain: "example.org"),
            InboundFixtures.authenticationResults(domain: "example.org", dmarc: "fail"),
            InboundFixtures.authenticationResults(domain: "evil.example"),
        ] {
            let result = try process(header.isEmpty ? body : header + "\n" + body, authservID: "mx.example.com")
            #expect(result.outcome == .unmatched, "\(header)")
        }
        #expect(try enrollment("bob@example.org").status == "active")
        let trusted = try process(InboundFixtures.authenticationResults(domain: "example.org") + "\n" + body, authservID: "mx.example.com")
        #expect(trusted.outcome == .applied)
        #expect(try enrollment("bob@example.org").status == "replied")
    }
}
