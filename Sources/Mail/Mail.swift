// Mail: the Internet message format, both ways. Composing turns an `OutgoingMessage` into RFC 5322
// / MIME bytes (CRLF lines, RFC 2047 encoded-words, quoted-printable bodies, the `Date` and the
// signed, deterministic `MessageID`), byte-identical on every retry; parsing reads a raw message
// back into an `InboundMessage` (header fields, addresses, msg-ids, the first text part, an
// RFC 3464 delivery status report). Each MIME rule is written once here for both directions
// (quoted-printable, encoded-words). Pure and without I/O; it knows nothing about sequences,
// deliveries or transports: what a parsed message *means* (a reply, an auto-reply, a bounce, a
// trusted sender) is decided in SequenceEngine, and Delivery moves the composed bytes.
