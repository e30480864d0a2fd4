import Foundation
import Postgres
import SequenceEngine

/// Sequence versions never change once stored, so each worker decodes each version once and keeps
/// it. Confined to the worker's thread like its connection.
final class DefinitionCache {
    private var definitions = [VersionKey: SequenceDefinition]()

    struct VersionKey: Hashable {
        let sequenceID: Int64
        let version: Int
    }

    /// The definitions for `keys`, loading the missing ones in one query.
    func definitions(for keys: Set<VersionKey>, using connection: Connection) throws -> [VersionKey: SequenceDefinition] {
        let missing = keys.filter { definitions[$0] == nil }
        if !missing.isEmpty {
            let rows = try connection.query(
                """
                SELECT v.sequence_id, v.version, v.definition::text AS definition
                FROM seqd.sequence_versions v
                JOIN unnest($1::bigint[], $2::int[]) AS k(sequence_id, version)
                  ON k.sequence_id = v.sequence_id AND k.version = v.version
                """, [missing.map(\.sequenceID), missing.map(\.version)])
            for row in rows.rows {
                let key = VersionKey(sequenceID: try row.decode("sequence_id"), version: try row.decode("version"))
                let json = try row.decode("definition", as: String.self)
                definitions[key] = try SequenceDefinition.decodeStored(Data(json.utf8))
            }
        }
        return definitions.filter { keys.contains($0.key) }
    }

    func definition(sequenceID: Int64, version: Int, using connection: Connection) throws -> SequenceDefinition {
        let key = VersionKey(sequenceID: sequenceID, version: version)
        guard let definition = try definitions(for: [key], using: connection)[key] else {
            throw StoreError(.notFound, "sequence \(sequenceID) has no version \(version)")
        }
        return definition
    }
}
