import Foundation
import Postgres
import SequenceEngine

/// What `seqd simulate` starts from: the sequence's latest version, the contact's fields and the
/// database's clock (the daemon schedules by it, so the simulation does too).
public struct SimulationStart: Sendable {
    public let sequence: StoredSequenceVersion
    public let contact: ContactFields
    public let now: Date

    /// Unknown sequence or contact: `StoreError(.notFound)` naming it.
    public static func load(_ connection: Connection, sequence name: String, email: String) throws -> SimulationStart {
        let stored = try SequenceCatalog.show(connection, name: name)
        guard let contact = try ContactStore.find(connection, email: email) else {
            throw StoreError(.notFound, "no contact with address \(email)")
        }
        let now = try connection.query("SELECT now() AS now")[0].decode("now", as: Date.self)
        return SimulationStart(sequence: stored, contact: contact, now: now)
    }
}
