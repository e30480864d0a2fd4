import Foundation

extension SequenceDefinition {
    /// Renders the email step at `index` for `contact`: what the daemon stores in the outbox when
    /// the step runs, and what `seqd sequence preview` shows, so both always agree. A step with
    /// variants renders the one `enrollmentID` picks, or `variant` when given (a preview of one).
    /// Throws `Template.MissingFields` naming the fields the contact lacks (an email is never
    /// rendered with a hole in it), or `Template.SyntaxError` for a stored template that does not parse.
    public func render(
        _ email: Email, at index: Int, for contact: ContactFields, enrollmentID: Int64, variant: Variant? = nil
    ) throws -> RenderedEmail {
        let chosen = variant ?? email.variant(for: enrollmentID, stepKey: steps[index].key)
        let subject = try Template.parsed(chosen?.subject ?? email.subject).render(contact)
        let text = try Template.parsed(chosen?.body ?? email.body).render(contact)
        let html = try (chosen.map(\.html) ?? email.html).map { try Template.parsed($0).render(contact, escapeHTML: true) }
        // Header injection guard: a field value with a line break must not reach the subject.
        let oneLineSubject = subject.split(whereSeparator: \.isNewline).joined(separator: " ")
        return RenderedEmail(
            subject: oneLineSubject, text: text, html: html, threadParentKey: threadParent(ofStepAt: index), variant: chosen?.key)
    }
}
