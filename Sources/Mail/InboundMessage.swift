import Foundation

/// A raw inbound email (RFC 5322 with MIME), read as far as seqd needs to match and classify it:
/// the header fields, the addresses, the msg-ids it refers to, its first text part, and — for a
/// delivery status report (RFC 3464) — the per-recipient status and the returned original's
/// Message-ID. Build one with ``parse(_:)``; nothing here does I/O.
///
/// The outer structure is checked strictly (a header section, header lines with a colon, an
/// address or a reference to match by), so an MTA pipe that hands over garbage gets an error
/// naming the line. MIME parts inside are read leniently: a broken part is skipped, not fatal.
public struct InboundMessage: Sendable, Equatable {
    /// One header field, unfolded, with the line it starts on (1-based, in the raw message).
    public struct Field: Sendable, Equatable {
        /// As written (compare case-insensitively).
        public let name: String
        /// Unfolded, not decoded.
        public let value: String
        public let line: Int
    }

    /// A msg-id the message refers to and the header it came from (`In-Reply-To`, `References`,
    /// or `Message-ID (returned original)` for a delivery status report).
    public struct Reference: Sendable, Equatable {
        /// `<local@domain>`, as seqd stores its own Message-IDs.
        public let messageID: String
        public let header: String
    }

    /// The top-level header fields in order.
    public let fields: [Field]
    /// `Subject` with RFC 2047 encoded-words decoded.
    public let subject: String?
    /// The `From` address, lower-cased.
    public let from: String?
    /// Who it was addressed to, lower-cased: `To`, `Cc`, `Delivered-To`, `X-Original-To`, `Envelope-To`.
    public let recipients: [String]
    /// The message's own `Message-ID`.
    public let messageID: String?
    /// `In-Reply-To` msg-ids.
    public let inReplyTo: [String]
    /// `References` msg-ids, oldest first (as written).
    public let references: [String]
    /// The `report-type` of a `multipart/report` (`delivery-status`, `disposition-notification`).
    public let reportType: String?
    /// The RFC 3464 content of a delivery status report, when the message is one.
    public let deliveryReport: DeliveryStatusReport?
    /// The first text part (plain text, else HTML without tags), decoded, without quoted lines;
    /// at most ``maxTextCharacters``. Where an auto-reply states its return date.
    public let text: String

    /// Larger messages are refused: nothing seqd reads lies beyond, and an MTA pipe must not be
    /// able to exhaust memory.
    public static let maxSize = 32 << 20
    /// The part of the text searched for a return date.
    public static let maxTextCharacters = 64 << 10
    /// MIME nesting deeper than this is not followed.
    static let maxDepth = 12
    /// Lines past this many are not read. The line index costs 16 bytes a line, so a message of
    /// nothing but line ends would otherwise cost 16 times its size; a 32 MiB message of
    /// 76-character lines has about 440,000.
    static let maxLines = 1 << 20
    /// At most this much of one MIME part is decoded: the text is cut at `maxTextCharacters`
    /// anyway, and a report's or returned original's header section is far smaller.
    static let maxPartBytes = 1 << 20
    /// A header field's value is cut here before anything reads it (`References` of a very long
    /// thread stays whole; a 32 MiB header line does not reach a pattern).
    static let maxFieldBytes = 64 << 10
    /// The Subject is cut to this many characters before the auto-reply markers and the return
    /// date patterns run over it.
    public static let maxSubjectCharacters = 1_000
    /// At most this many MIME parts are read.
    static let maxParts = 500

    /// The first field called `name` (case-insensitive), unfolded.
    public func value(_ name: String) -> String? {
        fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// The msg-ids to match against seqd's deliveries, most specific first: `In-Reply-To`, the
    /// returned original's `Message-ID` (delivery reports), then `References` newest first.
    public var matchReferences: [Reference] {
        var seen = Set<String>()
        var result = [Reference]()
        func add(_ ids: [String], _ header: String) {
            for id in ids where seen.insert(id).inserted { result.append(Reference(messageID: id, header: header)) }
        }
        add(inReplyTo, "In-Reply-To")
        if let original = deliveryReport?.originalMessageID { add([original], "Message-ID of the returned message") }
        add(references.reversed(), "References")
        return result
    }

    // MARK: Parsing

    /// Parses a raw message (CRLF or bare LF line ends; an mbox `From ` line first is skipped).
    public static func parse(_ data: some Collection<UInt8>) throws(InboundMessageError) -> InboundMessage {
        guard !data.isEmpty else { throw InboundMessageError(line: nil, "the message is empty") }
        guard data.count <= maxSize else {
            throw InboundMessageError(line: nil, "the message is larger than \(maxSize >> 20) MiB")
        }
        let lines = MessageLines(Array(data))
        var start = 0
        // An MTA or mbox may put the envelope line "From sender date" before the headers.
        if lines.count > 0, lines.startsWith(0, "From ") { start = 1 }
        guard start < lines.count, !lines.isEmpty(start) else {
            throw InboundMessageError(
                line: start + 1, "the message has no header section (it starts with an empty line)")
        }
        let (fields, bodyStart) = try HeaderSection.parse(lines, from: start, strict: true)
        let top = MIMEEntity(fields: fields, body: bodyStart..<lines.count)

        func first(_ name: String) -> String? {
            fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
        }
        func all(_ name: String) -> [String] {
            fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
        }
        let from = first("From").flatMap { MIMEDecoding.addresses($0).first }
        let inReplyTo = all("In-Reply-To").flatMap(MIMEDecoding.messageIDs)
        let references = all("References").flatMap(MIMEDecoding.messageIDs)
        if from == nil && inReplyTo.isEmpty && references.isEmpty {
            let fromLine = fields.first { $0.name.caseInsensitiveCompare("From") == .orderedSame }?.line
            throw InboundMessageError(
                line: fromLine,
                fromLine == nil
                    ? "the header section has no From, In-Reply-To or References: nothing to match the message by"
                    : "the From header holds no address, and there is no In-Reply-To or References to match the message by")
        }
        var recipients = [String]()
        for name in ["To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To"] {
            for address in all(name).flatMap(MIMEDecoding.addresses) where !recipients.contains(address) {
                recipients.append(address)
            }
        }

        var walker = PartWalker(lines: lines)
        walker.walk(top, depth: 0)
        let topType = MIMEDecoding.contentType(first("Content-Type") ?? "text/plain")
        let reportType = topType.type == "multipart/report" ? topType.parameters["report-type"]?.lowercased() : nil
        var report: DeliveryStatusReport?
        if let status = walker.deliveryStatus {
            report = DeliveryStatusReport.parse(status, originalMessageID: walker.originalMessageID)
        }
        return InboundMessage(
            fields: fields,
            subject: first("Subject").map {
                String(EncodedWord.decode(String($0.prefix(maxSubjectCharacters * 4))).trimmingCharacters(in: .whitespaces)
                    .prefix(maxSubjectCharacters))
            },
            from: from, recipients: recipients, messageID: first("Message-ID").flatMap { MIMEDecoding.messageIDs($0).first },
            inReplyTo: inReplyTo, references: references, reportType: reportType, deliveryReport: report,
            text: walker.text ?? walker.htmlText ?? "")
    }
}

/// Why a raw message was refused, with the line (1-based) where that is known.
public struct InboundMessageError: Error, Sendable, Equatable, CustomStringConvertible {
    public let line: Int?
    public let message: String

    init(line: Int?, _ message: String) {
        self.line = line
        self.message = message
    }

    /// `line 3: a header line without a colon …`, or the message alone.
    public var description: String { line.map { "line \($0): \(message)" } ?? message }
}

/// The machine-readable part of a delivery status report (RFC 3464).
public struct DeliveryStatusReport: Sendable, Equatable {
    /// One `Final-Recipient` block.
    public struct Recipient: Sendable, Equatable {
        /// The address from `Final-Recipient: rfc822; …` (lower-cased); nil when there is none.
        public let address: String?
        /// `failed`, `delayed`, `delivered`, `relayed`, `expanded` (lower-cased).
        public let action: String?
        /// The enhanced status code, `5.1.1`.
        public let status: String?
        /// `Diagnostic-Code`, as the remote server said it.
        public let diagnostic: String?

        /// A permanent failure: status 5.x.x, or action `failed` without a status.
        public var isPermanentFailure: Bool {
            if let status { return status.hasPrefix("5.") }
            return action == "failed"
        }

        /// A temporary condition: status 4.x.x, or action `delayed` without a status.
        public var isDelay: Bool {
            if let status { return status.hasPrefix("4.") }
            return action == "delayed"
        }
    }

    public let recipients: [Recipient]
    /// The `Message-ID` of the returned original (`text/rfc822-headers` or `message/rfc822`).
    public let originalMessageID: String?

    static func parse(_ text: String, originalMessageID: String?) -> DeliveryStatusReport {
        // Blocks separated by empty lines: per-message fields first, then one per recipient.
        let lines = MessageLines(Array(text.utf8))
        var recipients = [Recipient]()
        var index = 0
        while index < lines.count {
            if lines.isEmpty(index) {
                index += 1
                continue
            }
            let (fields, next) = (try? HeaderSection.parse(lines, from: index, strict: false)) ?? ([], lines.count)
            index = max(next, index + 1)
            func value(_ name: String) -> String? {
                fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value.trimmingCharacters(in: .whitespaces)
            }
            guard value("Final-Recipient") != nil || value("Status") != nil || value("Action") != nil else { continue }
            func typedAddress(_ value: String?) -> String? {
                guard let value else { return nil }
                let address = value.split(separator: ";", maxSplits: 1).last.map(String.init) ?? value
                return MIMEDecoding.address(address)
            }
            let status = value("Status").flatMap { text -> String? in
                let code = text.split(whereSeparator: { $0.isWhitespace || $0 == "(" }).first.map(String.init) ?? ""
                let parts = code.split(separator: ".", omittingEmptySubsequences: false)
                guard parts.count == 3, ["2", "4", "5"].contains(parts[0]),
                    parts.dropFirst().allSatisfy({ (1...3).contains($0.count) && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) })
                else { return nil }
                return code
            }
            recipients.append(
                Recipient(
                    // Only Final-Recipient: a bounce names the address the receiving MTA refused.
                    address: typedAddress(value("Final-Recipient")),
                    action: value("Action")?.lowercased().split(separator: " ").first.map(String.init), status: status,
                    diagnostic: value("Diagnostic-Code")))
        }
        return DeliveryStatusReport(recipients: recipients, originalMessageID: originalMessageID)
    }
}

// MARK: - Lines and header sections

/// A message's bytes as lines without their terminators (CRLF or LF), by index.
struct MessageLines {
    let bytes: [UInt8]
    let ranges: [Range<Int>]

    /// Indexes at most `InboundMessage.maxLines` lines; the rest of the bytes is not read.
    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        var ranges = [Range<Int>]()
        var start = 0
        for index in bytes.indices where bytes[index] == 0x0A {
            let end = index > start && bytes[index - 1] == 0x0D ? index - 1 : index
            ranges.append(start..<end)
            start = index + 1
            if ranges.count == InboundMessage.maxLines { break }
        }
        if start < bytes.count, ranges.count < InboundMessage.maxLines { ranges.append(start..<bytes.count) }
        self.ranges = ranges
    }

    var count: Int { ranges.count }

    subscript(index: Int) -> ArraySlice<UInt8> { bytes[ranges[index]] }

    func isEmpty(_ index: Int) -> Bool { ranges[index].isEmpty }

    func startsWith(_ index: Int, _ prefix: String) -> Bool { self[index].starts(with: prefix.utf8) }

    func string(_ index: Int) -> String { String(decoding: self[index], as: UTF8.self) }

    /// The bytes of lines `range`, joined with LF, stopping at the first line that would pass
    /// `limit` bytes (of a first line longer than that, its first `limit` bytes).
    func joined(_ range: Range<Int>, limit: Int = .max) -> [UInt8] {
        guard let first = range.first, let last = range.last else { return [] }
        var output = [UInt8]()
        output.reserveCapacity(min(limit, ranges[last].upperBound - ranges[first].lowerBound))
        for index in range {
            let line = self[index]
            if index > first {
                guard output.count + 1 + line.count <= limit else { break }
                output.append(0x0A)
            } else if line.count > limit {
                output.append(contentsOf: line.prefix(limit))
                break
            }
            output.append(contentsOf: line)
        }
        return output
    }
}

enum HeaderSection {
    /// Parses header fields from line `start` up to the first empty line; returns the fields and
    /// the index of the first body line. Strict: a bad line is an error naming it. Lenient (MIME
    /// parts, DSN blocks): a bad line is skipped.
    static func parse(_ lines: MessageLines, from start: Int, to end: Int? = nil, strict: Bool) throws(InboundMessageError)
        -> (fields: [InboundMessage.Field], bodyStart: Int)
    {
        let end = min(end ?? lines.count, lines.count)
        var fields = [InboundMessage.Field]()
        var current: (name: String, value: String, line: Int)?
        var index = start
        func flush() {
            if let field = current { fields.append(InboundMessage.Field(name: field.name, value: field.value, line: field.line)) }
            current = nil
        }
        while index < end, !lines.isEmpty(index) {
            let line = lines[index]
            let number = index + 1
            defer { index += 1 }
            if line.contains(0) {
                if strict { throw InboundMessageError(line: number, "a header line contains a NUL byte") }
                continue
            }
            if let first = line.first, first == 0x20 || first == 0x09 {
                guard current != nil else {
                    if strict {
                        throw InboundMessageError(line: number, "a folded continuation line comes before any header field")
                    }
                    continue
                }
                if current!.value.utf8.count < InboundMessage.maxFieldBytes {
                    current!.value += String(decoding: line.prefix(InboundMessage.maxFieldBytes - current!.value.utf8.count), as: UTF8.self)
                }
                continue
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                if strict {
                    throw InboundMessageError(
                        line: number, "a header line without a colon (the header section ends at the first empty line)")
                }
                continue
            }
            // Obsolete syntax allows white space before the colon ("Subject :").
            var nameBytes = line[line.startIndex..<colon]
            while let last = nameBytes.last, last == 0x20 || last == 0x09 { nameBytes.removeLast() }
            guard !nameBytes.isEmpty, nameBytes.allSatisfy({ (33...126).contains($0) }) else {
                if strict {
                    throw InboundMessageError(
                        line: number, nameBytes.isEmpty ? "a header line with an empty field name" : "a header field name with characters RFC 5322 forbids")
                }
                continue
            }
            flush()
            current = (
                String(decoding: nameBytes, as: UTF8.self),
                String(decoding: line[(colon + 1)...].prefix(InboundMessage.maxFieldBytes), as: UTF8.self)
                    .trimmingCharacters(in: .whitespaces), number
            )
        }
        flush()
        // Skip the empty separator line.
        return (fields, index < end ? index + 1 : index)
    }
}

// MARK: - MIME walking

/// One MIME entity: its header fields and the line range of its body.
struct MIMEEntity {
    let fields: [InboundMessage.Field]
    let body: Range<Int>

    func value(_ name: String) -> String? {
        fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

/// Walks the MIME tree once, collecting what classification needs.
struct PartWalker {
    let lines: MessageLines
    var parts = 0
    /// The first `text/plain` part that is not an attachment.
    var text: String?
    /// The first `text/html` part, tags removed, for messages without plain text.
    var htmlText: String?
    /// The decoded `message/delivery-status` part.
    var deliveryStatus: String?
    /// From `text/rfc822-headers` or `message/rfc822`.
    var originalMessageID: String?

    init(lines: MessageLines) { self.lines = lines }

    mutating func walk(_ entity: MIMEEntity, depth: Int) {
        parts += 1
        guard parts <= InboundMessage.maxParts else { return }
        let (type, parameters) = MIMEDecoding.contentType(entity.value("Content-Type") ?? "text/plain")
        if type.hasPrefix("multipart/") {
            guard depth < InboundMessage.maxDepth, let boundary = parameters["boundary"], !boundary.isEmpty else { return }
            for part in split(entity.body, boundary: boundary) {
                guard parts < InboundMessage.maxParts else { return }
                guard let (fields, bodyStart) = try? HeaderSection.parse(lines, from: part.lowerBound, to: part.upperBound, strict: false)
                else { continue }
                walk(MIMEEntity(fields: fields, body: bodyStart..<part.upperBound), depth: depth + 1)
            }
            return
        }
        let isAttachment = MIMEDecoding.contentType(entity.value("Content-Disposition") ?? "").type == "attachment"
        func decoded() -> [UInt8] {
            MIMEDecoding.decodeBody(
                lines.joined(entity.body, limit: InboundMessage.maxPartBytes), transferEncoding: entity.value("Content-Transfer-Encoding"))
        }
        switch type {
        case "text/plain" where text == nil && !isAttachment:
            text = Self.withoutQuotes(MIMEDecoding.text(decoded(), charset: parameters["charset"]))
        case "text/html" where htmlText == nil && !isAttachment:
            htmlText = Self.withoutQuotes(Self.strippingTags(MIMEDecoding.text(decoded(), charset: parameters["charset"])))
        case "message/delivery-status", "message/global-delivery-status":
            if deliveryStatus == nil { deliveryStatus = MIMEDecoding.text(decoded(), charset: "utf-8") }
        case "text/rfc822-headers", "message/rfc822", "message/global", "message/global-headers":
            // The returned original: only its header section matters (its text is not ours to read).
            guard originalMessageID == nil else { return }
            let original = MessageLines(decoded())
            if let (fields, _) = try? HeaderSection.parse(original, from: 0, strict: false),
                let value = fields.first(where: { $0.name.caseInsensitiveCompare("Message-ID") == .orderedSame })?.value
            {
                originalMessageID = MIMEDecoding.messageIDs(value).first
            }
        default:
            break
        }
    }

    /// The line ranges of the parts between `--boundary` delimiters (RFC 2046 §5.1.1).
    func split(_ body: Range<Int>, boundary: String) -> [Range<Int>] {
        let delimiter = Array("--\(boundary)".utf8)
        var parts = [Range<Int>]()
        var partStart: Int?
        for index in body {
            let line = lines[index]
            guard line.starts(with: delimiter) else { continue }
            var rest = line.dropFirst(delimiter.count)
            let closing = rest.starts(with: "--".utf8)
            if closing { rest = rest.dropFirst(2) }
            guard rest.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else { continue }
            if let start = partStart { parts.append(start..<index) }
            if closing { return parts }
            partStart = index + 1
        }
        // No closing delimiter: the last part runs to the end.
        if let start = partStart, start <= body.upperBound { parts.append(start..<body.upperBound) }
        return parts
    }

    /// Text without the quoted original: lines starting with `>`, and everything after the usual
    /// "original message" separators. Capped at `maxTextCharacters`.
    static func withoutQuotes(_ text: String) -> String {
        var kept = [Substring]()
        var total = 0
        // Lines are found one at a time: splitting the whole text first would cost an array entry
        // per line, 32 bytes for every byte of a part made of nothing but line ends.
        var rest = text[...]
        var more = true
        while more {
            let end = rest.firstIndex { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
            let line = rest[..<(end ?? rest.endIndex)]
            if let end { rest = rest[rest.index(after: end)...] } else { more = false }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("-----Original Message-----") || trimmed.hasPrefix("________________________________")
                || trimmed.hasPrefix("-------- Original Message --------") || trimmed.hasPrefix("-----Ursprüngliche Nachricht-----")
            {
                break
            }
            if trimmed.hasPrefix(">") { continue }
            kept.append(line)
            total += line.count + 1
            if total >= InboundMessage.maxTextCharacters { break }
        }
        return String(kept.joined(separator: "\n").prefix(InboundMessage.maxTextCharacters))
    }

    /// HTML reduced to its text: tags dropped, block ends as line breaks, a few entities decoded.
    static func strippingTags(_ html: String) -> String {
        var output = ""
        var inTag = false
        var tag = ""
        for character in html.prefix(InboundMessage.maxTextCharacters * 4) {
            if inTag {
                if character == ">" {
                    inTag = false
                    let name = tag.lowercased()
                    if name.hasPrefix("br") || name.hasPrefix("/p") || name.hasPrefix("/div") || name.hasPrefix("/tr") {
                        output += "\n"
                    } else if name.hasPrefix("blockquote") {
                        output += "\n> "
                    }
                } else {
                    tag.append(character)
                }
            } else if character == "<" {
                inTag = true
                tag = ""
            } else {
                output.append(character)
            }
        }
        for (entity, replacement) in [("&nbsp;", " "), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'")] {
            output = output.replacingOccurrences(of: entity, with: replacement)
        }
        return output
    }
}
