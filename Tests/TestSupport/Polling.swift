import Foundation

/// Waits until `condition` holds, polling instead of sleeping a fixed time; fails after `timeout`.
public func waitUntil(
    timeout: Duration = .seconds(20), interval: Duration = .milliseconds(20),
    _ description: String = "condition", _ condition: () throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try !condition() {
        guard ContinuousClock.now < deadline else { throw TimedOut(description: "timed out waiting for \(description)") }
        try await Task.sleep(for: interval)
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}
