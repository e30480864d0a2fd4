import Foundation
import Postgres

/// The incident button: a global switch in `seqd.settings` that every replica's delivery claim
/// reads, so `seqd sending pause` holds all deliveries at once, losing none. Advancing goes on
/// (deliveries queue up as pending); sends already in flight settle normally.
public enum SendSwitch {
    public struct State: Sendable, Codable {
        public let paused: Bool
        /// When the switch last changed, by the database clock.
        public let since: Date?
        public let pendingDeliveries: Int
    }

    public static func set(paused: Bool, _ connection: Connection) throws -> State {
        try SchemaCheck.requireSupported(connection)
        try connection.query(
            """
            INSERT INTO seqd.settings (name, value, updated_at) VALUES ('sending.paused', $1, now())
            ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
            WHERE seqd.settings.value IS DISTINCT FROM EXCLUDED.value
            """, [paused ? "true" : "false"])
        if !paused { try connection.query("SELECT pg_notify('seqd_wakeup', '')") }
        return try state(connection)
    }

    public static func state(_ connection: Connection) throws -> State {
        try SchemaCheck.requireSupported(connection)
        let row = try connection.query(
            """
            SELECT COALESCE((SELECT value = 'true' FROM seqd.settings WHERE name = 'sending.paused'), false) AS paused,
                   (SELECT updated_at FROM seqd.settings WHERE name = 'sending.paused') AS since,
                   (SELECT count(*) FROM seqd.deliveries WHERE status IN ('pending', 'unknown')) AS pending
            """)[0]
        return State(
            paused: try row.decode("paused"), since: try row.decode("since", as: Date?.self),
            pendingDeliveries: try row.decode("pending"))
    }
}
