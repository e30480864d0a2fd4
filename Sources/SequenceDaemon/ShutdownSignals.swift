import Dispatch
import Foundation

/// SIGTERM and SIGINT as Dispatch sources on a private queue: the default handlers are replaced
/// so the daemon can stop claiming, finish what is in flight and exit 0.
public final class ShutdownSignals: @unchecked Sendable {
    // Safe to share: `sources` is written once in init and cancelled on `queue`.
    private let queue = DispatchQueue(label: "seqd.signals")
    private var sources: [any DispatchSourceSignal] = []

    public init(onSignal: @escaping @Sendable (Int32) -> Void) {
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler { onSignal(signalNumber) }
            source.resume()
            sources.append(source)
        }
    }

    public func cancel() {
        queue.sync { sources.forEach { $0.cancel() } }
    }
}
