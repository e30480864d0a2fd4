import Foundation
import Mail
import Testing

@testable import SequenceEngine

/// What an `Authentication-Results` header proves about the From domain (issue 16). The caps that
/// keep parsing of hostile mail bounded are tested with the parser (MailTests).
@Suite("inbound mail: sender evidence")
struct SenderAuthenticationTests {
    static func message(_ headers: String, from: String = "Ada <ada@mail.example.org>") throws -> InboundMessage {
        try InboundMessage.parse(Array("\(headers)\(headers.isEmpty ? "" : "\n")From: \(from)\nTo: team@example.com\n\nhi\n".utf8))
    }

    @Test(
        "evidence: DMARC pass for the From domain, or aligned DKIM/SPF pass, under the configured authserv-id",
        arguments: [
            ("Authentication-Results: mx.example.com; dmarc=pass (p=reject dis=none) header.from=mail.example.org", true),
            ("Authentication-Results: MX.Example.com 1; dkim=pass header.d=example.org header.s=s1", true),
            ("Authentication-Results: mx.example.com;\n  spf=pass smtp.mailfrom=bounces@mail.example.org", true),
            ("Authentication-Results: mx.example.com; dmarc=pass", true),
            ("Authentication-Results: mx.example.com; dmarc=fail header.from=mail.example.org", false),
            ("Authentication-Results: mx.example.com; dmarc=pass header.from=evil.example", false),
            ("Authentication-Results: mx.example.com; dkim=pass header.d=evil.example", false),
            ("Authentication-Results: mx.example.com; dkim=pass header.d=org", false),
            ("Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=x@evil.example", false),
            ("Authentication-Results: mx.evil.example; dmarc=pass header.from=mail.example.org", false),
            ("Authentication-Results: mx.example.com; none", false),
            ("Authentication-Results: mx.example.com; dkim=fail (dkim=pass header.d=mail.example.org) header.d=mail.example.org", false),
            ("X-Authentication-Results: mx.example.com; dmarc=pass header.from=mail.example.org", false),
            ("", false),
        ])
    func evidence(header: String, trusted: Bool) throws {
        let parsed = try Self.message(header)
        #expect((SenderAuthentication.evidence(parsed, authservID: "mx.example.com") != nil) == trusted, "\(header)")
    }

    @Test("a forged header under another authserv-id does not hide the real one, nor stand in for it")
    func severalHeaders() throws {
        let forged = "Authentication-Results: mx.evil.example; dmarc=pass header.from=mail.example.org"
        let real = "Authentication-Results: mx.example.com; dmarc=pass header.from=mail.example.org"
        #expect(SenderAuthentication.evidence(try Self.message("\(real)\n\(forged)"), authservID: "mx.example.com") != nil)
        #expect(SenderAuthentication.evidence(try Self.message(forged), authservID: "mx.example.com") == nil)
    }
}
