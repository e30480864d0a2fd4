import Foundation
import Postgres
import SequenceEngine

/// `seqd report`: per email step and A/B variant, the emails a sequence sent and what became of
/// them. An outcome counts for the email that was its enrollment's last one sent when it ended
/// (`deliveries.credited_outcome`, written in that transaction); a click counts once per email, a person's
/// apart from a link scanner's. Read from `seqd.step_results(sequence_id, since)`.
public struct StepResults: Sendable, Encodable {
    /// One step and variant. Rates are of `sent`; nil when nothing was sent.
    public struct Line: Sendable, Encodable {
        public let step: String
        /// Nil for a step without variants.
        public let variant: String?
        public let sent: Int
        public let replied: Int
        public let bounced: Int
        public let optedOut: Int
        public let converted: Int
        /// Emails with at least one click by a person.
        public let clicked: Int
        /// Emails with at least one click flagged as a link scanner's (not counted in `clicked`).
        public let scannerClicked: Int

        public var replyRate: Double? { rate(replied) }
        public var bounceRate: Double? { rate(bounced) }
        public var optOutRate: Double? { rate(optedOut) }
        public var conversionRate: Double? { rate(converted) }
        public var clickRate: Double? { rate(clicked) }

        func rate(_ count: Int) -> Double? { sent == 0 ? nil : Double(count) / Double(sent) }

        enum CodingKeys: String, CodingKey {
            case step, variant, sent, replied, bounced, converted, clicked
            case optedOut = "opted_out"
            case scannerClicked = "scanner_clicked"
            case replyRate = "reply_rate"
            case bounceRate = "bounce_rate"
            case optOutRate = "opt_out_rate"
            case conversionRate = "conversion_rate"
            case clickRate = "click_rate"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(step, forKey: .step)
            try container.encode(variant, forKey: .variant)
            for (key, value) in [(CodingKeys.sent, sent), (.replied, replied), (.bounced, bounced), (.optedOut, optedOut),
                                 (.converted, converted), (.clicked, clicked), (.scannerClicked, scannerClicked)] {
                try container.encode(value, forKey: key)
            }
            for (key, value) in [(CodingKeys.replyRate, replyRate), (.bounceRate, bounceRate), (.optOutRate, optOutRate),
                                 (.conversionRate, conversionRate), (.clickRate, clickRate)] {
                try container.encode(value, forKey: key)
            }
        }

        init(row: Row) throws {
            step = try row.decode("step_key")
            variant = try row.decode("variant", as: String?.self)
            sent = try row.decode("sent")
            replied = try row.decode("replied")
            bounced = try row.decode("bounced")
            optedOut = try row.decode("opted_out")
            converted = try row.decode("converted")
            clicked = try row.decode("clicked")
            scannerClicked = try row.decode("scanner_clicked")
        }
    }

    public let sequence: String
    /// Emails sent from this instant on (midnight of `--since` in the sequence's time zone); nil: all time.
    public let since: Date?
    /// The zone `since` was read in: the latest version's `time_zone`.
    public let timeZone: String
    /// In the latest version's step order (steps only older versions have come last, by key),
    /// variants by key.
    public let lines: [Line]

    /// - Parameter sinceDate: a calendar day, read as its midnight in the sequence's time zone.
    /// Unknown sequence: `StoreError(.notFound)`.
    public static func load(_ connection: Connection, sequence name: String, sinceDate: LocalDate?) throws -> StepResults {
        try SchemaCheck.requireSupported(connection)
        let found = try connection.query(
            """
            SELECT s.id, v.definition::text AS definition
            FROM seqd.sequences s
            JOIN seqd.sequence_versions v ON v.sequence_id = s.id
            WHERE s.name = $1 ORDER BY v.version DESC LIMIT 1
            """, [name])
        guard let row = found.rows.first else { throw StoreError(.notFound, "no sequence named '\(name)'") }
        let sequenceID: Int64 = try row.decode("id")
        let definition = try SequenceDefinition.decodeStored(Data(try row.decode("definition", as: String.self).utf8))
        let since = sinceDate.map { $0.start(in: definition.sequenceTimeZone) }
        let order = Dictionary(definition.steps.enumerated().map { ($1.key, $0) }) { first, _ in first }
        let lines = try connection.query(
            "SELECT * FROM seqd.step_results($1, COALESCE($2::timestamptz, '-infinity'))", [sequenceID, since]
        ).rows.map(Line.init(row:)).sorted {
            (order[$0.step] ?? Int.max, $0.step, $0.variant ?? "") < (order[$1.step] ?? Int.max, $1.step, $1.variant ?? "")
        }
        return StepResults(sequence: name, since: since, timeZone: definition.timeZone, lines: lines)
    }
}
