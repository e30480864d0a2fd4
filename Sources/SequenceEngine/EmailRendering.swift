import Foundation

extension SequenceDefinition {
    /// Renders the email step at `index` for `contact`: what the daemon stores in the outbox when
    /// the step runs, and what `seqd sequence preview` shows, so both always agree. Throws
    /// `Template.MissingFields` naming the fields the contact lacks (an email is never rendered
    /// with a hole in it), or `Template.SyntaxError` for a stored template that does not parse.
    public func render(_ email: Email, at index: Int, for contact: ContactFields) throws -> RenderedEmail {
        let subject = try Template.parsed(email.subject).render(contact)
        let text = try Template.parsed(email.body).render(contact)
        let html = try email.html.map { try Template.parsed($0).render(contact, escapeHTML: true) }
        // Header injection guard: a field value with a line break must not reach the subject.
        let oneLineSubject = subject.split(whereSeparator: \.isNewline).joined(separator: " ")
        return RenderedEmail(subject: oneLineSubject, text: text, html: html, threadParentKey: threadParent(ofStepAt: index))
    }
}
