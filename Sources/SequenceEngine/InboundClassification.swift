import Foundation
import Mail

/// What an inbound message is, for the state machine (design.md §7).
public enum InboundClassification: Sendable, Equatable {
    /// A person answered: the `reply` event.
    case reply
    /// An auto-reply (out of office, vacation, ticket acknowledgement): pause until the stated
    /// return date, or for `inbound.ooo_resume_after` when it states none clearly.
    case outOfOffice(returnDate: LocalDate?, marker: String)
    /// A delivery status report with a permanent failure (5.x.x): the `bounce` event for each
    /// failed recipient.
    case bounce([DeliveryStatusReport.Recipient])
    /// Deliberately not acted on, and never a reply: a delayed (4.x.x) or successful delivery
    /// report, a read receipt, a non-standard bounce.
    case ignored(reason: String)

    /// A bounce is matched only by the Message-IDs it carries: it comes from a mail system, so
    /// its sender says nothing about the contact.
    public var isBounce: Bool {
        if case .bounce = self { return true }
        return false
    }

    /// `reply`, `out_of_office`, `bounce`, `ignored`: stable, for output.
    public var kind: String {
        switch self {
        case .reply: "reply"
        case .outOfOffice: "out_of_office"
        case .bounce: "bounce"
        case .ignored: "ignored"
        }
    }
}

/// Sorts inbound mail into reply, out-of-office, bounce or ignored. Pure: `now` is passed in (the
/// database's clock) and only decides which stated return dates are still ahead.
public enum InboundClassifier {
    /// `Subject` words that mark an auto-reply, lower-cased, matched as whole words.
    static let subjectMarkers = [
        "out of office", "out of the office", "automatic reply", "auto reply", "auto-reply", "autoreply",
        "auto response", "autoresponse", "abwesend", "abwesenheitsnotiz", "automatische antwort", "absence",
        "réponse automatique", "respuesta automática", "fuera de la oficina", "vacation reply",
    ]
    /// Local parts of addresses that only ever send bounces.
    static let bounceSenders = ["mailer-daemon", "postmaster"]
    /// A stated return date further ahead than this is more likely a misreading than a holiday.
    static let maxReturnDays = 366

    /// Classifies `message` (the rules are in README.md, "Inbound mail").
    public static func classify(_ message: InboundMessage, now: Date) -> InboundClassification {
        if message.reportType == "delivery-status" || message.deliveryReport != nil {
            let recipients = message.deliveryReport?.recipients ?? []
            let failed = recipients.filter(\.isPermanentFailure)
            if !failed.isEmpty { return .bounce(failed) }
            if recipients.contains(where: \.isDelay) {
                let codes = recipients.compactMap(\.status)
                return .ignored(reason: "a delayed-delivery report (\(codes.isEmpty ? "action delayed" : codes.joined(separator: ", "))): the mail is still being retried")
            }
            return .ignored(reason: "a delivery status report without a permanent failure")
        }
        if message.reportType == "disposition-notification" {
            return .ignored(reason: "a read receipt (message disposition notification)")
        }
        if let from = message.from, let local = from.split(separator: "@").first,
            bounceSenders.contains(local.lowercased())
        {
            return .ignored(reason: "a bounce that is not an RFC 3464 delivery status report (from \(local.lowercased()))")
        }
        if let marker = autoReplyMarker(message) {
            return .outOfOffice(returnDate: returnDate(in: (message.subject ?? "") + "\n" + message.text, now: now), marker: marker)
        }
        return .reply
    }

    /// The header or subject that marks `message` as an auto-reply, or nil.
    static func autoReplyMarker(_ message: InboundMessage) -> String? {
        if let value = message.value("Auto-Submitted") {
            let token = value.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            if !token.isEmpty && token != "no" { return "Auto-Submitted: \(token)" }
        }
        for name in ["X-Autoreply", "X-Autorespond", "X-Autoresponder"] where message.value(name) != nil {
            return name
        }
        if let precedence = message.value("Precedence"), precedence.lowercased().trimmingCharacters(in: .whitespaces) == "auto_reply" {
            return "Precedence: auto_reply"
        }
        // Folding leaves a tab or several spaces where the sender's client broke the line.
        guard let subject = message.subject?.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ") else {
            return nil
        }
        // Outlook's short form: "AUTO: Ada Lovelace is out of the office".
        if subject.hasPrefix("auto:") { return "Subject: Auto:" }
        for marker in subjectMarkers where containsWord(subject, marker) {
            return "Subject: \(marker)"
        }
        return nil
    }

    /// `phrase` occurs in `text` not as part of a longer word.
    static func containsWord(_ text: String, _ phrase: String) -> Bool {
        var searchRange = text.startIndex..<text.endIndex
        while let found = text.range(of: phrase, range: searchRange) {
            let before = found.lowerBound == text.startIndex ? nil : text[text.index(before: found.lowerBound)]
            let after = found.upperBound == text.endIndex ? nil : text[found.upperBound]
            if !(before?.isLetter ?? false) && !(after?.isLetter ?? false) { return true }
            searchRange = found.upperBound..<text.endIndex
        }
        return false
    }

    // MARK: Return dates

    static let months: [String: Int] = {
        var table = [String: Int]()
        let english = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"]
        let german = ["januar", "februar", "märz", "april", "mai", "juni", "juli", "august", "september", "oktober", "november", "dezember"]
        for (index, name) in english.enumerated() {
            table[name] = index + 1
            table[String(name.prefix(3))] = index + 1
        }
        for (index, name) in german.enumerated() {
            table[name] = index + 1
            table[String(name.prefix(3))] = index + 1
        }
        table["sept"] = 9
        table["maerz"] = 3
        return table
    }()

    /// The return date `text` states, when it states exactly one date after `now`'s (UTC) day and
    /// within a year: ISO `2026-12-07`, `December 7, 2026`, `7 December 2026` (also abbreviated,
    /// ordinal, German month names), `07.12.2026` (day first). Slashed dates are not read: `12/07`
    /// means different days on either side of the Atlantic.
    public static func returnDate(in text: String, now: Date) -> LocalDate? {
        let today = WallClock.local(now, in: TimeZone(identifier: "UTC")!).date
        var found = Set<LocalDate>()
        func add(year: Substring, month: Int?, day: Substring) {
            guard let month, let year = Int(year), let day = Int(day),
                (1...12).contains(month), (1...LocalDate.daysIn(month: month, year: year)).contains(day)
            else { return }
            let date = LocalDate(year: year, month: month, day: day)
            if date > today && date.dayNumber - today.dayNumber <= maxReturnDays { found.insert(date) }
        }
        let monthWord = #"([a-zäA-ZÄ]{3,9})"#
        // (pattern, index of the year, month and day groups; month is a word when `monthIsWord`)
        let patterns: [(pattern: String, year: Int, month: Int, day: Int, monthIsWord: Bool)] = [
            (#"(?<![0-9])([0-9]{4})-([0-9]{2})-([0-9]{2})(?![0-9])"#, 1, 2, 3, false),
            (#"(?<![a-zäA-ZÄ])"# + monthWord + #"\.?\s+([0-9]{1,2})(?![0-9])(?:st|nd|rd|th)?,?\s+([0-9]{4})(?![0-9])"#, 3, 1, 2, true),
            (#"(?<![0-9])([0-9]{1,2})(?:st|nd|rd|th)?\.?\s+(?:of\s+)?"# + monthWord + #"\.?,?\s+([0-9]{4})(?![0-9])"#, 3, 2, 1, true),
            (#"(?<![0-9.])([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})(?![0-9])"#, 3, 2, 1, false),
        ]
        let nsText = NSString(string: text)
        for entry in patterns {
            guard let regex = try? NSRegularExpression(pattern: entry.pattern, options: [.caseInsensitive]) else { continue }
            for match in regex.matches(in: text, range: NSRange(location: 0, length: nsText.length)) {
                func group(_ index: Int) -> Substring { Substring(nsText.substring(with: match.range(at: index))) }
                let month = entry.monthIsWord ? months[group(entry.month).lowercased()] : Int(group(entry.month))
                add(year: group(entry.year), month: month, day: group(entry.day))
            }
        }
        return found.count == 1 ? found.first : nil
    }

    /// When an out-of-office pause ends: the start of the stated return date in the contact's
    /// zone (else the sequence's), when that is still ahead of `now`; otherwise `now + defaultDelay`.
    public static func resumeAt(
        returnDate: LocalDate?, contactZone: String?, sequenceZone: String, now: Date, defaultDelay: TimeInterval
    ) -> Date {
        if let returnDate {
            let start = WallClock.instant(returnDate, secondsOfDay: 0, in: TimeZones.zone(contact: contactZone, sequence: sequenceZone))
            if start > now { return start }
        }
        return now.addingTimeInterval(defaultDelay)
    }
}
