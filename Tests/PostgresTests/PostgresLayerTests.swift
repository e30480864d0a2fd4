import Foundation
import Postgres
import Synchronization
import Testing
import TestSupport

@Suite("libpq layer against a real server")
struct PostgresLayerTests {
    let url: String

    init() async throws {
        url = try await TestDatabase.shared.makeEmptyDatabase(prefix: "pglayer")
    }

    @Test("parameters round-trip: NULL, Unicode, 1 MB text, arrays, timestamps, bytea")
    func parametersRoundTrip() throws {
        let connection = try Connection(url)
        let unicode = "Zoë — 東京 🚀 \"quoted\" \\ backslash"
        let large = String(repeating: "x", count: 1_048_576) + "end"
        let now = Date(timeIntervalSince1970: 1_764_470_585.123456)
        let row = try connection.query(
            """
            SELECT $1::text AS null_text, $2::text AS unicode, length($3::text) AS large_length, $3::text AS large,
                   $4::text[] AS texts, cardinality($4::text[]) AS text_count, $5::bigint[] AS numbers,
                   $6::timestamptz AS at, $7::bytea AS bytes, $8::boolean AS flag
            """,
            [
                String?.none, unicode, large, ["a,b", "quote\"d", "back\\slash", "{brace}", "NULL", unicode, "\"\\\"\\"],
                [Int64(1), Int64(-2), Int64.max], now, Data([0, 1, 254, 255]), true,
            ])[0]
        #expect(try row.decode("null_text", as: String?.self) == nil)
        #expect(try row.decode("unicode", as: String.self) == unicode)
        #expect(try row.decode("large_length", as: Int.self) == large.count)
        #expect(try row.decode("large", as: String.self) == large)
        #expect(try row.decode("text_count", as: Int.self) == 7)
        let elements = try connection.query(
            "SELECT unnest($1::text[]) AS element", [["a,b", "quote\"d", "back\\slash", "{brace}", "NULL", unicode, "\"\\\"\\"]]
        ).rows.map { try $0.decode("element", as: String.self) }
        #expect(elements == ["a,b", "quote\"d", "back\\slash", "{brace}", "NULL", unicode, "\"\\\"\\"])
        #expect(try row.text("numbers") == "{1,-2,9223372036854775807}")
        let at = try row.decode("at", as: Date.self)
        #expect(abs(at.timeIntervalSince(now)) < 0.000_01)
        #expect(try row.decode("bytes", as: Data.self) == Data([0, 1, 254, 255]))
        #expect(try row.decode("flag", as: Bool.self))
    }

    @Test("an array with NULL elements binds them as NULL, not as text")
    func arrayNulls() throws {
        let connection = try Connection(url)
        let row = try connection.query(
            "SELECT count(*) FILTER (WHERE x IS NULL) AS nulls FROM unnest($1::text[]) AS x", [["a", nil, "c"] as [String?]]
        )[0]
        #expect(try row.decode("nulls", as: Int.self) == 1)
    }

    @Test("a unique violation surfaces as SQLSTATE 23505 with the constraint name")
    func uniqueViolation() throws {
        let connection = try Connection(url)
        try connection.execute("CREATE TABLE people (email text CONSTRAINT people_email_key UNIQUE)")
        try connection.query("INSERT INTO people VALUES ($1)", ["a@example.com"])
        let error = #expect(throws: PostgresError.self) {
            try connection.query("INSERT INTO people VALUES ($1)", ["a@example.com"])
        }
        #expect(error?.sqlState == "23505")
        #expect(error?.isUniqueViolation == true)
        #expect(error?.constraint == "people_email_key")
        #expect(error?.kind == .server)
        #expect(error?.detail?.contains("already exists") == true)
        // The connection stays usable after a server error.
        #expect(try connection.query("SELECT 1 AS one")[0].decode("one", as: Int.self) == 1)
    }

    @Test("a throwing transaction body leaves no rows")
    func transactionRollsBack() throws {
        struct Boom: Error {}
        let connection = try Connection(url)
        try connection.execute("CREATE TABLE ledger (n int)")
        #expect(throws: Boom.self) {
            try connection.transaction { connection in
                try connection.query("INSERT INTO ledger VALUES ($1)", [1])
                throw Boom()
            }
        }
        try connection.transaction { _ = try $0.query("INSERT INTO ledger VALUES ($1)", [2]) }
        let values = try connection.query("SELECT n FROM ledger").rows.map { try $0.decode("n", as: Int.self) }
        #expect(values == [2])
    }

    @Test("typed access names the column when it is missing, NULL or of another type")
    func decodingErrorsNameTheColumn() throws {
        let connection = try Connection(url)
        let row = try connection.query("SELECT 'abc'::text AS word, NULL::int AS nothing")[0]
        let wrongType = #expect(throws: PostgresError.self) { try row.decode("word", as: Int.self) }
        #expect(wrongType?.column == "word")
        #expect(wrongType?.kind == .decoding)
        let null = #expect(throws: PostgresError.self) { try row.decode("nothing", as: Int.self) }
        #expect(null?.description.contains("\"nothing\" is NULL") == true)
        let missing = #expect(throws: PostgresError.self) { try row.decode("absent", as: Int.self) }
        #expect(missing?.column == "absent")
    }

    @Test("prepared statements run repeatedly and are prepared again on a new connection")
    func preparedStatements() async throws {
        let statement = PreparedStatement(name: "double_it", sql: "SELECT $1::int * 2 AS doubled")
        let confined = ConfinedConnection(url)
        for value in 1...3 {
            let doubled = try await confined.run { try $0.query(statement, [value])[0].decode("doubled", as: Int.self) }
            #expect(doubled == value * 2)
        }
        let pid = try await confined.run { $0.backendPID }
        let admin = try Connection(url)
        try admin.query("SELECT pg_terminate_backend($1)", [Int(pid)])
        await #expect(throws: PostgresError.self) { try await confined.run { _ = try $0.query(statement, [1]) } }
        // The next call reconnects and prepares the statement on the new session.
        let again = try await confined.run { try $0.query(statement, [21])[0].decode("doubled", as: Int.self) }
        #expect(again == 42)
    }

    @Test("a killed backend surfaces as a connection error, not a crash")
    func terminatedBackend() throws {
        let victim = try Connection(url)
        let admin = try Connection(url)
        try admin.query("SELECT pg_terminate_backend($1)", [Int(victim.backendPID)])
        let error = #expect(throws: PostgresError.self) { try victim.query("SELECT 1") }
        #expect(error?.isConnectionError == true)
        #expect(victim.isHealthy == false)
    }

    @Test("a long query is cancelled on request")
    func cancellation() async throws {
        let confined = ConfinedConnection(url)
        try await confined.run { _ = try $0.query("SELECT 1") }  // connect first
        let started = ContinuousClock.now
        let sleeper = Task { try await confined.run { _ = try $0.query("SELECT pg_sleep(30)") } }
        try await waitUntil { try Connection(url).query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"
        )[0].decode("n", as: Int.self) == 1 }
        confined.cancel()
        let error = await #expect(throws: PostgresError.self) { try await sleeper.value }
        #expect(error?.isQueryCanceled == true)
        #expect(ContinuousClock.now - started < .seconds(20))
        // Cancelling a statement leaves the connection usable.
        #expect(try await confined.run { try $0.query("SELECT 7 AS n")[0].decode("n", as: Int.self) } == 7)
    }

    @Test("a stop between two statements is not lost: the next one is refused, the transaction rolls back, the next run reconnects")
    func stopBetweenStatements() async throws {
        try Connection(url).execute("CREATE TABLE IF NOT EXISTS stop_probe (n int)")
        let confined = ConfinedConnection(url)
        let firstPID = try await confined.run { $0.backendPID }
        let outcome = try await confined.run { connection -> String in
            do {
                try connection.transaction { connection in
                    try connection.query("INSERT INTO stop_probe VALUES (1)")
                    // Shutdown arrives while this thread is busy between statements.
                    let stopper = Thread { confined.cancel() }
                    stopper.start()
                    while !connection.isStopped { Thread.sleep(forTimeInterval: 0.001) }
                    try connection.query("INSERT INTO stop_probe VALUES (2)")
                }
                return "committed"
            } catch let error as PostgresError {
                return error.isQueryCanceled ? "cancelled" : "\(error)"
            }
        }
        #expect(outcome == "cancelled")
        #expect(try Connection(url).query("SELECT count(*) AS n FROM stop_probe")[0].decode("n", as: Int.self) == 0)
        let secondPID = try await confined.run { $0.backendPID }
        #expect(secondPID != firstPID, "a stopped connection must be replaced")
    }

    @Test("statement timeouts apply from the session options")
    func statementTimeout() throws {
        let connection = try Connection(url, options: SessionOptions(statementTimeoutMilliseconds: 100))
        let error = #expect(throws: PostgresError.self) { try connection.query("SELECT pg_sleep(5)") }
        #expect(error?.isQueryCanceled == true)
    }

    @Test("sessions never JIT-compile: a statement whose estimate crosses jit_above_cost runs without it")
    func noJIT() throws {
        let connection = try Connection(url)
        #expect(try connection.query("SHOW jit")[0].decode("jit", as: String.self) == "off")
        try connection.execute("SET jit_above_cost = 0")
        let plan = try connection.query("EXPLAIN (ANALYZE) SELECT sum(g) FROM generate_series(1, 1000) g").rows
            .map { try $0.decode("QUERY PLAN", as: String.self) }.joined(separator: "\n")
        #expect(!plan.contains("JIT"), "\(plan)")
    }

    @Test("LISTEN receives a NOTIFY sent by another session, with its payload")
    func listenNotify() async throws {
        let received = Mutex<[PostgresNotification]>([])
        let listener = try NotificationListener(connectionString: url, channels: ["seqd_test"]) { event in
            if case .notification(let notification) = event { received.withLock { $0.append(notification) } }
        }
        defer { listener.stop() }
        let sender = try Connection(url)
        try sender.query("SELECT pg_notify('seqd_test', $1)", ["wake up"])
        try await waitUntil { received.withLock { $0.count } == 1 }
        #expect(received.withLock { $0 } == [PostgresNotification(channel: "seqd_test", payload: "wake up")])
    }

    @Test("a listener whose session is killed reports the lost connection")
    func listenerConnectionLost() async throws {
        let lost = Mutex(false)
        let listener = try NotificationListener(connectionString: url, channels: ["seqd_test"]) { event in
            if case .connectionLost = event { lost.withLock { $0 = true } }
        }
        defer { listener.stop() }
        let admin = try Connection(url)
        try admin.query("SELECT pg_terminate_backend($1)", [Int(listener.backendPID)])
        try await waitUntil { lost.withLock { $0 } }
    }

    @Test("a bad connection string fails with libpq's reason")
    func connectionFailure() {
        let error = #expect(throws: PostgresError.self) {
            try Connection("postgresql://nobody@/nodb?host=/nonexistent-socket-dir")
        }
        #expect(error?.kind == .connectionFailed)
        #expect(error?.message.contains("nonexistent-socket-dir") == true)
    }
}
