import Crypto
import Foundation
import Postgres
import SequenceEngine

/// What applying one definition did.
public struct AppliedSequence: Sendable, Equatable, Codable {
    /// The sequence's name.
    public let name: String
    /// The latest version after the apply: the new one, or the unchanged current one.
    public let version: Int
    /// True when this apply stored a new version (false: the content was already the latest).
    public let created: Bool

    public init(name: String, version: Int, created: Bool) {
        self.name = name
        self.version = version
        self.created = created
    }
}

/// One row of `seqd sequence list`.
public struct SequenceSummary: Sendable, Equatable, Codable {
    public let name: String
    /// nil only for a sequence row without versions, which only a hand edit in psql can leave.
    public let latestVersion: Int?
    /// Enrollments that are active, paused or failed.
    public let live: Int
    /// Enrollments in a terminal status.
    public let finished: Int
    /// When the whole sequence was paused; nil while it runs.
    public let pausedAt: Date?

    enum CodingKeys: String, CodingKey {
        case name, live, finished
        case latestVersion = "latest_version"
        case pausedAt = "paused_at"
    }

}

/// One stored version of a sequence, for `seqd sequence show`.
public struct StoredSequenceVersion: Sendable {
    public let name: String
    public let version: Int
    public let latestVersion: Int
    public let definition: SequenceDefinition
    public let contentHash: String
    public let sourceFile: String?
    public let createdAt: Date
    public let createdBy: String
    public let pausedAt: Date?
}

/// Sequences and their immutable versions (design.md §5): apply, list, show.
public enum SequenceCatalog {
    /// SHA-256 hex of the canonical JSON: what `content_hash` holds, so "did the content change?"
    /// is one string comparison against the latest version.
    public static func contentHash(_ definition: SequenceDefinition) -> String {
        SHA256.hash(data: definition.canonicalJSON()).map { String(format: "%02x", $0) }.joined()
    }

    /// Stores every definition in one transaction: all of them or none. The definitions were
    /// validated by `SequenceDefinition.parse` (nothing else can build one), so storing cannot
    /// half-succeed on a bad file. `sourceFiles` (same order, optional) are kept on new versions.
    @discardableResult
    public static func apply(
        _ connection: Connection, _ definitions: [SequenceDefinition], sourceFiles: [String?] = []
    ) throws -> [AppliedSequence] {
        try SchemaCheck.requireSupported(connection)
        return try connection.transaction { connection in
            try definitions.enumerated().map { index, definition in
                try applyOne(
                    connection, definition, sourceFile: sourceFiles.indices.contains(index) ? sourceFiles[index] : nil)
            }
        }
    }

    /// The latest version was not the one the caller last saw (`If-Match`): nothing was applied.
    public struct VersionPreconditionFailed: Error, Sendable, CustomStringConvertible {
        public let name: String
        public let expected: Int
        /// nil when the sequence does not exist.
        public let latest: Int?
        public var description: String {
            "sequence '\(name)' is at version \(latest.map(String.init) ?? "none"), not \(expected): read it again before changing it"
        }
    }

    /// Applies one definition only if its latest stored version is `expectedLatest` (checked under
    /// the sequence's row lock, so two clients that both read version 3 cannot both replace it).
    public static func apply(
        _ connection: Connection, _ definition: SequenceDefinition, ifLatestVersion expectedLatest: Int
    ) throws -> AppliedSequence {
        try SchemaCheck.requireSupported(connection)
        return try connection.transaction { connection in
            try applyOne(connection, definition, sourceFile: nil, expectedLatest: expectedLatest)
        }
    }

    private static func applyOne(
        _ connection: Connection, _ definition: SequenceDefinition, sourceFile: String?, expectedLatest: Int? = nil
    ) throws -> AppliedSequence {
        // The sequence row is the lock that serialises applies of one name: two concurrent applies
        // of the same content then make one version, not two (the second sees the first's version
        // once it gets the lock, because READ COMMITTED takes a fresh snapshot per statement).
        let sequenceID = try lockedSequenceID(connection, name: definition.name)
        let latest = try connection.query(
            """
            SELECT version, content_hash FROM seqd.sequence_versions
            WHERE sequence_id = $1 ORDER BY version DESC LIMIT 1
            """, [sequenceID])
        let hash = contentHash(definition)
        if let expectedLatest {
            let current = latest.count == 1 ? try latest[0].decode("version", as: Int.self) : nil
            if current != expectedLatest {
                throw VersionPreconditionFailed(name: definition.name, expected: expectedLatest, latest: current)
            }
        }
        var next = 1
        if latest.count == 1 {
            let version = try latest[0].decode("version", as: Int.self)
            if try latest[0].decode("content_hash", as: String.self) == hash {
                return AppliedSequence(name: definition.name, version: version, created: false)
            }
            next = version + 1
        }
        try connection.query(
            """
            INSERT INTO seqd.sequence_versions (sequence_id, version, definition, content_hash, source_file)
            VALUES ($1, $2, $3::jsonb, $4, $5)
            """, [sequenceID, next, String(decoding: definition.canonicalJSON(), as: UTF8.self), hash, sourceFile])
        return AppliedSequence(name: definition.name, version: next, created: true)
    }

    /// The id of the named sequence, created if new, locked FOR UPDATE until the transaction ends.
    private static func lockedSequenceID(_ connection: Connection, name: String) throws -> Int64 {
        let select = "SELECT id FROM seqd.sequences WHERE name = $1 FOR UPDATE"
        if let row = try connection.query(select, [name]).rows.first { return try row.decode("id") }
        // A concurrent first apply of the same name makes this INSERT wait for it and then do
        // nothing; the SELECT after it then finds and locks that row.
        try connection.query("INSERT INTO seqd.sequences (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", [name])
        guard let row = try connection.query(select, [name]).rows.first else {
            throw StoreError(.notFound, "sequence '\(name)' disappeared while it was being applied")
        }
        return try row.decode("id")
    }

    /// Every sequence with its latest version and enrollment counts, by name.
    public static func list(_ connection: Connection) throws -> [SequenceSummary] {
        try SchemaCheck.requireSupported(connection)
        return try connection.query(
            """
            SELECT s.name, s.paused_at,
                   (SELECT max(v.version) FROM seqd.sequence_versions v WHERE v.sequence_id = s.id) AS latest,
                   count(e.id) FILTER (WHERE e.status IN ('active', 'paused', 'failed')) AS live,
                   count(e.id) FILTER (WHERE e.status NOT IN ('active', 'paused', 'failed')) AS finished
            FROM seqd.sequences s
            LEFT JOIN seqd.enrollments e ON e.sequence_id = s.id
            GROUP BY s.id
            ORDER BY s.name
            """
        ).rows.map {
            SequenceSummary(
                name: try $0.decode("name"), latestVersion: try $0.decode("latest", as: Int?.self),
                live: try $0.decode("live"), finished: try $0.decode("finished"),
                pausedAt: try $0.decode("paused_at", as: Date?.self))
        }
    }

    /// The named sequence's latest version, or `version` when given.
    public static func show(_ connection: Connection, name: String, version: Int? = nil) throws -> StoredSequenceVersion {
        try SchemaCheck.requireSupported(connection)
        let rows = try connection.query(
            """
            SELECT v.version, v.definition::text AS definition, v.content_hash, v.source_file, v.created_at,
                   v.created_by, s.paused_at,
                   (SELECT max(l.version) FROM seqd.sequence_versions l WHERE l.sequence_id = s.id) AS latest
            FROM seqd.sequences s
            LEFT JOIN seqd.sequence_versions v ON v.sequence_id = s.id
                AND v.version = COALESCE($2::int, (SELECT max(l.version) FROM seqd.sequence_versions l
                                                   WHERE l.sequence_id = s.id))
            WHERE s.name = $1
            """, [name, version])
        guard let row = rows.rows.first else { throw StoreError(.notFound, "no sequence named '\(name)'") }
        guard let found = try row.decode("version", as: Int?.self) else {
            let latest = try row.decode("latest", as: Int?.self)
            throw StoreError(
                .notFound,
                "sequence '\(name)' has no version \(version.map(String.init) ?? "")"
                    + (latest.map { " (versions 1–\($0))" } ?? " (it has no versions)"))
        }
        let json = try row.decode("definition", as: String.self)
        return StoredSequenceVersion(
            name: name, version: found, latestVersion: try row.decode("latest"),
            definition: try SequenceDefinition.decodeStored(Data(json.utf8)),
            contentHash: try row.decode("content_hash"), sourceFile: try row.decode("source_file", as: String?.self),
            createdAt: try row.decode("created_at"), createdBy: try row.decode("created_by"),
            pausedAt: try row.decode("paused_at", as: Date?.self))
    }
}
