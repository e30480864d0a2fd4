import Foundation
import SeqdApplication
import SeqdConfig

/// The audit actor for commands run by a person: `cli:<login>`.
let cliActor = "cli:\(ProcessInfo.processInfo.environment["USER"] ?? "operator")"

extension SeqdConfiguration {
    /// The application's operations for one command, on one connection named after it
    /// (`application_name` "seqd <purpose>"), acting as the operator.
    func operations(_ purpose: String) -> Operations {
        let database = Database.dedicated(databaseURL, purpose: purpose)
        // The longest a send can stay in flight is its lease; the margin covers the settle.
        let inFlightWait = Duration.seconds(seconds("delivery.lease_timeout") + 5)
        return Operations(
            database: database, actor: Actor(name: cliActor, source: "cli"),
            inFlight: InFlightWaiter(database: database, timeout: inFlightWait, pollInterval: .milliseconds(50)))
    }
}
