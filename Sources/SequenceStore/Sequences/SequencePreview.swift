import Foundation
import Postgres
import SequenceEngine

/// Everything needed to compose a sequence's emails for one contact without writing anything
/// (`seqd sequence preview`): the version that applies, the contact as templates see it, and the
/// installation values message identifiers derive from.
public struct SequencePreviewContext: Sendable {
    /// Why this version was chosen.
    public enum VersionChoice: Sendable, Equatable {
        /// Asked for with `--version`.
        case requested
        /// The version the contact's live enrollment is pinned to.
        case pinned(enrollmentID: Int64)
        /// The latest: the one a new enrollment gets.
        case latest
    }

    public let sequence: String
    public let version: Int
    public let versionChoice: VersionChoice
    public let definition: SequenceDefinition
    public let contactID: Int64
    public let contact: ContactFields
    /// The display name the daemon puts in `To` (first and last name).
    public let toName: String?
    /// The address is on the suppression list: nothing would be sent.
    public let suppressed: Bool
    /// Delivery keys of the emails the contact's live enrollment has sent, by step key: a
    /// threaded step replies to the real Message-ID of one of them.
    public let sentKeysByStep: [String: String]
    /// The installation's id and stored secrets.
    public let installation: InstallationSettings
    /// The database's clock: the `Date` header.
    public let now: Date

    /// `preview-<installation>-c<contact>-<step>`: shaped like a real delivery key
    /// (`<installation>-e<enrollment>-<step>`) but never equal to one, so a preview's Message-ID
    /// can never be taken for a sent message's.
    public func previewDeliveryKey(stepKey: String) -> String {
        "preview-\(installation.installationID)-c\(contactID)-\(stepKey)"
    }
}

/// Reads what a preview needs, in one read-only transaction.
public enum SequencePreview {
    /// - Parameters:
    ///   - version: a stored version; nil means the contact's pinned version, else the latest.
    /// Unknown sequence, version or contact: `StoreError(.notFound)` naming it.
    public static func load(
        _ connection: Connection, sequence name: String, contact email: String, version: Int?
    ) throws -> SequencePreviewContext {
        let installation = try InstallationSettings.load(connection)
        try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        defer { _ = try? connection.execute("ROLLBACK") }

        let versions = try connection.query(
            """
            SELECT s.id, array_to_string(array_agg(v.version ORDER BY v.version), ',') AS versions
            FROM seqd.sequences s LEFT JOIN seqd.sequence_versions v ON v.sequence_id = s.id
            WHERE s.name = $1 GROUP BY s.id
            """, [name])
        guard let sequenceRow = versions.rows.first else { throw StoreError(.notFound, "no sequence named '\(name)'") }
        let sequenceID = try sequenceRow.decode("id", as: Int64.self)
        let stored = (try sequenceRow.decode("versions", as: String?.self) ?? "").split(separator: ",").compactMap { Int($0) }

        let contactRows = try connection.query(
            """
            SELECT c.id, c.email, c.first_name, c.last_name, c.time_zone, c.attributes::text AS attributes,
                   NULLIF(concat_ws(' ', c.first_name, c.last_name), '') AS name, seqd.is_suppressed(c.email) AS suppressed,
                   e.id AS enrollment_id, e.sequence_version, e.event_properties::text AS event_properties,
                   (SELECT jsonb_object_agg(d.step_key, d.idempotency_key)::text FROM seqd.deliveries d
                    WHERE d.enrollment_id = e.id AND d.status = 'sent') AS sent_keys,
                   now() AS now
            FROM seqd.contacts c
            LEFT JOIN seqd.enrollments e ON e.contact_id = c.id AND e.sequence_id = $2
                 AND e.status IN ('active', 'paused', 'failed')
            WHERE lower(c.email) = lower($1)
            """, [email, sequenceID])
        guard let contactRow = contactRows.rows.first else { throw StoreError(.notFound, "no contact with address \(email)") }

        let enrollmentID = try contactRow.decode("enrollment_id", as: Int64?.self)
        let chosen: Int
        let choice: SequencePreviewContext.VersionChoice
        if let version {
            (chosen, choice) = (version, .requested)
        } else if let enrollmentID, let pinned = try contactRow.decode("sequence_version", as: Int?.self) {
            (chosen, choice) = (pinned, .pinned(enrollmentID: enrollmentID))
        } else if let latest = stored.last {
            (chosen, choice) = (latest, .latest)
        } else {
            throw StoreError(.notFound, "sequence '\(name)' has no versions")
        }
        guard stored.contains(chosen) else {
            throw StoreError(
                .notFound,
                "sequence '\(name)' has no version \(chosen)"
                    + (stored.isEmpty ? " (it has no versions)" : " (versions \(stored.first!)–\(stored.last!))"))
        }
        let definitionJSON = try connection.query(
            "SELECT definition::text AS d FROM seqd.sequence_versions WHERE sequence_id = $1 AND version = $2",
            [sequenceID, chosen])[0].decode("d", as: String.self)
        let sentKeys = try contactRow.decode("sent_keys", as: String?.self) ?? "{}"
        // A live enrollment renders with the properties of the event that started it.
        var contact = try Enroller.contactFields(contactRow)
        contact.event = EnrollmentRecord.textObject(try contactRow.decode("event_properties", as: String?.self))
        return SequencePreviewContext(
            sequence: name, version: chosen, versionChoice: choice,
            definition: try SequenceDefinition.decodeStored(Data(definitionJSON.utf8)),
            contactID: try contactRow.decode("id"), contact: contact,
            toName: try contactRow.decode("name", as: String?.self), suppressed: try contactRow.decode("suppressed"),
            sentKeysByStep: try JSONDecoder().decode([String: String].self, from: Data(sentKeys.utf8)),
            installation: installation,
            now: try contactRow.decode("now"))
    }
}
