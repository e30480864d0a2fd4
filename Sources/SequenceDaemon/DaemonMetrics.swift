import CoreMetrics
import Foundation
import Metrics

/// The daemon's metrics through swift-metrics; the executable chooses the backend (Prometheus for
/// `/metrics`). Names follow Prometheus conventions: `seqd_` prefix, base units, `_total` counters,
/// and no label ever carries a contact or an address.
struct DaemonMetrics: Sendable {
    let advances = Counter(label: "seqd_advances_total")
    /// `seqd_conversions_total{source="advance"}`: enrollments this process ended `converted`
    /// because a goal was met before a step (the API counts `source="event"` and `"contact"`).
    let conversions = Counter(label: "seqd_conversions_total", dimensions: [("source", "advance")])
    let claimBatchSize = Recorder(label: "seqd_claim_batch_size", aggregate: true)
    let advanceDuration = Metrics.Timer(label: "seqd_advance_duration_seconds", preferredDisplayUnit: .seconds)
    let deliveryDuration = Metrics.Timer(label: "seqd_delivery_duration_seconds", preferredDisplayUnit: .seconds)
    /// One settle commit (every session's outcomes that waited for it): what a session waits
    /// between its send and its next message.
    let settleDuration = Metrics.Timer(label: "seqd_settle_duration_seconds", preferredDisplayUnit: .seconds)
    let attempts = Counter(label: "seqd_delivery_attempts_total")
    let circuitOpen = Gauge(label: "seqd_circuit_open")
    /// Event webhook outbox rows not delivered yet (all replicas', read from the database), and
    /// the age of the oldest: what is stuck when the receiver is down.
    let eventWebhookPending = Gauge(label: "seqd_event_webhook_pending")
    let eventWebhookOldestPendingAge = Gauge(label: "seqd_event_webhook_oldest_pending_age_seconds")

    /// `seqd_event_webhooks_total{outcome}`: posts by this process, `delivered` or `failed`.
    func eventWebhook(outcome: String) -> Counter {
        Counter(label: "seqd_event_webhooks_total", dimensions: [("outcome", outcome)])
    }

    /// `seqd_deliveries_total{transport, outcome}`; outcome is the attempt outcome
    /// (sent, temporary_failure, permanent_failure, bounce, transport_fault, unknown).
    func delivery(transport: String, outcome: String) -> Counter {
        Counter(label: "seqd_deliveries_total", dimensions: [("transport", transport), ("outcome", outcome)])
    }

    /// Times `body` into `timer`.
    func time<T>(_ timer: Metrics.Timer, _ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { timer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start)) }
        return try body()
    }
}
