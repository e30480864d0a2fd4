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
