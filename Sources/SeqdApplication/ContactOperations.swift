import Postgres
import SequenceEngine
import SequenceStore

/// Contacts: upsert, import, look up, export and erase.
extension Operations {
    /// Creates or updates one contact; returns what happened (with the goals it met) and its id.
    public func upsertContact(_ contact: ContactFields) async throws -> (summary: ContactUpsertSummary, id: Int64?) {
        let actor = actor.name
        return try await database.run { connection in
            let summary = try ContactStore.upsert(connection, [contact], actor: actor)
            return (summary, try ContactEnrollments.contactID(connection, email: contact.email))
        }
    }

    /// Imports a parsed file's valid contacts in one transaction, or with `strict` nothing when any
    /// row was rejected. `progress` gets the number written so far.
    public func importContacts(
        _ csv: ContactCSV, strict: Bool, progress: @escaping @Sendable (Int) -> Void
    ) async throws -> ContactUpsertSummary {
        let actor = actor.name
        return try await database.run { try ContactStore.importFile($0, csv, strict: strict, actor: actor, progress: progress) }
    }

    /// A contact's enrollments with state and history (`seqd inspect`). Unknown: `.notFound`.
    public func inspect(email: String) async throws -> Inspection {
        try await database.run { try Inspection.load($0, email: email) }
    }

    /// The same, by contact id (the API's paths carry ids, never addresses).
    public func inspect(contactID: Int64) async throws -> Inspection {
        try await database.run { try ContactEnrollments.load($0, contactID: contactID) }
    }

    /// Everything stored about a contact, as JSON text (GDPR access).
    public func exportContact(email: String) async throws -> String {
        try await database.run { try ContactPrivacy.export($0, email: email) }
    }

    /// The same, by contact id. Unknown id: `.notFound`.
    public func exportContact(id: Int64) async throws -> String {
        try await database.run { connection in
            try ContactPrivacy.export(connection, email: try Self.address(connection, contactID: id))
        }
    }

    /// Ends the contact's enrollments, removes its personal data, keeps a hashed suppression.
    /// Returns the erased contact's id. Erasing an erased contact changes nothing.
    public func eraseContact(email: String) async throws -> Int64 {
        try await erase { _ in email }
    }

    /// The same, by contact id. Unknown id: `.notFound`; an erased one: nothing changes.
    public func eraseContact(id: Int64) async throws {
        _ = try await erase { try Self.address($0, contactID: id, includingErased: true) }
    }

    private func erase(_ address: @escaping @Sendable (Connection) throws -> String) async throws -> Int64 {
        let actor = actor.name
        return try await database.run { connection in
            try ContactPrivacy(actor: actor, installationID: try InstallationSettings.load(connection).installationID)
                .erase(connection, email: try address(connection))
        }
    }

    private static func address(_ connection: Connection, contactID: Int64, includingErased: Bool = false) throws -> String {
        guard let email = try ContactEnrollments.address(connection, contactID: contactID, includingErased: includingErased) else {
            throw StoreError(.notFound, "no contact with id \(contactID)")
        }
        return email
    }

    /// Lifts a suppression; returns how many were removed (0: the address was not suppressed).
    public func removeSuppression(address: String, reason: String) async throws -> Int {
        let actor = actor.name
        return try await database.run { try SuppressionRemoval.remove($0, address: address, reason: reason, actor: actor) }
    }
}
