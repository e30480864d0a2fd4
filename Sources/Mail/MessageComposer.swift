/// Composes RFC 5322 / MIME messages: CRLF line endings, RFC 2047 encoded headers,
/// quoted-printable bodies, `multipart/alternative` when there is HTML.
///
/// Nothing is dot-stuffed (libcurl does that on the SMTP wire), and `Auto-Submitted` is
/// deliberately absent: these are individual messages people are expected to reply to, and
/// inbound handling treats replies carrying it as auto-replies.
public struct MessageComposer: Sendable {
    /// Signs the Message-IDs (see ``MessageID``).
    public let messageIDKey: MessageID.Key

    /// Creates a composer that signs Message-IDs with `messageIDKey`; it holds no other state.
    public init(messageIDKey: MessageID.Key) {
        self.messageIDKey = messageIDKey
    }

    /// Composes `message`. Header inputs are neutralised (CR/LF and other controls removed), so no
    /// input can add a header or a recipient.
    public func compose(_ message: OutgoingMessage) -> ComposedMessage {
        let from = HeaderEncoding.sanitizeAddress(message.fromAddress)
        let to = HeaderEncoding.sanitizeAddress(message.toAddress)
        let messageID = MessageID.make(deliveryKey: message.deliveryKey, senderAddress: from, key: messageIDKey)

        var head = HeaderEncoding.field("Date", [MessageDate.format(message.date)])
        head += HeaderEncoding.field("From", mailbox(name: message.fromName, address: from, header: "From"))
        head += HeaderEncoding.field("To", mailbox(name: message.toName ?? "", address: to, header: "To"))
        head += HeaderEncoding.field("Subject", HeaderEncoding.unstructuredTokens(message.subject, header: "Subject"))
        head += HeaderEncoding.field("Message-ID", [messageID])
        if let inReplyTo = message.inReplyTo.flatMap(HeaderEncoding.sanitizeMessageID) {
            head += HeaderEncoding.field("In-Reply-To", [inReplyTo])
        }
        let references = message.references.compactMap(HeaderEncoding.sanitizeMessageID)
        if !references.isEmpty {
            head += HeaderEncoding.field("References", references)
        }
        head += listUnsubscribe(url: message.listUnsubscribeURL, mailto: message.listUnsubscribeMailto)
        head += "MIME-Version: 1.0\r\n"

        var data = Array(head.utf8)
        if let html = message.html {
            let boundary = Self.boundary(forDeliveryKey: message.deliveryKey)
            data += Array(HeaderEncoding.field("Content-Type", ["multipart/alternative;", "boundary=\"\(boundary)\""]).utf8)
            data += [0x0D, 0x0A]
            for (type, content) in [("text/plain", message.text), ("text/html", html)] {
                data += Array("--\(boundary)\r\n".utf8)
                data += Self.qpPart(type: type, content: content)
            }
            data += Array("--\(boundary)--\r\n".utf8)
        } else {
            data += Self.qpPart(type: "text/plain", content: message.text)
        }
        return ComposedMessage(messageID: messageID, deliveryKey: message.deliveryKey, envelopeFrom: from, envelopeTo: to, data: data)
    }

    /// `Name <address>`, or the bare address when there is no name.
    private func mailbox(name: String, address: String, header: String) -> [String] {
        let phrase = HeaderEncoding.phraseTokens(name, header: header)
        return phrase.isEmpty ? [address] : phrase + ["<\(address)>"]
    }

    /// RFC 2369 `List-Unsubscribe` and, with a URL, RFC 8058 one-click. The one-click
    /// header is only valid with a URL the mailbox provider can POST to, so a mailto alone gets none.
    private func listUnsubscribe(url: String?, mailto: String?) -> String {
        let url = url.map { HeaderEncoding.sanitizeURI($0) }.flatMap { $0.isEmpty ? nil : $0 }
        let mailto = mailto.map { HeaderEncoding.sanitizeURI($0) }.flatMap { $0.isEmpty ? nil : $0 }.map {
            $0.lowercased().hasPrefix("mailto:") ? $0 : "mailto:" + $0
        }
        let uris = [url, mailto].compactMap { $0 }.map { "<\($0)>" }
        guard !uris.isEmpty else { return "" }
        // The comma stays attached to the first URI so folding never separates it from its list.
        let tokens = uris.enumerated().map { $0.offset < uris.count - 1 ? $0.element + "," : $0.element }
        var fields = HeaderEncoding.field("List-Unsubscribe", tokens)
        if url != nil {
            fields += "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        }
        return fields
    }

    /// Content headers, blank line and quoted-printable body. An empty body still gets its line
    /// break so a following MIME delimiter starts on its own line.
    private static func qpPart(type: String, content: String) -> [UInt8] {
        var part = Array("Content-Type: \(type); charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".utf8)
        let body = QuotedPrintable.encode(content)
        part += body.isEmpty ? [0x0D, 0x0A] : body
        return part
    }

    /// A boundary that looks random but derives from the delivery key, so composition stays
    /// byte-identical across retries. It starts with `=_`, which quoted-printable output can
    /// never contain (`=` is always followed by hex digits or a line break there), so it cannot
    /// collide with any part's content.
    static func boundary(forDeliveryKey key: String) -> String {
        "=_seqd_" + stableHex(key) + stableHex(key, seed: 0x8422_2325_cbf2_9ce4)
    }
}
