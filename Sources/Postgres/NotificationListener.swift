import CLibPQ
import Dispatch
import Foundation

/// A `NOTIFY` received on a listened channel.
public struct PostgresNotification: Sendable, Equatable {
    public let channel: String
    public let payload: String

    public init(channel: String, payload: String) {
        self.channel = channel
        self.payload = payload
    }
}

/// Listens on channels with a dedicated connection whose socket is watched by a `DispatchSource`,
/// so waiting for a notification costs no thread at all.
///
/// Events (notifications, or the error that ended the connection) are delivered on the listener's
/// private serial queue. After a connection error the listener is finished; the owner decides when
/// to start a new one.
public final class NotificationListener: Sendable {
    /// What the listener reports.
    public enum Event: Sendable {
        case notification(PostgresNotification)
        /// The connection ended; no more events follow.
        case connectionLost(PostgresError)
    }

    private let queue: DispatchQueue
    /// Touched only on `queue` (and in init, before the source starts).
    private let connection = QueueConfined<Connection?>(nil)
    private let source: QueueConfined<any DispatchSourceRead>
    private let keepalive: QueueConfined<any DispatchSourceTimer>
    private let handler: @Sendable (Event) -> Void
    /// The server process serving the listening session.
    public let backendPID: Int32

    /// Connects and issues `LISTEN` for each channel before returning, so no notification sent after
    /// this returns is missed.
    public init(
        connectionString: String, channels: [String], options: SessionOptions = SessionOptions(),
        label: String = "seqd.listen", handler: @escaping @Sendable (Event) -> Void
    ) throws {
        self.queue = DispatchQueue(label: label)
        self.handler = handler
        let connection = try Connection(connectionString, options: options)
        self.backendPID = connection.backendPID
        for channel in channels {
            try connection.execute("LISTEN \(try connection.quoteIdentifier(channel))")
        }
        let source = DispatchSource.makeReadSource(fileDescriptor: PQsocket(connection.handle), queue: queue)
        self.source = QueueConfined(source)
        self.keepalive = QueueConfined(DispatchSource.makeTimerSource(queue: queue))
        self.connection.value = connection
        source.setEventHandler { [weak self] in self?.readAvailable() }
        source.resume()
        // A safety net for a lost end-of-stream: look at the socket every few seconds anyway.
        keepalive.value.schedule(deadline: .now() + 5, repeating: 5)
        keepalive.value.setEventHandler { [weak self] in self?.readAvailable() }
        keepalive.value.resume()
    }

    /// Stops listening and closes the connection.
    public func stop() {
        queue.sync { finish() }
    }

    deinit {
        source.value.cancel()
        keepalive.value.cancel()
    }

    private func readAvailable() {
        guard let connection = connection.value else { return }
        // A terminated session sends its FATAL message and closes. Both can arrive in one wake-up
        // and libpq may stop after the message, leaving the end of the stream unread with no new
        // readiness edge to come; so read twice (the socket is non-blocking, the second read costs
        // nothing when there is no more) and check the status after each.
        let alive = (0..<2).allSatisfy { _ in
            PQconsumeInput(connection.handle) == 1 && PQstatus(connection.handle) == CONNECTION_OK
        }
        guard alive else {
            let error = PostgresError(
                kind: .connectionLost, message: PostgresError.connectionMessage(connection.handle))
            finish()
            handler(.connectionLost(error))
            return
        }
        while let raw = PQnotifies(connection.handle) {
            let notification = PostgresNotification(
                channel: String(cString: raw.pointee.relname), payload: String(cString: raw.pointee.extra))
            PQfreemem(raw)
            handler(.notification(notification))
        }
    }

    private func finish() {
        source.value.cancel()
        keepalive.value.cancel()
        connection.value = nil
    }
}
