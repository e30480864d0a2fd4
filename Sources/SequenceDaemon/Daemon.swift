// SequenceDaemon: the long-running side of seqd. It owns the threads and timers — advancing
// workers, delivery senders, the lease rescuer — their wake-ups (a jittered DispatchSourceTimer plus
// LISTEN/NOTIFY), the circuit breaker, and graceful shutdown on SIGTERM/SIGINT. Every decision is
// the engine's and every statement the store's; this module only schedules them.
import CoreMetrics
import Delivery
import Foundation
import Logging
import Postgres
import SequenceEngine
import SequenceStore
import Synchronization

/// Everything the daemon needs, resolved from the configuration by the executable.
public struct DaemonSettings: Sendable {
    public var databaseURL: String
    public var pollInterval: TimeInterval
    public var batchSize: Int
    public var workerConcurrency: Int
    public var shutdownGrace: TimeInterval
    public var deliveryConcurrency: Int
    public var leaseTimeout: Int
    public var policy: DeliveryPolicy
    public var unsubscribeBaseURL: String?
    public var unsubscribeMailto: String?
    /// From the configuration; nil means the secret stored at migrate.
    public var unsubscribeSecret: String?
    /// Builds one transport per sender thread.
    public var makeTransport: @Sendable () throws -> any MailTransport
    /// Warn when another session has held a transaction open this long (0 = never).
    public var longTransactionWarning: TimeInterval

    public init(
        databaseURL: String, pollInterval: TimeInterval, batchSize: Int, workerConcurrency: Int,
        shutdownGrace: TimeInterval, deliveryConcurrency: Int, leaseTimeout: Int, policy: DeliveryPolicy,
        unsubscribeBaseURL: String?, unsubscribeMailto: String?, unsubscribeSecret: String?,
        longTransactionWarning: TimeInterval = 30, makeTransport: @escaping @Sendable () throws -> any MailTransport
    ) {
        self.longTransactionWarning = longTransactionWarning
        self.databaseURL = databaseURL
        self.pollInterval = pollInterval
        self.batchSize = batchSize
        self.workerConcurrency = workerConcurrency
        self.shutdownGrace = shutdownGrace
        self.deliveryConcurrency = deliveryConcurrency
        self.leaseTimeout = leaseTimeout
        self.policy = policy
        self.unsubscribeBaseURL = unsubscribeBaseURL
        self.unsubscribeMailto = unsubscribeMailto
        self.unsubscribeSecret = unsubscribeSecret
        self.makeTransport = makeTransport
    }
}

/// Counters the daemon keeps while it runs (progress display, later metrics).
public final class DaemonCounters: Sendable {
    public let advanced = Atomic<Int>(0)
    public let sent = Atomic<Int>(0)
    public let failedDeliveries = Atomic<Int>(0)
    init() {}
}

/// The daemon: `start()` launches the loops, `stop()` drains them within the grace period.
public final class Daemon: @unchecked Sendable {
    // Safe to share: the loop arrays are written in `start()` before any other thread reads them,
    // and `stop()` is serialised by `stopOnce`.
    private let settings: DaemonSettings
    private let logger: Logger
    private let identity: String
    public let counters = DaemonCounters()
    private let advanceWake = WakeSignal()
    private let deliveryWake = WakeSignal()
    private let breaker: CircuitBreaker
    private let metrics = DaemonMetrics()
    /// Deliveries the advancers leased in their own transactions, for the senders: at most a batch
    /// per sender, and no more than they send in a quarter of the lease at their measured pace.
    private let handoff: Handoff
    /// Set by `start`, for the deliveries `stop` gives back.
    private var installationID: String?
    private var loops: [WorkerLoop] = []
    private var connections: [ConfinedConnection] = []
    private var timer: PollTimer?
    private let listener = Mutex<NotificationListener?>(nil)
    /// Set when the LISTEN connection is gone; the maintenance loop starts a new one.
    private let listenerLost = Atomic<Bool>(false)
    private let stopOnce = Mutex(false)
    private let notifier = SystemdNotifier()
    private var watchdog: (any DispatchSourceTimer)?

    public init(settings: DaemonSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        self.identity = "daemon:\(ProcessInfo.processInfo.hostName):\(getpid())"
        self.handoff = Handoff(
            capacity: settings.deliveryConcurrency * settings.batchSize, senders: settings.deliveryConcurrency,
            leaseSeconds: settings.leaseTimeout)
        self.breaker = CircuitBreaker(
            initialBackoff: .seconds(max(1, Int(settings.policy.backoff))), logger: logger, gauge: metrics.circuitOpen)
    }

    /// What every mode needs from the database before it can work.
    private struct Prepared {
        let installation: InstallationSettings
        let builder: MessageBuilder
    }

    private func prepare() throws -> Prepared {
        let setup = try Connection(settings.databaseURL, options: sessionOptions("seqd setup"))
        let installation = try InstallationSettings.load(setup)
        guard let secret = settings.unsubscribeSecret ?? installation.storedUnsubscribeSecret else {
            throw StoreError(.notMigrated, "no unsubscribe secret: configure unsubscribe.secret or run `seqd migrate`")
        }
        let builder = MessageBuilder(
            messageIDKey: MessageID.Key(secret: secret), unsubscribeBaseURL: settings.unsubscribeBaseURL, unsubscribeMailto: settings.unsubscribeMailto,
            unsubscribeToken: { UnsubscribeToken.make(enrollmentID: $0, secret: secret) })
        return Prepared(installation: installation, builder: builder)
    }

    private func makeSender(
        _ name: String, connection: ConfinedConnection, prepared: Prepared, handoff: Handoff
    ) throws -> Sender {
        Sender(
            worker: "\(identity):\(name)", connection: connection, transport: try settings.makeTransport(),
            outbox: DeliveryOutbox(
                worker: "\(identity):\(name)", installationID: prepared.installation.installationID, policy: settings.policy),
            builder: prepared.builder, breaker: breaker, leaseTimeout: settings.leaseTimeout,
            batchSeconds: min(1, min(Double(settings.leaseTimeout), settings.shutdownGrace) / 4), metrics: metrics,
            handoff: handoff, logger: logger)
    }

    /// `seqd run --once`: advances and sends everything that is due now, on this thread, until a
    /// full pass finds nothing, then returns. Waits that end later are left for a later run.
    public func runOnce() throws {
        let prepared = try prepare()
        let connection = ConfinedConnection(settings.databaseURL, options: sessionOptions("seqd once"))
        defer { connection.close() }
        let advancer = Advancer(actor: identity, installationID: prepared.installation.installationID)
        // Advancing and sending take turns on one thread here: nothing is leased in advance.
        let sender = try makeSender(
            "once", connection: connection, prepared: prepared,
            handoff: Handoff(capacity: 0, senders: 1, leaseSeconds: settings.leaseTimeout))
        let rescuer = DeliveryOutbox(worker: "\(identity):rescuer", installationID: prepared.installation.installationID, policy: settings.policy)
        let resumer = Resumer(actor: identity, installationID: prepared.installation.installationID)
        let wake = WakeSignal()
        var didWork = true
        while didWork {
            didWork = false
            _ = try connection.runBlocking { try rescuer.rescueExpiredLeases($0, jitter: { Double.random(in: 0...1) }) }
            _ = try connection.runBlocking { try resumer.resumeDue($0) }
            while true {
                let summary = try connection.runBlocking { try advancer.advanceBatch($0, limit: settings.batchSize) }
                guard summary.claimed > 0 else { break }
                counters.advanced.add(summary.claimed, ordering: .relaxed)
                didWork = true
            }
            while true {
                let round = try sender.sendBatch(limit: settings.batchSize, wake: wake)
                if let summary = round.settled {
                    counters.sent.add(summary.sent, ordering: .relaxed)
                    didWork = true
                }
                guard round.comeBack else { break }
                didWork = true
            }
            if let summary = try sender.flush() { counters.sent.add(summary.sent, ordering: .relaxed) }
        }
    }

    /// Connects, checks the schema, and starts every loop. Throws when the database is not usable,
    /// so a misconfigured daemon fails at start instead of logging forever.
    public func start() throws {
        let prepared = try prepare()
        let installation = prepared.installation
        installationID = installation.installationID
        for index in 0..<settings.workerConcurrency {
            let name = "advance-\(index)"
            let connection = ConfinedConnection(settings.databaseURL, options: sessionOptions("seqd \(name)"), label: "seqd.\(name)")
            connections.append(connection)
            let advancer = LoopOwned(Advancer(actor: identity, installationID: installation.installationID))
            let giveBack = LoopOwned(
                DeliveryOutbox(worker: "\(identity):\(name)", installationID: installation.installationID, policy: settings.policy))
            loops.append(
                WorkerLoop(name: name, wake: advanceWake, idleTimeout: idleTimeout, logger: logger) { [self] in
                    // Emails this batch writes are leased to this process's senders in the same
                    // transaction, as many as they have room for; not while the circuit is open.
                    let lease = breaker.mode == .closed
                        ? DirectLease(owner: "\(identity):senders", seconds: settings.leaseTimeout, room: handoff) : nil
                    let leaseStart = ContinuousClock.now  // before the transaction's now(), never after
                    let summary = try metrics.time(metrics.advanceDuration) {
                        try connection.runBlocking { try advancer.value.advanceBatch($0, limit: settings.batchSize, lease: lease) }
                    }
                    let refused = handoff.deliver(
                        summary.leased, reserved: summary.leased.count, leaseStart: leaseStart,
                        othersPending: summary.deliveriesCreated > summary.leased.count)
                    if !refused.isEmpty {
                        // The senders stopped while this batch committed: the rows go back to pending.
                        _ = try connection.runBlocking {
                            try giveBack.value.giveBack($0, refused, because: "the daemon stopped before sending it")
                        }
                    }
                    metrics.claimBatchSize.record(summary.claimed)
                    guard summary.claimed > 0 else { return false }
                    counters.advanced.add(summary.claimed, ordering: .relaxed)
                    metrics.advances.increment(by: summary.claimed)
                    // A full batch may leave more due: another advancer joins in. This one comes
                    // back at once either way: a step it just ran may have made the next one due
                    // now (a zero wait), which nothing else would announce before the poll.
                    if summary.claimed >= settings.batchSize { advanceWake.wakeOne() }
                    if summary.deliveriesCreated > 0 { deliveryWake.wakeOne() }
                    logger.debug("advanced \(summary.claimed): \(summary.deliveriesCreated) deliveries, \(summary.completed) completed, \(summary.failed) failed")
                    return true
                })
        }
        for index in 0..<settings.deliveryConcurrency {
            let name = "send-\(index)"
            let connection = ConfinedConnection(settings.databaseURL, options: sessionOptions("seqd \(name)"), label: "seqd.\(name)")
            connections.append(connection)
            let sender = try makeSender(name, connection: connection, prepared: prepared, handoff: handoff)
            let count: @Sendable (SettleSummary) -> Void = { [self] summary in
                counters.sent.add(summary.sent, ordering: .relaxed)
                counters.failedDeliveries.add(summary.failed + summary.bounced, ordering: .relaxed)
                if summary.sent > 0 { advanceWake.wakeOne() }
            }
            loops.append(
                WorkerLoop(
                    name: name, wake: deliveryWake, idleTimeout: idleTimeout, logger: logger,
                    body: { [self] in
                        let round = try sender.sendBatch(limit: settings.batchSize, wake: deliveryWake)
                        round.settled.map(count)
                        return round.comeBack
                    },
                    // A full batch's outcomes wait for the next claim; on the way out they go in alone.
                    onExit: { try sender.flush().map(count) }))
        }
        let maintenanceConnection = ConfinedConnection(settings.databaseURL, options: sessionOptions("seqd maintenance"), label: "seqd.maintenance")
        connections.append(maintenanceConnection)
        let rescuer = LoopOwned(DeliveryOutbox(worker: "\(identity):rescuer", installationID: installation.installationID, policy: settings.policy))
        let resumer = LoopOwned(Resumer(actor: identity, installationID: installation.installationID))
        let heldTransactions = LoopOwned(HeldTransactionWatch(threshold: settings.longTransactionWarning, logger: logger))
        let maintenanceWake = WakeSignal()
        loops.append(
            WorkerLoop(name: "maintenance", wake: maintenanceWake, idleTimeout: idleTimeout, logger: logger) { [self] in
                try maintenanceConnection.runBlocking { try heldTransactions.value.check($0) }
                let rescued = try maintenanceConnection.runBlocking { try rescuer.value.rescueExpiredLeases($0, jitter: { Double.random(in: 0...1) }) }
                let resumed = try maintenanceConnection.runBlocking { try resumer.value.resumeDue($0) }
                // Queued for a quarter of the lease and not taken: every sender is stuck or the
                // circuit is open. Back to pending, before the lease would make them unknown.
                let stale = handoff.takeStale(olderThan: .seconds(settings.leaseTimeout) / 4)
                if !stale.isEmpty {
                    _ = try maintenanceConnection.runBlocking {
                        try rescuer.value.giveBack($0, stale, because: "no sender took it within a quarter of its lease")
                    }
                    logger.warning("gave back \(stale.count) queued deliveries no sender took within a quarter of their lease")
                    deliveryWake.wake()
                }
                if rescued > 0 {
                    logger.warning("\(rescued) deliveries had expired leases and are now unknown")
                    deliveryWake.wake()
                }
                if resumed > 0 { advanceWake.wake() }
                if listenerLost.load(ordering: .relaxed), !advanceWake.isStopped {
                    listenerLost.store(false, ordering: .relaxed)
                    let replacement = startListener()
                    listener.withLock { $0 = replacement }
                }
                return false
            })

        let initialListener = startListener()
        listener.withLock { $0 = initialListener }
        // The poll wakes every loop: an idle loop's round is also its heartbeat, which the systemd
        // watchdog and /healthz read (the idle timeout alone is five polls).
        timer = PollTimer(interval: settings.pollInterval) { [advanceWake, deliveryWake] in
            advanceWake.wake()
            deliveryWake.wake()
            maintenanceWake.wake()
        }
        stopSignals.append(maintenanceWake)
        loops.forEach { $0.start() }
        timer?.start()
        startSystemdNotifications()
        logger.info(
            "seqd running: \(settings.workerConcurrency) advancing, \(settings.deliveryConcurrency) sending, poll every \(settings.pollInterval)s")
    }

    private var stopSignals: [WakeSignal] = []

    /// Stops claiming, lets in-flight transactions and sends finish within the grace period, then
    /// cancels whatever statement is still running. Safe to call more than once.
    public func stop() {
        guard stopOnce.withLock({ stopped in
            defer { stopped = true }
            return !stopped
        }) else { return }
        notifier?.notify("STOPPING=1")
        watchdog?.cancel()
        logger.info("stopping: finishing in-flight work (grace \(settings.shutdownGrace)s)")
        timer?.stop()
        listener.withLock { $0 }?.stop()
        ([advanceWake, deliveryWake] + stopSignals).forEach { $0.stop() }
        let deadline = DispatchTime.now() + settings.shutdownGrace
        var unfinished = loops.filter { !$0.join(until: deadline) }
        if !unfinished.isEmpty {
            logger.warning("grace period over: cancelling \(unfinished.count) loops' statements")
            connections.forEach { $0.cancel() }
            unfinished = unfinished.filter { !$0.join(until: .now() + 2) }
        }
        connections.forEach { $0.close() }
        giveBackQueued()
        logger.info("stopped\(unfinished.isEmpty ? "" : " (\(unfinished.count) loops abandoned; their leases will expire)")")
    }

    /// Deliveries leased to this process's senders and still queued when they stopped (a sender
    /// stuck on a stalled server included) go back to `pending` now, for another daemon to send,
    /// instead of waiting out their leases as `unknown`. An advancer abandoned at the end of the
    /// grace period that commits after this finds the queue closed and its connection gone: its
    /// leases expire like any other.
    private func giveBackQueued() {
        let left = handoff.close()
        guard !left.isEmpty else { return }
        do {
            // Closed when it goes out of scope.
            let connection = try Connection(settings.databaseURL, options: sessionOptions("seqd stop"))
            let outbox = DeliveryOutbox(worker: "\(identity):stop", installationID: installationID ?? "", policy: settings.policy)
            try outbox.giveBack(connection, left, because: "the daemon stopped before sending it")
            logger.info("gave back \(left.count) queued deliveries unsent")
        } catch {
            logger.warning(
                "\(left.count) queued deliveries could not be given back (\(WorkerLoop.describe(error))); their leases expire within \(settings.leaseTimeout)s")
        }
    }

    /// True while every loop has finished a round within `seconds`: what `/healthz` and the systemd
    /// watchdog report. A loop blocked longer (a hung query, a stuck transport) makes it false.
    public func loopsAreTicking(within seconds: TimeInterval) -> Bool {
        loops.allSatisfy { $0.secondsSinceLastBeat <= seconds }
    }

    /// How long a loop may go without a round before it counts as stuck: its idle wait plus the
    /// longest statement it may run.
    public var tickTolerance: TimeInterval { idleTimeout + 60 }

    /// `Type=notify`: READY=1 once the database answered and the schema is supported (start() got
    /// here), then STATUS= and — only while the loops make progress — WATCHDOG=1.
    private func startSystemdNotifications() {
        guard let notifier else { return }
        notifier.notify("READY=1\nSTATUS=running: \(settings.workerConcurrency) advancing, \(settings.deliveryConcurrency) sending")
        let interval = notifier.watchdogInterval.map { $0 / 2 } ?? 10
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "seqd.watchdog"))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            let ticking = loopsAreTicking(within: min(tickTolerance, notifier.watchdogInterval ?? tickTolerance))
            let status = "STATUS=advanced \(counters.advanced.load(ordering: .relaxed)), sent \(counters.sent.load(ordering: .relaxed))"
                + (breaker.mode == .closed ? "" : ", transport circuit open") + (ticking ? "" : ", a loop is stuck")
            notifier.notify(notifier.watchdogInterval != nil && ticking ? "WATCHDOG=1\n" + status : status)
        }
        timer.resume()
        watchdog = timer
    }

    /// NOTIFY on `seqd_wakeup` (sent by `enroll`, resume and retry) wakes the advancers at once.
    /// A lost listener is replaced by the maintenance loop on a later tick; polling covers the gap.
    private func startListener() -> NotificationListener? {
        do {
            return try NotificationListener(
                connectionString: settings.databaseURL, channels: ["seqd_wakeup"], options: sessionOptions("seqd listen")
            ) { [weak self, advanceWake, deliveryWake, logger] event in
                switch event {
                case .notification:
                    advanceWake.wakeOne()
                    deliveryWake.wakeOne()
                case .connectionLost(let error):
                    logger.warning("LISTEN connection lost (\(error.message)); polling until it is back")
                    self?.listenerLost.store(true, ordering: .relaxed)
                }
            }
        } catch {
            logger.warning("LISTEN unavailable (\(WorkerLoop.describe(error))); polling until it is back")
            listenerLost.store(true, ordering: .relaxed)
            return nil
        }
    }

    /// Waits without the timer for at most this long, in case a timer tick was missed.
    private var idleTimeout: TimeInterval { max(settings.pollInterval * 5, 5) }

    private func sessionOptions(_ name: String) -> SessionOptions {
        // The server ends a session stuck inside a transaction, so a hung daemon never holds locks
        // (and never keeps SKIP LOCKED walking dead rows) for long.
        SessionOptions(
            applicationName: name, statementTimeoutMilliseconds: 60_000, lockTimeoutMilliseconds: 10_000,
            idleInTransactionTimeoutMilliseconds: 60_000)
    }
}
