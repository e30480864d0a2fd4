import CLibPQ

/// The rows of one statement, read lazily from the `PGresult` it owns and frees exactly once.
///
/// Not `Sendable`: decode rows on the connection's own thread (inside `ConfinedConnection.run`) and
/// hand plain Swift values across.
public final class QueryResult {
    private let handle: OpaquePointer
    /// Number of rows returned.
    public let count: Int
    /// Rows affected by INSERT/UPDATE/DELETE, 0 otherwise.
    public let affectedRows: Int
    private let columnIndexes: [String: Int32]

    init(_ handle: OpaquePointer) {
        self.handle = handle
        self.count = Int(PQntuples(handle))
        self.affectedRows = Int(String(cString: PQcmdTuples(handle))) ?? 0
        var indexes = [String: Int32]()
        for column in 0..<PQnfields(handle) {
            indexes[String(cString: PQfname(handle, column))] = column
        }
        self.columnIndexes = indexes
    }

    deinit { PQclear(handle) }

    /// Column names in result order.
    public var columns: [String] {
        (0..<PQnfields(handle)).map { String(cString: PQfname(handle, $0)) }
    }

    /// The row at `index` (0-based).
    public subscript(index: Int) -> Row { Row(result: self, index: Int32(index)) }

    /// All rows, in order.
    public var rows: [Row] { (0..<count).map { self[$0] } }

    fileprivate func text(row: Int32, column: String) throws -> String? {
        guard let columnIndex = columnIndexes[column] else {
            throw PostgresError(kind: .decoding, message: "the result has no column \"\(column)\"", column: column)
        }
        return text(row: row, columnIndex: columnIndex)
    }

    fileprivate func text(row: Int32, columnIndex: Int32) -> String? {
        if PQgetisnull(handle, row, columnIndex) == 1 { return nil }
        return String(cString: PQgetvalue(handle, row, columnIndex))
    }
}

/// One row of a `QueryResult`; typed access names the column in every error.
public struct Row {
    fileprivate let result: QueryResult
    fileprivate let index: Int32

    /// The column's value, failing with a decoding error that names the column when it is NULL
    /// or not a valid `T`.
    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let value = try decode(column, as: Optional<T>.self) else {
            throw PostgresError(
                kind: .decoding, message: "column \"\(column)\" is NULL, expected \(T.self)", column: column)
        }
        return value
    }

    /// The column's value, or nil when it is NULL; fails naming the column when the text is not a `T`.
    public func decode<T: PostgresDecodable>(_ column: String, as type: T?.Type) throws -> T? {
        guard let text = try result.text(row: index, column: column) else { return nil }
        guard let value = T(postgresText: text) else {
            throw PostgresError(
                kind: .decoding, message: "column \"\(column)\" does not hold a valid \(T.self)", column: column)
        }
        return value
    }

    /// The raw text of the column (nil for NULL), for printing.
    public func text(_ column: String) throws -> String? { try result.text(row: index, column: column) }
}
