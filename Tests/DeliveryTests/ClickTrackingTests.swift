import Foundation
import Testing

@testable import Delivery

@Suite("click tokens and link rewriting")
struct ClickTrackingTests {
    static let key = ClickToken.Key(secret: "test-unsubscribe-secret")
    static let tracker = LinkTracker(
        baseURL: "https://t.example.com/", key: key, unsubscribeBaseURL: "https://mail.example.com")

    @Test("a token verifies to exactly what was signed: delivery, URL and decoy flag")
    func roundTrip() {
        for click in [
            ClickToken.Click(deliveryID: 42, url: "https://example.com/a?x=1&y=2", isDecoy: false),
            ClickToken.Click(deliveryID: Int64.max, url: "http://example.com/%C3%A9", isDecoy: true),
        ] {
            let token = ClickToken.make(click, key: Self.key)
            #expect(ClickToken.verify(token, key: Self.key) == click)
        }
    }

    @Test("a token with any one character changed, another URL's MAC, another secret, a padded or too long spelling is refused")
    func tamperedTokens() {
        let click = ClickToken.Click(deliveryID: 7, url: "https://example.com/pricing", isDecoy: false)
        let token = ClickToken.make(click, key: Self.key)
        let characters = Array(token)
        for index in characters.indices {
            var changed = characters
            changed[index] = changed[index] == "A" ? "B" : "A"
            #expect(ClickToken.verify(String(changed), key: Self.key) == nil, "position \(index)")
        }
        // The URL swapped for another while the MAC stays: an open redirect if it verified.
        let other = ClickToken.make(.init(deliveryID: 7, url: "https://evil.example/", isDecoy: false), key: Self.key)
        let signed = Base64URL.decode(token)!, forged = Base64URL.decode(other)!
        let swapped = Base64URL.encode(Array(forged.dropLast(ClickToken.macBytes)) + Array(signed.suffix(ClickToken.macBytes)))
        #expect(ClickToken.verify(swapped, key: Self.key) == nil)
        // Sanity: the splice itself is sound (the same splice of the token with itself verifies).
        let same = Base64URL.encode(Array(signed.dropLast(ClickToken.macBytes)) + Array(signed.suffix(ClickToken.macBytes)))
        #expect(ClickToken.verify(same, key: Self.key) == click)
        // The decoy flag cannot be turned off (the flag is inside the signature).
        let decoy = ClickToken.make(.init(deliveryID: 7, url: "https://example.com/pricing", isDecoy: true), key: Self.key)
        #expect(decoy != token)
        #expect(ClickToken.verify(decoy, key: Self.key)?.isDecoy == true)
        #expect(ClickToken.verify(token, key: ClickToken.Key(secret: "another secret")) == nil)
        #expect(ClickToken.verify(token + "=", key: Self.key) == nil)
        #expect(ClickToken.verify("", key: Self.key) == nil)
        #expect(ClickToken.verify(String(repeating: "A", count: ClickToken.maxTokenLength + 4), key: Self.key) == nil)
        // An unsubscribe token under the same secret is no click token.
        #expect(ClickToken.verify(UnsubscribeToken.make(enrollmentID: 7, secret: "test-unsubscribe-secret"), key: Self.key) == nil)
    }

    /// The click a rewritten link stands for.
    func click(_ link: Substring) -> ClickToken.Click? {
        guard link.hasPrefix("https://t.example.com/c/") else { return nil }
        return ClickToken.verify(String(link.dropFirst("https://t.example.com/c/".count)), key: Self.key)
    }

    /// Every tracked link in `text`, in order.
    func links(_ text: String) -> [ClickToken.Click] {
        text.matches(of: /https:\/\/t\.example\.com\/c\/[A-Za-z0-9_-]+/).compactMap { click(text[$0.range]) }
    }

    @Test("HTML: every http(s) href of <a> and <area> is signed entity-decoded; mailto, unsubscribe, comments, scripts and other attributes are left alone")
    func html() throws {
        let html = """
            <html><body>
            <p><a href="https://example.com/a?x=1&amp;y=2">one</a>
            <A class=x HREF='http://example.com/b'>two</A>
            <a title="href=https://no.example/" href=https://example.com/c>three</a>
            <area shape=rect href="https://example.com/d" alt="">
            <a href="mailto:team@example.com">mail</a>
            <a href="https://mail.example.com/u/abc">unsubscribe</a>
            <a data-href="https://no.example/data">data</a>
            <link href="https://no.example/style.css">
            <!-- <a href="https://no.example/comment"> -->
            <script>var s = '<a href="https://no.example/script">';</script>
            <a href="  https://example.com/e  ">padded</a>
            <a href="https://example.com/&#xE9;t&#233;">accents</a>
            </body></html>
            """
        let (_, rewritten) = Self.tracker.rewrite(text: "", html: html, deliveryID: 9)
        let result = try #require(rewritten)
        let tracked = links(result)
        #expect(tracked.filter { !$0.isDecoy }.map(\.url) == [
            "https://example.com/a?x=1&y=2", "http://example.com/b", "https://example.com/c", "https://example.com/d",
            "https://example.com/e", "https://example.com/%C3%A9t%C3%A9",
        ])
        #expect(tracked.allSatisfy { $0.deliveryID == 9 })
        for untouched in [
            #"href="mailto:team@example.com""#, #"href="https://mail.example.com/u/abc""#, #"data-href="https://no.example/data""#,
            #"<link href="https://no.example/style.css">"#, #"<!-- <a href="https://no.example/comment"> -->"#,
            #"'<a href="https://no.example/script">'"#, #"title="href=https://no.example/""#,
        ] {
            #expect(result.contains(untouched), "\(untouched)")
        }
        // One decoy, hidden, before </body>, leading where the first link does.
        let decoys = tracked.filter(\.isDecoy)
        #expect(decoys.count == 1)
        #expect(decoys.first?.url == "https://example.com/a?x=1&y=2")
        #expect(result.contains(#"style="display:none" aria-hidden="true" tabindex="-1"></a></body>"#))
        // Deterministic: a retry composes the same bytes.
        #expect(Self.tracker.rewrite(text: "", html: html, deliveryID: 9).html == result)
    }

    @Test("text: bare http(s) URLs without trailing punctuation; mailto and the unsubscribe link stay")
    func text() {
        let text = """
            See https://example.com/pricing. Or (https://example.com/wiki/Foo_(bar)), <https://example.com/x?a=1&b=2>,
            HTTP://EXAMPLE.COM/upper! mailto:team@example.com https://mail.example.com/u/tok xhttps://no.example
            https:// alone, and "https://example.com/q"
            """
        let (rewritten, html) = Self.tracker.rewrite(text: text, html: nil, deliveryID: 3)
        #expect(html == nil)
        #expect(links(rewritten).map(\.url) == [
            "https://example.com/pricing", "https://example.com/wiki/Foo_(bar)", "https://example.com/x?a=1&b=2",
            "HTTP://EXAMPLE.COM/upper", "https://example.com/q",
        ])
        #expect(links(rewritten).filter(\.isDecoy).isEmpty)
        for untouched in ["mailto:team@example.com", "https://mail.example.com/u/tok", "xhttps://no.example", "https:// alone"] {
            #expect(rewritten.contains(untouched), "\(untouched)")
        }
        #expect(rewritten.contains(". Or ("))
        #expect(rewritten.contains("), <https://t.example.com/c/"))
    }

    @Test("a message without links is unchanged and gets no decoy")
    func noLinks() {
        let (text, html) = Self.tracker.rewrite(text: "Hello", html: "<p>Hello <a href=\"mailto:a@example.com\">us</a></p>", deliveryID: 1)
        #expect(text == "Hello")
        #expect(html == "<p>Hello <a href=\"mailto:a@example.com\">us</a></p>")
    }
}
