import Foundation

/// Small edits of connection strings that tests and tools need, without parsing them fully.
public enum ConnectionString {
    /// The same server and credentials, pointed at `database`. Works for URIs
    /// (`postgresql://user@host/db?opts`) and key=value strings (a later `dbname=` wins in libpq).
    public static func replacingDatabase(in connectionString: String, with database: String) -> String {
        for scheme in ["postgresql://", "postgres://"] where connectionString.hasPrefix(scheme) {
            let rest = connectionString.dropFirst(scheme.count)
            let queryStart = rest.firstIndex(of: "?") ?? rest.endIndex
            let authority = rest[..<queryStart].split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)[0]
            return scheme + authority + "/" + database + rest[queryStart...]
        }
        return connectionString + " dbname='\(database.replacingOccurrences(of: "'", with: "\\'"))'"
    }
}
