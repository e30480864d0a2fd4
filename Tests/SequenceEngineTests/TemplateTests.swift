import Testing
@testable import SequenceEngine

@Suite struct TemplateTests {
    @Test func rendersFieldsAndFallbacks() throws {
        let template = try Template(parsing: "Hi {{ first_name | there }}, your plan is {{plan}} ({{email}})")
        #expect(try template.render(ada) == "Hi Ada, your plan is pro (ada@example.com)")
        let anonymous = ContactFields(email: "x@example.com", attributes: ["plan": "free"])
        #expect(try template.render(anonymous) == "Hi there, your plan is free (x@example.com)")
    }

    @Test func missingFieldWithoutFallbackIsAnErrorNamingIt() throws {
        let template = try Template(parsing: "{{first_name}} {{last_name}} {{company}} {{plan|none}}")
        let contact = ContactFields(email: "x@example.com", firstName: "  ", lastName: "Doe")
        #expect(template.requiredFields == ["company", "first_name", "last_name"])
        #expect(template.missingFields(for: contact) == ["company", "first_name"])
        #expect(throws: Template.MissingFields(fields: ["company", "first_name"])) { try template.render(contact) }
    }

    @Test("a blank field (spaces, tabs, line breaks, no-break or ideographic spaces) counts as missing")
    func blankFieldsAreMissing() throws {
        let template = try Template(parsing: "{{first_name|friend}}")
        for blank in ["", " ", "\t\n ", "\u{00A0}", "\u{3000}\u{2028}", "\u{200B}"] {
            #expect(try template.render(ContactFields(email: "x@example.com", firstName: blank)) == "friend", "\(Array(blank.unicodeScalars))")
        }
        for value in ["x", " Ann ", "\u{00A0}Zoë", "\u{0001}", "李"] {
            #expect(try template.render(ContactFields(email: "x@example.com", firstName: value)) == value)
        }
    }

    @Test("the cached parse is the parse, and a bad text still fails every time")
    func cachedParse() throws {
        let source = "Hi {{ first_name | there }}"
        #expect(try Template.parsed(source) == Template(parsing: source))
        #expect(try Template.parsed(source).render(ada) == "Hi Ada")
        for _ in 0..<2 { #expect(throws: Template.SyntaxError.self) { try Template.parsed("{{oops") } }
    }

    @Test func emptyFallbackIsAllowed() throws {
        #expect(try Template(parsing: "a{{nickname|}}b").render(ada) == "ab")
    }

    @Test func onlyHTMLIsEscaped() throws {
        let contact = ContactFields(email: "x@example.com", firstName: "<b>Tom & \"Jerry\"</b>")
        let template = try Template(parsing: "<p>{{first_name}}</p>")
        #expect(try template.render(contact) == "<p><b>Tom & \"Jerry\"</b></p>")
        #expect(try template.render(contact, escapeHTML: true) == "<p>&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt;</p>")
    }

    @Test func builtInFieldsWinOverAttributes() throws {
        let contact = ContactFields(email: "real@example.com", attributes: ["email": "fake@example.com", "time_zone": "x"])
        #expect(try Template(parsing: "{{email}} {{time_zone|none}}").render(contact) == "real@example.com none")
    }

    @Test func loneClosingBracesAreText() throws {
        #expect(try Template(parsing: "a { b }} c").render(ada) == "a { b }} c")
    }

    @Test(arguments: ["Hi {{first_name", "{{}}", "{{ | x}}", "{{first name}}", "{{a{{b}}"])
    func malformed(_ source: String) {
        #expect(throws: Template.SyntaxError.self) { try Template(parsing: source) }
    }
}
