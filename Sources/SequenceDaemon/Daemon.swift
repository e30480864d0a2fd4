// SequenceDaemon: the long-running side of seqd. It owns the threads and timers — advancing
// workers, the claimer, the sending sessions and their settle writer, the lease rescuer — their
// wake-ups (a jittered DispatchSourceTimer plus LISTEN/NOTIFY), the circuit breaker and the rate
// limiter, and their lifecycle as one ServiceGroup (SIGTERM drains in order). Every decision is
// the engine's and every statement the store's; this module only schedules them.
import CoreMetrics
import Delivery
import Foundation
import Logging
import Mail
import Postgres
import SequenceEngine
import SequenceStore
import ServiceLifecycle
import Synchronization

/// Everything the daemon needs, resolved from the configuration by the executable.
public struct DaemonSettings: Sendable {
    public var databaseURL: String
    public var pollInterval: TimeInterval
    public var batchSize: Int
    public var workerConcurrency: Int
    public var shutdownGrace: TimeInterval
    /// Concurrent transport sessions per process (`delivery.concurrency`); not database connections.
    public var deliveryConcurrency: Int
    /// Messages per second per process (`delivery.rate_limit`); nil for no limit.
    public var rateLimit: Double?
    public var leaseTimeout: Int
    public var policy: DeliveryPolicy
    public var unsubscribeBaseURL: String?
    public var unsubscribeMailto: String?
    /// `tracking.base_url`: where tracked links point (`/c/<token>`); nil means `unsubscribeBaseURL`.
    public var trackingBaseURL: String?
    /// From the configuration; nil means the secret stored at migrate.
    public var unsubscribeSecret: String?
    /// `delivery.transport` (`file`, `smtp`, `http`, `null`): how much a session takes at once.
    public var transportName: String
    /// Builds one transport per sending session.
    public var makeTransport: @Sendable () throws -> any MailTransport
    /// Warn when another session has held a transaction open this long (0 = never).
    public var longTransactionWarning: TimeInterval
    /// `webhook.allow_private_networks`: webhook steps may call private addresses.
    public var webhookAllowPrivateNetworks = false
    /// `webhook.secret` from the configuration; nil means the secret stored at migrate.
    public var webhookSecret: String?
    /// `event_webhook.*`; nil when `event_webhook.url` is unset (no events are enqueued then).
    public var eventWebhook: EventWebhookSettings?

    public init(
        databaseURL: String, pollInterval: TimeInterval, batchSize: Int, workerConcurrency: Int,
        shutdownGrace: TimeInterval, deliveryConcurrency: Int, rateLimit: Double? = nil, leaseTimeout: Int,
        policy: DeliveryPolicy, unsubscribeBaseURL: String?, unsubscribeMailto: String?, unsubscribeSecret: String?,
        longTransactionWarning: TimeInterval = 30, transportName: String,
        makeTransport: @escaping @Sendable () throws -> any MailTransport
    ) {
        self.transportName = transportName
        self.longTransactionWarning = longTransactionWarning
        self.databaseURL = databaseURL
        self.pollInterval = pollInterval
        self.batchSize = batchSize
        self.workerConcurrency = workerConcurrency
        self.shutdownGrace = shutdownGrace
        self.deliveryConcurrency = deliveryConcurrency
        self.rateLimit = rateLimit
        self.leaseTimeout = leaseTimeout
        self.policy = policy
        self.unsubscribeBaseURL = unsubscribeBaseURL
        self.unsubscribeMailto = unsubscribeMailto
        self.unsubscribeSecret = unsubscribeSecret
        self.makeTransport = makeTransport
    }

    /// Database connections one `seqd run` process holds: the advancers, the claimer, the settle
    /// writers, the maintenance loop and LISTEN (plus the HTTP listener's, when it is on). The
    /// sending sessions hold none, however many there are.
    public var connectionBudget: Int { workerConcurrency + Daemon.settleWriters + 3 }
}

/// Counters the daemon keeps while it runs (progress display, later metrics).
public final class DaemonCounters: Sendable {
    public let advanced = Atomic<Int>(0)
    public let sent = Atomic<Int>(0)
    public let failedDeliveries = Atomic<Int>(0)
    init() {}
}

/// The daemon: `services()` builds its loops as services for one `ServiceGroup` (which starts
/// them, and on SIGTERM stops them in order within the grace period); `runOnce()` does everything
/// due now on the calling thread.
///
/// Shutdown order (the reverse of `services()`): the advancers stop writing, the claimer stops
/// claiming, each session finishes the message it is sending and waits for its outcome to commit,
/// the queue's unsent deliveries go back to `pending`, and the settle writer drains last. So a
/// SIGTERM puts nothing on the wire twice.
public final class Daemon: Sendable {
    private let settings: DaemonSettings
    private let logger: Logger
    private let identity: String
    public let counters = DaemonCounters()
    private let advanceWake = WakeSignal()
    private let claimWake = WakeSignal()
    private let sessionWake = WakeSignal()
    private let maintenanceWake = WakeSignal()
    private let breaker: CircuitBreaker
    private let limiter: RateLimiter
    private let metrics = DaemonMetrics()
    /// Leased deliveries waiting for a session (from the advancers' direct leases and the claimer).
    private let queue: Handoff
    /// Every loop, for the heartbeat that `/healthz` and the systemd watchdog read.
    private let loops = Mutex<[WorkerLoop]>([])
    private let listener = Mutex<NotificationListener?>(nil)
    /// Set when the LISTEN connection is gone; the maintenance loop starts a new one.
    private let listenerLost = Atomic<Bool>(false)
    private let notifier = SystemdNotifier()

    public init(settings: DaemonSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        self.identity = "daemon:\(ProcessInfo.processInfo.hostName):\(getpid())"
        self.queue = Handoff(
            capacity: settings.deliveryConcurrency * Self.queuedPerSession(settings), senders: settings.deliveryConcurrency,
            leaseSeconds: settings.leaseTimeout)
        self.breaker = CircuitBreaker(
            initialBackoff: .seconds(max(1, Int(settings.policy.backoff))), logger: logger, gauge: metrics.circuitOpen)
        self.limiter = RateLimiter(messagesPerSecond: settings.rateLimit)
    }

    /// Settle writers per process, each on its own connection. Two: with one, every session's
    /// outcomes queue behind a single commit at a time, which capped a replica on the null
    /// transport at about a third of the database's email ceiling.
    public static let settleWriters = 2

    /// Queue room per session before the pace is measured: a batch for a local transport's
    /// session, a few messages for a network one (which takes one at a time).
    private static func queuedPerSession(_ settings: DaemonSettings) -> Int {
        SendingSession.localTransports.contains(settings.transportName) ? settings.batchSize : 4
    }

    /// What every mode needs from the database before it can work.
    private struct Prepared: Sendable {
        let installation: InstallationSettings
        let builder: MessageBuilder
        /// The key of `Seqd-Signature`; nil before a migrate that stores one (webhook steps then
        /// fail with a reason saying so).
        let webhookSecret: String?
    }

    private func prepare() throws -> Prepared {
        let setup = try Connection(settings.databaseURL, options: sessionOptions("seqd setup"))
        let installation = try InstallationSettings.load(setup)
        // The outbox trigger enqueues what this configuration posts, and nothing when it posts nothing.
        try EventWebhookOutbox.enable(setup, types: settings.eventWebhook?.types ?? [])
        let secret = try installation.unsubscribeSecret(configured: settings.unsubscribeSecret)
        let logger = logger
        let builder = MessageBuilder(
            secret: secret, unsubscribeBaseURL: settings.unsubscribeBaseURL, unsubscribeMailto: settings.unsubscribeMailto,
            trackingBaseURL: settings.trackingBaseURL,
            untracked: { key in
                logger.warning(
                    "delivery \(key): its sequence tracks clicks, but neither tracking.base_url nor unsubscribe.base_url is set; its links are sent untracked")
            })
        return Prepared(
            installation: installation, builder: builder, webhookSecret: settings.webhookSecret ?? installation.storedWebhookSecret)
    }

    private func outbox(_ name: String, _ prepared: Prepared) -> DeliveryOutbox {
        DeliveryOutbox(worker: "\(identity):\(name)", installationID: prepared.installation.installationID, policy: settings.policy)
    }

    /// The settle writers: every session's outcomes, in shared commits; `connection` is the first
    /// writer's (the others bring their own through `settleWrite`).
    private func makeSettleWriter(_ connection: ConfinedConnection, _ prepared: Prepared) -> GroupCommit<SendResult> {
        let logger = logger
        return GroupCommit(
            write: settleWrite(connection, prepared),
            isRetryable: { ($0 as? PostgresError).map { $0.isConnectionError || $0.isTransientConflict || $0.isLockTimeout } ?? false },
            onRetry: { error, parts, delay in
                logger.warning(
                    "recording \(parts) sessions' outcomes: \(WorkerLoop.describe(error)); sending paused, retrying in \(delay)s",
                    metadata: WorkerLoop.metadata(error))
            })
    }

    /// One settle writer's commit on `connection`, timed.
    private func settleWrite(_ connection: ConfinedConnection, _ prepared: Prepared) -> @Sendable ([SendResult]) throws -> Void {
        let outbox = LoopOwned(outbox("settle", prepared))
        return { [metrics, logger] results in
            let started = ContinuousClock.now
            _ = try metrics.time(metrics.settleDuration) { try connection.runBlocking { try outbox.value.settle($0, results: results) } }
            logger.trace("settled \(results.count) outcomes in \(Int((ContinuousClock.now - started).inSeconds * 1000)) ms")
        }
    }

    private func makeSession(_ name: String, settles: GroupCommit<SendResult>, prepared: Prepared) throws -> SendingSession {
        SendingSession(
            name: name, transport: try settings.makeTransport(),
            webhooks: prepared.webhookSecret.map { WebhookSender(allowPrivateNetworks: settings.webhookAllowPrivateNetworks, secret: $0) },
            dependencies: .init(
                queue: queue, settles: settles, breaker: breaker, limiter: limiter, builder: prepared.builder,
                metrics: metrics, counters: counters, claimWake: claimWake, sessionWake: sessionWake,
                advanceWake: advanceWake, leaseTimeout: settings.leaseTimeout,
                batchSeconds: min(1, min(Double(settings.leaseTimeout), settings.shutdownGrace) / 4),
                batchLimit: settings.batchSize, logger: logger))
    }

    /// `seqd run --once`: advances and sends everything that is due now, on this thread (the
    /// settle writer has a thread of its own), until a full pass finds nothing, then returns.
    /// Waits that end later are left for a later run.
    public func runOnce() throws {
        let prepared = try prepare()
        let eventWebhooks = try eventWebhookSecret(prepared)
        let connection = ConfinedConnection(settings.databaseURL, options: sessionOptions("seqd once"))
        defer { connection.close() }
        let settles = makeSettleWriter(connection, prepared)
        let writerDone = DispatchSemaphore(value: 0)
        Thread {
            settles.run()
            writerDone.signal()
        }.start()
        defer {
            settles.stop()
            writerDone.wait()
        }
        let advancer = Advancer(actor: identity, installationID: prepared.installation.installationID)
        let claimer = Claimer(
            connection: connection, outbox: outbox("once", prepared), queue: queue, breaker: breaker,
            sessionWake: sessionWake, batchSize: settings.batchSize, leaseTimeout: settings.leaseTimeout, logger: logger)
        let session = try makeSession("once", settles: settles, prepared: prepared)
        let rescuer = outbox("rescuer", prepared)
        let resumer = Resumer(actor: identity, installationID: prepared.installation.installationID)
        let running = WakeSignal()
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
            // Claim, send, repeat until a claim finds nothing (or the circuit opens).
            while breaker.mode == .closed {
                queue.wantClaim()
                _ = try claimer.round()
                guard !queue.isEmpty else { break }
                didWork = true
                while !queue.isEmpty, breaker.mode == .closed, session.round(stopping: running) {}
            }
        }
        let left = queue.close()
        if !left.isEmpty {
            _ = try connection.runBlocking { try rescuer.giveBack($0, left, because: "the transport's circuit is open") }
        }
        // Event webhooks due now, until a round finds none or the receiver fails.
        if let eventWebhook = settings.eventWebhook, let secret = eventWebhooks {
            let sender = EventWebhookSender(
                settings: eventWebhook, secret: secret, connection: connection, policy: settings.policy, metrics: metrics, logger: logger)
            while try sender.round(stopping: running) {}
        }
    }

    /// The key that signs event webhooks when they are on; refuses to start without one.
    private func eventWebhookSecret(_ prepared: Prepared) throws -> String? {
        guard settings.eventWebhook != nil else { return nil }
        guard let secret = prepared.webhookSecret else {
            throw StoreError(.notMigrated, "event_webhook.url is set but there is no webhook secret: configure webhook.secret or run `seqd migrate`")
        }
        return secret
    }

    /// Connects, checks the schema, and returns the daemon's services in start order, for one
    /// `ServiceGroup` (with SIGTERM and SIGINT as its graceful shutdown signals and
    /// `worker.shutdown_grace` as its timeout). Throws when the database is not usable, so a
    /// misconfigured daemon fails at start instead of logging forever.
    public func services() throws -> [any Service] {
        let prepared = try prepare()
        let eventWebhookSecret = try eventWebhookSecret(prepared)
        let installationID = prepared.installation.installationID
        func connection(_ name: String) -> ConfinedConnection {
            ConfinedConnection(settings.databaseURL, options: sessionOptions("seqd \(name)"), label: "seqd.\(name)")
        }

        // The settle writers record every session's outcomes; while one commits, the other takes
        // what arrived meanwhile. Connected now, so the process holds its whole budget from the
        // start (and a refused connection fails it).
        let settleConnections = (0..<Self.settleWriters).map { connection("settle-\($0)") }
        for settleConnection in settleConnections { try settleConnection.runBlocking { _ in } }
        let settles = makeSettleWriter(settleConnections[0], prepared)
        let writes = settleConnections.map { settleWrite($0, prepared) }
        // One service for every writer: the group shuts services down one at a time, and stopping
        // the shared writer ends them all at once.
        let writer = ThreadService(
            name: "seqd.settle", body: { [logger] in
                let all = DispatchGroup()
                for (index, write) in writes.enumerated() {
                    all.enter()
                    let thread = Thread {
                        settles.run(writingWith: write)
                        settleConnections[index].close()
                        all.leave()
                    }
                    thread.name = "seqd.settle-\(index)"
                    thread.start()
                }
                all.wait()
                logger.debug("settle writers stopped")
            },
            stop: { settles.stop() }, cancel: { settles.abandon() })

        // The sending sessions: no connections of their own.
        var sessionLoops: [WorkerLoop] = []
        for index in 0..<settings.deliveryConcurrency {
            let session = try makeSession("send-\(index)", settles: settles, prepared: prepared)
            sessionLoops.append(
                WorkerLoop(name: session.name, wake: sessionWake, idleTimeout: idleTimeout, logger: logger) { [sessionWake] in
                    session.round(stopping: sessionWake)
                })
        }
        let sessions = LoopsService(
            name: "sessions", loops: sessionLoops, stopSignals: [sessionWake],
            afterStop: { [self] in giveBackQueued(outbox("stop", prepared)) })

        // The claimer: one connection keeps the queue fed and checked.
        let claimConnection = connection("claim")
        let claimer = Claimer(
            connection: claimConnection, outbox: outbox("claim", prepared), queue: queue, breaker: breaker,
            sessionWake: sessionWake, batchSize: settings.batchSize, leaseTimeout: settings.leaseTimeout, logger: logger)
        // It comes round at least four times per `Handoff.freshness` even when nobody wakes it,
        // so queued items are checked again before they go stale (an idle round costs no query).
        let claimLoop = WorkerLoop(name: "claim", wake: claimWake, idleTimeout: queue.freshness.inSeconds / 4, logger: logger) {
            try claimer.round()
        }
        let claiming = LoopsService(
            name: "claimer", loops: [claimLoop], stopSignals: [claimWake], onCancel: { claimConnection.cancel() },
            afterStop: { claimConnection.close() })

        // The advancers: each on its own connection.
        var advanceLoops: [WorkerLoop] = []
        var advanceConnections: [ConfinedConnection] = []
        for index in 0..<settings.workerConcurrency {
            let name = "advance-\(index)"
            let advanceConnection = connection(name)
            advanceConnections.append(advanceConnection)
            let advancer = LoopOwned(Advancer(actor: identity, installationID: installationID))
            let giveBack = LoopOwned(outbox(name, prepared))
            advanceLoops.append(
                WorkerLoop(name: name, wake: advanceWake, idleTimeout: idleTimeout, logger: logger) { [self] in
                    try advanceRound(advanceConnection, advancer.value, giveBack.value)
                })
        }
        let advancingConnections = advanceConnections
        let advancing = LoopsService(
            name: "advancers", loops: advanceLoops, stopSignals: [advanceWake],
            onShutdown: { [self] in
                notifier?.notify("STOPPING=1")
                logger.info("stopping: finishing in-flight work (grace \(settings.shutdownGrace)s)")
            },
            onCancel: { advancingConnections.forEach { $0.cancel() } },
            afterStop: { advancingConnections.forEach { $0.close() } })

        // Maintenance: lease rescue, due resumes, held transactions, the LISTEN connection; it
        // also owns the poll timer and the systemd notifications, for the daemon's whole life.
        let maintenanceConnection = connection("maintenance")
        let rescuer = LoopOwned(outbox("rescuer", prepared))
        let resumer = LoopOwned(Resumer(actor: identity, installationID: installationID))
        let heldTransactions = LoopOwned(HeldTransactionWatch(threshold: settings.longTransactionWarning, logger: logger))
        let maintenanceLoop = WorkerLoop(name: "maintenance", wake: maintenanceWake, idleTimeout: idleTimeout, logger: logger) { [self] in
            try maintenanceConnection.runBlocking { try heldTransactions.value.check($0) }
            let rescued = try maintenanceConnection.runBlocking { try rescuer.value.rescueExpiredLeases($0, jitter: { Double.random(in: 0...1) }) }
            let resumed = try maintenanceConnection.runBlocking { try resumer.value.resumeDue($0) }
            if rescued > 0 {
                logger.warning("\(rescued) deliveries had expired leases and are now unknown")
                queue.wantClaim()
                claimWake.wake()
            }
            if resumed > 0 { advanceWake.wake() }
            if listenerLost.load(ordering: .relaxed), !advanceWake.isStopped {
                listenerLost.store(false, ordering: .relaxed)
                let replacement = startListener()
                listener.withLock { $0 = replacement }
            }
            return false
        }
        // Event webhooks (when configured): posted by a loop of their own, since a post may take
        // seconds, on the maintenance connection, which its short statements share.
        var eventLoops: [WorkerLoop] = []
        if let eventWebhook = settings.eventWebhook, let secret = eventWebhookSecret {
            let sender = LoopOwned(
                EventWebhookSender(
                    settings: eventWebhook, secret: secret, connection: maintenanceConnection, policy: settings.policy,
                    metrics: metrics, logger: logger))
            eventLoops.append(
                WorkerLoop(name: "event-webhooks", wake: maintenanceWake, idleTimeout: idleTimeout, logger: logger) { [maintenanceWake] in
                    try sender.value.round(stopping: maintenanceWake)
                })
        }
        // The poll wakes every loop: an idle loop's round is also its heartbeat, which the systemd
        // watchdog and /healthz read (the idle timeout alone is five polls).
        let timer = PollTimer(interval: settings.pollInterval) { [advanceWake, claimWake, sessionWake, maintenanceWake, queue] in
            advanceWake.wake()
            queue.wantClaim()
            claimWake.wake()
            sessionWake.wake()
            maintenanceWake.wake()
        }
        let watchdog = Mutex<(any DispatchSourceTimer)?>(nil)
        let maintenance = LoopsService(
            name: "maintenance", loops: [maintenanceLoop] + eventLoops, stopSignals: [maintenanceWake],
            beforeStart: { [self] in
                listener.withLock { $0 = startListener() }
                timer.start()
                watchdog.withLock { $0 = startSystemdNotifications() }
                logger.info(
                    "seqd running: \(settings.workerConcurrency) advancing, \(settings.deliveryConcurrency) sending sessions, \(settings.connectionBudget) database connections, poll every \(settings.pollInterval)s")
            },
            onShutdown: { [self] in
                timer.stop()
                listener.withLock { $0 }?.stop()
            },
            onCancel: { maintenanceConnection.cancel() },
            afterStop: { [logger] in
                watchdog.withLock { $0 }?.cancel()
                maintenanceConnection.close()
                logger.info("stopped")
            })

        loops.withLock { $0 = advanceLoops + [claimLoop] + sessionLoops + [maintenanceLoop] + eventLoops }
        return [writer, maintenance, sessions, claiming, advancing]
    }

    /// One advancer round. The emails its batch writes are leased to this process's sessions in
    /// the same transaction, as many as the queue has room for; not while the circuit is open.
    private func advanceRound(_ connection: ConfinedConnection, _ advancer: Advancer, _ giveBack: DeliveryOutbox) throws -> Bool {
        let lease = breaker.mode == .closed
            ? DirectLease(owner: "\(identity):sessions", seconds: settings.leaseTimeout, room: queue) : nil
        let leaseStart = ContinuousClock.now  // before the transaction's now(), never after
        let summary = try metrics.time(metrics.advanceDuration) {
            try connection.runBlocking { try advancer.advanceBatch($0, limit: settings.batchSize, lease: lease) }
        }
        let refused = queue.deliver(
            summary.leased, reserved: summary.leased.count, leaseStart: leaseStart,
            othersPending: summary.deliveriesCreated > summary.leased.count)
        if !refused.isEmpty {
            // The sessions stopped while this batch committed: the rows go back to pending.
            _ = try connection.runBlocking { try giveBack.giveBack($0, refused, because: "the daemon stopped before sending it") }
        }
        metrics.claimBatchSize.record(summary.claimed)
        guard summary.claimed > 0 else { return false }
        counters.advanced.add(summary.claimed, ordering: .relaxed)
        metrics.advances.increment(by: summary.claimed)
        if summary.converted > 0 { metrics.conversions.increment(by: summary.converted) }
        // A full batch may leave more due: another advancer joins in. This one comes back at once
        // either way: a step it just ran may have made the next one due now (a zero wait), which
        // nothing else would announce before the poll.
        if summary.claimed >= settings.batchSize { advanceWake.wakeOne() }
        if !summary.leased.isEmpty { sessionWake.wake() }
        if summary.deliveriesCreated > summary.leased.count { claimWake.wakeOne() }
        logger.debug("advanced \(summary.claimed): \(summary.deliveriesCreated) deliveries, \(summary.completed) completed, \(summary.converted) converted, \(summary.failed) failed")
        return true
    }

    /// Deliveries still queued when the sessions stopped (a session stuck on a stalled server
    /// included) go back to `pending` now, for another daemon to send, instead of waiting out
    /// their leases as `unknown`. On a connection of its own, for this moment only: when the grace
    /// period is over the settle writer is being abandoned too. An advancer that commits after
    /// this finds the queue closed and gives its leases back itself.
    private func giveBackQueued(_ outbox: DeliveryOutbox) {
        let left = queue.close()
        guard !left.isEmpty else { return }
        do {
            let connection = try Connection(settings.databaseURL, options: sessionOptions("seqd stop"))
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
        loops.withLock { $0 }.allSatisfy { $0.secondsSinceLastBeat <= seconds }
    }

    /// How long a loop may go without a round before it counts as stuck: its idle wait plus the
    /// longest statement or send it may run.
    public var tickTolerance: TimeInterval { idleTimeout + 60 }

    /// `Type=notify`: READY=1 once the database answered and the schema is supported, then
    /// STATUS= and — only while the loops make progress — WATCHDOG=1.
    private func startSystemdNotifications() -> (any DispatchSourceTimer)? {
        guard let notifier else { return nil }
        notifier.notify(
            "READY=1\nSTATUS=running: \(settings.workerConcurrency) advancing, \(settings.deliveryConcurrency) sending sessions")
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
        return timer
    }

    /// NOTIFY on `seqd_wakeup` (sent by `enroll`, resume and retry) wakes the advancers and the
    /// claimer at once. A lost listener is replaced by the maintenance loop on a later tick;
    /// polling covers the gap.
    private func startListener() -> NotificationListener? {
        do {
            return try NotificationListener(
                connectionString: settings.databaseURL, channels: ["seqd_wakeup"], options: sessionOptions("seqd listen")
            ) { [weak self, advanceWake, claimWake, queue, logger] event in
                switch event {
                case .notification:
                    advanceWake.wakeOne()
                    queue.wantClaim()
                    claimWake.wakeOne()
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
