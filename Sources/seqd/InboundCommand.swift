import ArgumentParser
import Delivery
import Foundation
import Mail
import SeqdApplication
import SeqdConfig
import SequenceEngine
import SequenceStore

/// `seqd inbound [FILE]`: one raw inbound email (a reply, a bounce, an auto-reply), from a file or
/// from stdin for an MTA pipe, classified, matched and applied through the state machine.
struct InboundCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inbound",
        abstract: "Apply an inbound email (reply, bounce report, auto-reply) read from FILE or stdin.",
        discussion: """
            Matches the message by In-Reply-To/References (or, for a delivery status report, the returned \
            original's Message-ID) to seqd's deliveries, only where the MAC in the Message-ID verifies. With \
            inbound.trust_from it falls back to the sender's address and the sequence's sender address, only \
            when an Authentication-Results header from inbound.authserv_id shows DMARC (or aligned DKIM/SPF) \
            pass for the From domain. A report with a 5.x.x status bounces the recipient of the matched \
            delivery when a Final-Recipient names it; 4.x.x reports are ignored; \
            auto-replies pause until the stated return date or for inbound.ooo_resume_after; anything else \
            is a reply.

            Exit codes: 0 applied, or deliberately ignored (a delayed-delivery report, a read receipt); \
            1 nothing matched, or the matched enrollments refused (e.g. already finished); 65 malformed \
            message; 66 FILE missing; 69 database unreachable.

            Example (an MTA pipe):
              seqd inbound < message.eml
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("The raw RFC 5322 message; stdin when omitted.", valueName: "file"))
    var file: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        // Bytes in one array the parser indexes in place: a Data handed to it would be copied,
        // doubling what a large message costs (issue 16 bounds parsing at 4x the message).
        let bytes: [UInt8]
        if let file {
            bytes = try { [UInt8](try CommandInput.read(file)) }()
        } else {
            bytes = await readStandardInput(limit: InboundMessage.maxSize + 1)
        }
        let message: InboundMessage
        do {
            message = try InboundMessage.parse(bytes)
        } catch {
            throw CommandFailure(status: .dataError, message: "\(file ?? "stdin"): \(error)")
        }
        let configuration = try await global.loadConfiguration()
        let resumeAfter = TimeInterval(configuration.seconds("inbound.ooo_resume_after"))
        let authservID = try configuration.trustedAuthservID()
        // Changes made by inbound mail are the mail's, not the operator's who piped it in.
        let operations = configuration.operations("inbound").acting(as: Actor(name: "inbound", source: "cli"))
        defer { operations.database.close() }
        let trust = try await operations.inboundTrust(configuredSecret: configuration.string("unsubscribe.secret"), authservID: authservID)
        let outcome = try await operations.inbound({ message }, trust: trust, oooResumeAfter: resumeAfter)
        let (result, settled) = (outcome.result, outcome.inFlightSettled)
        if json { try printJSON(result) } else { print(Self.render(result, inFlightSettled: settled)) }
        if result.outcome == .unmatched || result.outcome == .refused { throw ExitCode(ExitStatus.refused.rawValue) }
    }

    static func render(_ result: InboundResult, inFlightSettled: Bool) -> String {
        var lines = ["classification: \(result.classification)\(result.detail.map { " (\($0))" } ?? "")"]
        if let returnDate = result.returnDate { lines.append("return date: \(returnDate)") }
        if let matchedBy = result.matchedBy { lines.append("matched by: \(matchedBy)") }
        for enrollment in result.enrollments {
            var line = "enrollment \(enrollment.id) (\(enrollment.sequence)): "
            if let refused = enrollment.refused {
                line += "refused: \(refused)"
            } else {
                line += "\(enrollment.from) → \(enrollment.to ?? "?")"
                if enrollment.to == "paused", let resumeAt = result.resumeAt { line += ", resumes at \(RFC3339.format(resumeAt))" }
                if let note = enrollment.note { line += " (\(note))" }
            }
            lines.append(line)
        }
        let changed = result.enrollments.filter { $0.refused == nil }.count
        switch result.outcome {
        case .applied:
            var summary = "applied: \(changed) enrollment(s) changed"
            if result.suppressed > 0 { summary += ", \(result.suppressed) address(es) suppressed" }
            lines.append(summary)
        case .ignored:
            lines.append("ignored: nothing changed (\(result.note ?? "deliberately; this is not a reply"))")
        case .unmatched:
            lines.append("unmatched: \(result.note ?? "nothing matched"); nothing changed")
        case .refused:
            lines.append("refused: \(result.note ?? "nothing changed")")
        }
        if result.ignoredRecipients > 0 {
            lines.append("ignored: \(result.ignoredRecipients) other recipient(s) the report lists (not the recipient of the matched delivery)")
        }
        if !inFlightSettled { lines.append("warning: a send of these contacts was still in flight when the wait timed out") }
        return lines.joined(separator: "\n")
    }
}

/// Reads stdin to its end (at most `limit` bytes) on a thread of its own: a blocking `read` must
/// not hold a thread of the concurrency pool while an MTA trickles the message in.
private func readStandardInput(limit: Int) async -> [UInt8] {
    await withCheckedContinuation { continuation in
        Thread {
            var bytes = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while bytes.count < limit {
                let count = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, min($0.count, limit - bytes.count)) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                bytes.append(contentsOf: chunk[0..<count])
            }
            continuation.resume(returning: bytes)
        }.start()
    }
}
