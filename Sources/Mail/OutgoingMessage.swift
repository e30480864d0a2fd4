import Foundation

/// One email as the sequence engine decided it: rendered content plus the identifiers that make a
/// retry indistinguishable from the first attempt.
///
/// Values are taken as given and neutralised at composition time (CR/LF removed from header
/// input, line endings normalised in bodies), so callers never need to pre-escape anything.
public struct OutgoingMessage: Sendable, Equatable {
    /// Sender address, used for the `From` header and the SMTP envelope (`MAIL FROM`).
    public var fromAddress: String
    /// Sender display name; empty for a bare address.
    public var fromName: String
    /// Recipient address, used for the `To` header and the SMTP envelope (`RCPT TO`).
    public var toAddress: String
    /// Recipient display name, if known.
    public var toName: String?
    /// Subject, any Unicode.
    public var subject: String
    /// Plain-text body; LF, CR or CRLF line endings are all accepted.
    public var text: String
    /// Optional HTML body; when set the message becomes `multipart/alternative`.
    public var html: String?
    /// The delivery's idempotency key (for example `d-123-intro`). The Message-ID, the MIME
    /// boundary and the file transport's file name derive from it, so a retry composes the
    /// same bytes.
    public var deliveryKey: String
    /// The `Date` header; callers pass the database clock's `now()`, never the local clock.
    public var date: Date
    /// Message-ID of the email this one replies to (threaded steps).
    public var inReplyTo: String?
    /// Message-IDs of the thread so far, oldest first (threaded steps).
    public var references: [String]
    /// One-click unsubscribe URL (`<unsubscribe.base_url>/u/<token>`); enables RFC 8058's
    /// `List-Unsubscribe-Post` header.
    public var listUnsubscribeURL: String?
    /// Unsubscribe address, with or without the `mailto:` prefix.
    public var listUnsubscribeMailto: String?

    /// Creates a message; optional parts default to absent.
    public init(
        fromAddress: String,
        fromName: String = "",
        toAddress: String,
        toName: String? = nil,
        subject: String,
        text: String,
        html: String? = nil,
        deliveryKey: String,
        date: Date,
        inReplyTo: String? = nil,
        references: [String] = [],
        listUnsubscribeURL: String? = nil,
        listUnsubscribeMailto: String? = nil
    ) {
        self.fromAddress = fromAddress
        self.fromName = fromName
        self.toAddress = toAddress
        self.toName = toName
        self.subject = subject
        self.text = text
        self.html = html
        self.deliveryKey = deliveryKey
        self.date = date
        self.inReplyTo = inReplyTo
        self.references = references
        self.listUnsubscribeURL = listUnsubscribeURL
        self.listUnsubscribeMailto = listUnsubscribeMailto
    }
}

/// A message ready for the wire: RFC 5322 bytes with CRLF line endings, not dot-stuffed (libcurl
/// does that for SMTP), plus the envelope a transport needs.
public struct ComposedMessage: Sendable, Equatable {
    /// The `Message-ID` header value, angle brackets included; stored with the delivery so
    /// inbound replies can be matched.
    public var messageID: String
    /// The delivery key the message was composed from; transports use it as their idempotency key.
    public var deliveryKey: String
    /// Envelope sender (`MAIL FROM`), sanitised exactly like the `From` header's address.
    public var envelopeFrom: String
    /// Envelope recipient (`RCPT TO`), sanitised exactly like the `To` header's address.
    public var envelopeTo: String
    /// The complete message: headers, blank line, body.
    public var data: [UInt8]

    /// Creates a composed message; transports' tests use this to send hand-made bytes.
    public init(messageID: String, deliveryKey: String, envelopeFrom: String, envelopeTo: String, data: [UInt8]) {
        self.messageID = messageID
        self.deliveryKey = deliveryKey
        self.envelopeFrom = envelopeFrom
        self.envelopeTo = envelopeTo
        self.data = data
    }
}
