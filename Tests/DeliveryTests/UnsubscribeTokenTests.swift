import Delivery
import Testing

@Suite("unsubscribe tokens")
struct UnsubscribeTokenTests {
    let secret = "0123456789abcdef0123456789abcdef"

    @Test("a token verifies for its own enrollment")
    func roundTrip() {
        for id: Int64 in [1, 42, 9_007_199_254_740_993] {
            let token = UnsubscribeToken.make(enrollmentID: id, secret: secret)
            #expect(UnsubscribeToken.verify(token, secret: secret) == id)
            #expect(token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        }
    }

    @Test("a token for one enrollment does not verify for another, nor under another secret")
    func notTransferable() {
        let token = UnsubscribeToken.make(enrollmentID: 7, secret: secret)
        #expect(UnsubscribeToken.verify(token, secret: secret) != 8)
        #expect(UnsubscribeToken.verify(token, secret: "another secret") == nil)
        #expect(UnsubscribeToken.make(enrollmentID: 8, secret: secret) != token)
    }

    @Test("tampered and malformed tokens are rejected")
    func tampered() {
        let token = UnsubscribeToken.make(enrollmentID: 7, secret: secret)
        var characters = Array(token)
        characters[3] = characters[3] == "A" ? "B" : "A"  // flips bits of the enrollment id
        #expect(UnsubscribeToken.verify(String(characters), secret: secret) == nil)
        characters = Array(token)
        characters[characters.count - 2] = characters[characters.count - 2] == "A" ? "B" : "A"  // the MAC
        #expect(UnsubscribeToken.verify(String(characters), secret: secret) == nil)
        // Every other last character: 40 bytes leave 4 unused bits there, which must not be ignored.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for last in alphabet where last != token.last {
            #expect(UnsubscribeToken.verify(String(token.dropLast()) + String(last), secret: secret) == nil, "last character \(last)")
        }
        for bad in ["", "abc", String(token.dropLast()), token + "AAAA", "../../etc/passwd", "%00"] {
            #expect(UnsubscribeToken.verify(bad, secret: secret) == nil)
        }
    }
}
