import Logging
import Prometheus
import SeqdApplication
import SequenceStore
import ServiceLifecycle

/// Recomputes the SQL gauges on an interval, on a connection of its own, so `/metrics` only reads
/// memory: a scrape never waits for the database and never adds load to it.
struct GaugeRefresher: Service {
    let operations: Operations
    let interval: Duration
    let logger: Logger
    let dueBacklog: Gauge
    let oldestDueAge: Gauge
    let expiredLeases: Gauge
    let oldestTransactionAge: Gauge
    /// 1 after a successful refresh, 0 after a failed one: the other gauges are then stale.
    let databaseUp: Gauge

    init(operations: Operations, interval: Duration, registry: PrometheusCollectorRegistry, logger: Logger) {
        self.operations = operations
        self.interval = interval
        self.logger = logger
        func gauge(_ name: String, unit: String = "", _ help: String) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "seqd", metricName: name, unitName: unit, helpText: help))
        }
        dueBacklog = gauge("due_backlog", "Active enrollments whose next run time has passed")
        oldestDueAge = gauge("oldest_due_age", unit: "seconds", "Seconds since the oldest due enrollment became due")
        expiredLeases = gauge("expired_leases", "Deliveries still sending after their lease expired")
        oldestTransactionAge = gauge(
            "oldest_transaction_age", unit: "seconds", "Age of the oldest open transaction in the database")
        databaseUp = gauge("gauges_database_up", "1 when the last refresh of the SQL gauges succeeded, else 0")
    }

    func run() async throws {
        // Shutdown cancels the sleep; that is the normal way out, not a failure of the group.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await refresh()
                try await Task.sleep(for: interval)
            }
        }
    }

    func refresh() async {
        do {
            let gauges = try await operations.gauges()
            dueBacklog.set(to: Double(gauges.dueBacklog))
            oldestDueAge.set(to: gauges.oldestDueAgeSeconds)
            expiredLeases.set(to: Double(gauges.expiredLeases))
            oldestTransactionAge.set(to: gauges.oldestTransactionAgeSeconds)
            databaseUp.set(to: 1)
        } catch {
            databaseUp.set(to: 0)
            let state = (error as? ApplicationError)?.sqlState ?? "none"
            logger.warning("could not refresh the SQL gauges", metadata: ["error.type": "\(type(of: error))", "sqlstate": "\(state)"])
        }
    }
}
