// SequenceEngine is seqd's pure domain: it owns what a sequence *is* (the YAML/JSON definition
// format, its validation and canonical stored form), the tiny template language for emails, the
// calendar arithmetic behind waits and send windows (business days, local wall-clock times in a
// contact's zone), and the two explicit state machines — enrollment and delivery — that decide
// every transition. It performs no I/O and never reads a clock: `now` is always a parameter, so
// the daemon, the CLI and the HTTP API drive exactly the same decisions and tests can walk every
// transition without a database. The drivers perform the actions the machines return.

/// One edge of a state machine's status graph (`from` ≠ `to`). The database stores the same
/// edges for its transition trigger, and a test proves both tables equal.
public struct StatusChange<Status: Hashable & Sendable>: Hashable, Sendable, CustomStringConvertible {
    /// The status before the event.
    public let from: Status
    /// The status after the event.
    public let to: Status

    /// Creates an edge.
    public init(from: Status, to: Status) {
        self.from = from
        self.to = to
    }

    public var description: String { "\(from) → \(to)" }
}

/// An event that a state machine refused in its current state. Nothing changed; the message is
/// meant for an operator (the CLI exits 1 with it).
public struct InvalidTransition: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the machine was in, e.g. `completed` or `awaiting delivery`.
    public let state: String
    /// The refused event, e.g. `pause`.
    public let event: String
    /// Extra context, if any.
    public let detail: String?

    init(state: String, event: String, detail: String? = nil) {
        self.state = state
        self.event = event
        self.detail = detail
    }

    public var description: String {
        let base = "\(state); \(event) is not allowed"
        return detail.map { "\(base) (\($0))" } ?? base
    }
}
