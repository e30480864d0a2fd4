/// What `GET /healthz` reports: whether the process's loops are ticking. It never touches the
/// database, so an orchestrator does not restart seqd because PostgreSQL is slow (that is what
/// `/readyz` is for).
public struct HealthState: Sendable, Equatable {
    /// False when a loop has stopped ticking; `/healthz` then answers 503.
    public var isAlive: Bool
    /// Why the process is not alive, for the 503 body (no addresses, no secrets).
    public var reason: String?

    public init(isAlive: Bool, reason: String? = nil) {
        self.isAlive = isAlive
        self.reason = reason
    }

    /// Alive, nothing to report: `seqd serve` (no loops of its own) always answers this.
    public static let alive = HealthState(isAlive: true)
}
