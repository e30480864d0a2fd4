import Foundation
import Mail

@testable import Delivery

/// Runs the blocking `send` on a thread of its own, as the daemon does, so the tests never block
/// the Swift concurrency pool (two threads on these machines) while libcurl waits.
func sendOffPool(_ transport: any MailTransport, _ message: ComposedMessage) async -> TransportOutcome {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: transport.send(message)) }.start()
    }
}

extension TransportOutcome {
    /// The class alone, for tests that do not care about the exact wording.
    var kind: String {
        switch self {
        case .sent: "sent"
        case .temporaryFailure: "temporary"
        case .permanentFailure(_, let isBounce): isBounce ? "bounce" : "permanent"
        case .transportFault: "fault"
        case .ambiguous: "ambiguous"
        case .throttled: "throttled"
        }
    }

    var reason: String {
        switch self {
        case .sent(let providerID): providerID ?? ""
        case .temporaryFailure(let reason, _), .permanentFailure(let reason, _), .transportFault(let reason),
             .ambiguous(let reason), .throttled(let reason, _):
            reason
        }
    }
}

/// A fresh directory under the system temporary directory; the caller removes it.
func makeTemporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("seqd-delivery-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
