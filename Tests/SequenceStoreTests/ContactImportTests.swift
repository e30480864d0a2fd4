import Foundation
import Postgres
import SequenceEngine
import SequenceStore
import Testing
import TestSupport

/// Contact upserts and CSV imports against a real database.
@Suite("contacts: upsert and import")
struct ContactImportTests {
    let connection: Connection

    init() async throws {
        connection = try Connection(try await TestDatabase.shared.makeMigratedDatabase(prefix: "contacts"))
    }

    func csv(_ text: String) throws -> ContactCSV {
        try ContactCSV.parse(Data(text.utf8), fileName: "contacts.csv")
    }

    func contacts() throws -> [(email: String, first: String?, last: String?, zone: String?, attributes: String)] {
        try connection.query(
            "SELECT email, first_name, last_name, time_zone, attributes::text AS a FROM seqd.contacts ORDER BY lower(email)"
        ).rows.map {
            (try $0.decode("email"), try $0.decode("first_name", as: String?.self),
             try $0.decode("last_name", as: String?.self), try $0.decode("time_zone", as: String?.self),
             try $0.decode("a"))
        }
    }

    @Test("an address is one contact whatever its case; blanks keep stored values; attributes merge")
    func upsertByEmail() throws {
        var first = try ContactStore.upsert(
            connection,
            [ContactFields(email: "Ada@Example.com", firstName: "Ada", timeZone: "Europe/London", attributes: ["plan": "pro"])])
        #expect(first.created == 1 && first.total == 1)

        first = try ContactStore.upsert(
            connection, [ContactFields(email: "ada@example.COM", lastName: "Lovelace", attributes: ["company": "AE"])])
        #expect(first.created == 0 && first.updated == 1)
        let stored = try contacts()
        #expect(stored.count == 1)
        #expect(stored[0].email == "ada@example.COM")
        #expect(stored[0].first == "Ada" && stored[0].last == "Lovelace" && stored[0].zone == "Europe/London")
        #expect(stored[0].attributes == #"{"plan": "pro", "company": "AE"}"#)

        // The same data again writes nothing.
        let before = try connection.query("SELECT xmin::text AS x FROM seqd.contacts")[0].decode("x", as: String.self)
        let again = try ContactStore.upsert(
            connection, [ContactFields(email: "ada@example.COM", lastName: "Lovelace", attributes: ["company": "AE"])])
        #expect(again.unchanged == 1 && again.updated == 0 && again.created == 0)
        #expect(try connection.query("SELECT xmin::text AS x FROM seqd.contacts")[0].decode("x", as: String.self) == before)

        let invalid = #expect(throws: StoreError.self) {
            try ContactStore.upsert(connection, [ContactFields(email: "not-an-address")])
        }
        #expect(invalid?.kind == .badInput)
        #expect(throws: StoreError.self) {
            try ContactStore.upsert(connection, [ContactFields(email: "z@example.com", timeZone: "GMT+5")])
        }
    }

    @Test("bad rows are reported with their line numbers and the good rows are imported")
    func badRows() throws {
        let file = try csv(
            """
            email,first_name,time_zone,plan
            ada@example.com,Ada,Europe/London,pro
            not-an-address,Bob,,free
            cy@example.com,Cy,Mars/Olympus,free
            "dee@example.com","Dee
            Two Lines",,team
            eve@example.com,Eve
            ADA@example.com,Ada L.,,
            """)
        #expect(file.rejected.map(\.line) == [3, 4, 7])
        #expect(file.rejected[1].reason.contains("Mars/Olympus"))
        let summary = try ContactStore.importFile(connection, file, strict: false)
        #expect(summary.created == 2 && summary.total == 2)
        let stored = try contacts()
        #expect(stored.map(\.email) == ["ADA@example.com", "dee@example.com"])
        // Inside one file the later row for an address wins.
        #expect(stored[0].first == "Ada L." && stored[0].attributes == "{}")
        #expect(stored[1].first == "Dee\nTwo Lines" && stored[1].attributes == #"{"plan": "team"}"#)
    }

    @Test("strict mode stores nothing when any row is bad")
    func strict() throws {
        let file = try csv("email\nada@example.com\nbad\n")
        #expect(file.rejected.map(\.line) == [3])
        let summary = try ContactStore.importFile(connection, file, strict: true)
        #expect(summary.total == 0)
        #expect(try contacts().isEmpty)
        let clean = try ContactStore.importFile(connection, try csv("email\nada@example.com\n"), strict: true)
        #expect(clean.created == 1)
    }

    @Test("imports larger than a batch are counted exactly and report progress per batch")
    func batches() throws {
        let many = (0..<2_500).map { ContactFields(email: "user\($0)@example.com", attributes: ["n": String($0)]) }
        var reported = [Int]()
        let first = try ContactStore.upsert(connection, many) { reported.append($0) }
        #expect(first.created == 2_500)
        #expect(reported == [1_000, 2_000, 2_500])
        var changed = many
        changed[0].firstName = "Zero"
        changed[2_499].firstName = "Last"
        let second = try ContactStore.upsert(connection, changed)
        #expect(second.created == 0 && second.updated == 2 && second.unchanged == 2_498)
        #expect(try connection.query("SELECT count(*) AS n FROM seqd.contacts")[0].decode("n", as: Int.self) == 2_500)
    }
}
