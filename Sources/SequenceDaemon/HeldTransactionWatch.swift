import Foundation
import Logging
import Postgres
import SequenceStore

/// Looks for a transaction another session holds open (`HeldTransaction`) from the maintenance
/// loop, every few seconds: warns when one passes the threshold (again each minute while it
/// lasts, with its age) and says when it ended, so the log explains a slow stretch.
///
/// Not thread-safe: owned by the maintenance loop.
final class HeldTransactionWatch {
    private let threshold: TimeInterval
    private let logger: Logger
    private var nextCheck: UInt64 = 0
    private var warned: (pid: Int, at: UInt64)?

    /// Seconds between checks: often enough to notice within a few seconds, rare enough to cost nothing.
    private static let checkEvery: UInt64 = 5_000_000_000
    private static let repeatEvery: UInt64 = 60_000_000_000

    init(threshold: TimeInterval, logger: Logger) {
        self.threshold = threshold
        self.logger = logger
    }

    func check(_ connection: Connection) throws {
        let now = DispatchTime.now().uptimeNanoseconds
        guard threshold > 0, now >= nextCheck else { return }
        nextCheck = now + Self.checkEvery
        let held = try HeldTransaction.oldest(connection, olderThan: threshold)
        switch (held, warned) {
        case (let held?, let previous):
            if previous?.pid != held.pid || now - previous!.at >= Self.repeatEvery {
                logger.warning(
                    "\(held.warning)",
                    metadata: ["blocking_pid": "\(held.pid)", "transaction_age_s": "\(Int(held.ageSeconds))"])
                warned = (held.pid, now)
            }
        case (nil, let previous?):
            logger.notice("the long transaction of backend pid \(previous.pid) has ended")
            warned = nil
        case (nil, nil):
            break
        }
    }
}
