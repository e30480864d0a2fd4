import Metrics
import Prometheus
import Synchronization

/// The process's Prometheus registry and the swift-metrics bootstrap that feeds it.
///
/// The daemon records through swift-metrics (`Counter`, `Timer`, `Recorder`, `Gauge`) without
/// knowing about Prometheus; `/metrics` renders this registry, which also holds the listener's own
/// SQL gauges and request counters.
public enum SeqdMetrics {
    /// The registry `/metrics` renders. One per process, like `MetricsSystem`.
    public static let registry = PrometheusCollectorRegistry()

    private static let bootstrapped = Mutex(false)

    /// Points swift-metrics at `registry` with buckets sized for seqd (seconds for latencies,
    /// enrollments for claim batches). Call once, early in the executable, before the daemon
    /// creates its metrics; later calls return the same registry and change nothing, because
    /// `MetricsSystem.bootstrap` may only run once per process.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let first = bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        if first { MetricsSystem.bootstrap(factory()) }
        return registry
    }

    /// The factory `bootstrap` installs.
    static func factory() -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Advances take milliseconds, SMTP sends up to the transport timeout (30 s by default).
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
            .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        // Claims are capped by worker.batch_size (default 100); an empty claim is the common idle case.
        factory.valueHistogramBuckets["seqd_claim_batch_size"] = [0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000]
        return factory
    }
}
