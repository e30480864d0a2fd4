import Foundation

/// A `seqd run` child process that a test can start, signal (SIGTERM, SIGKILL) and restart, as
/// systemd or an orchestrator would.
public final class DaemonProcess: @unchecked Sendable {
    // Safe to share: `process` is replaced only by `start()`, which tests call from one task.
    private let seqd: SeqdProcess
    private let arguments: [String]
    private let environment: [String: String]
    private var process: Process?
    private let logURL: URL

    /// - Parameters:
    ///   - environment: extra variables (SEQD_* configuration), on top of DATABASE_URL.
    public init(_ seqd: SeqdProcess, arguments: [String] = ["run"], environment: [String: String] = [:], name: String) {
        self.seqd = seqd
        self.arguments = arguments
        self.environment = environment
        self.logURL = seqd.directory.appendingPathComponent("\(name).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
    }

    /// A test that fails (throws) before stopping its daemon must not leave it running for the
    /// rest of the suite: it would keep a CPU busy and its database's connections open.
    deinit {
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    public func start() throws {
        let process = Process()
        process.executableURL = seqd.binary
        process.arguments = arguments
        process.currentDirectoryURL = seqd.directory
        var environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "DATABASE_URL": seqd.databaseURL]
        environment.merge(self.environment) { $1 }
        process.environment = environment
        let log = try FileHandle(forWritingTo: logURL)
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
    }

    public var isRunning: Bool { process?.isRunning ?? false }

    /// Sends `signal` (SIGTERM for a graceful stop, SIGKILL for a crash).
    public func send(_ signal: Int32) {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, signal)
    }

    /// Waits for the process to exit and returns its status (or -signal when killed).
    public func waitForExit(timeout: Duration = .seconds(60)) async throws -> Int32 {
        guard let process else { return 0 }
        try await waitUntil(timeout: timeout, "seqd run to exit") { !process.isRunning }
        return process.terminationReason == .uncaughtSignal ? -process.terminationStatus : process.terminationStatus
    }

    /// Everything the process wrote to stdout and stderr so far.
    public var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }
}
