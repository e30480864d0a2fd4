import Foundation
import Postgres
import SequenceEngine

/// `sender.daily_limit`, enforced across every worker and replica by the database: a counter row
/// per sender address and day (the day in the sequence's zone, from the database clock) holds the
/// slots reserved so far. An advance batch asks once per sender for as many slots as it has
/// emails for that sender and is granted up to what is left; emails without a slot are deferred
/// by the machine to the sender's next day. The reservation commits or rolls back with the batch,
/// so the count never runs ahead of the deliveries actually queued.
///
/// The counter row stays locked from the reservation to the batch's commit, so the Advancer
/// reserves after its writes while the day has room (see `Advancer.advance`); and a row already
/// at its limit is only read, never locked, so a full day costs other batches nothing.
enum SenderLimits {
    /// One sender's slots for one day, under one sequence's limit (sequences that share a sender
    /// share the counter, each capped by its own limit).
    struct Demand: Hashable, Comparable {
        let sender: String
        let day: LocalDate
        let limit: Int

        static func < (lhs: Demand, rhs: Demand) -> Bool {
            (lhs.sender, lhs.day, lhs.limit) < (rhs.sender, rhs.day, rhs.limit)
        }
    }

    /// Grants `LEAST(wanted, limit - reserved)` and returns it (`last_grant`, since RETURNING
    /// cannot see the row's old value). When the snapshot already shows the day full, nothing is
    /// inserted, so there is no conflict, no lock and no row: zero granted.
    static let reserve = PreparedStatement(
        name: "sender_limit_reserve",
        sql: """
            INSERT INTO seqd.sender_daily_counts AS c (sender, day, reserved, last_grant)
            SELECT $1, $2::date, LEAST($3::int, $4::int), LEAST($3::int, $4::int)
            WHERE NOT EXISTS (SELECT 1 FROM seqd.sender_daily_counts f
                              WHERE f.sender = $1 AND f.day = $2::date AND f.reserved >= $4::int)
            ON CONFLICT (sender, day) DO UPDATE
            SET last_grant = LEAST($3::int, GREATEST($4::int - c.reserved, 0)),
                reserved = c.reserved + LEAST($3::int, GREATEST($4::int - c.reserved, 0)),
                updated_at = now()
            RETURNING last_grant, $4::int - c.reserved AS room_left
            """)

    /// Reserves up to `count` slots; returns how many were granted, and how many are left after.
    static func reserve(_ connection: Connection, _ demand: Demand, count: Int) throws -> (granted: Int, left: Int) {
        let rows = try connection.query(reserve, [demand.sender, demand.day.description, count, demand.limit])
        guard rows.count > 0 else { return (0, 0) }
        return (try rows[0].decode("last_grant", as: Int.self), try rows[0].decode("room_left", as: Int.self))
    }
}
