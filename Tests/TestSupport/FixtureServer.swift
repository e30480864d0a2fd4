import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A real server from `Tests/Fixtures` (aiosmtpd or http.server) on a free loopback port, running
/// as a child process with its own scratch directory where it records what it received.
public final class FixtureServer: Sendable {
    /// Debian's interpreter: it has python3-aiosmtpd, which a `python3` earlier on PATH may lack.
    public static let python = "/usr/bin/python3"

    public let port: Int
    public let directory: String
    private let process: Process

    /// Starts `script` with `--port P --dir D <arguments>` and returns once the server says it
    /// is listening (it writes `D/listening` after binding), or throws with the server's stderr.
    /// A port chosen here can be taken by a parallel test before the server binds it; then the
    /// server exits, and another port is tried.
    public static func start(_ script: String, _ arguments: [String], port: Int? = nil) async throws -> FixtureServer {
        var tries = 0
        while true {
            tries += 1
            do {
                return try await launch(script, arguments, port: try port ?? freePort())
            } catch let error as FixtureError where error.portTaken && port == nil && tries < 5 {
                continue
            }
        }
    }

    private static func launch(_ script: String, _ arguments: [String], port: Int) async throws -> FixtureServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqd-fixture-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [fixturePath(script), "--port", String(port), "--dir", directory] + arguments
        let log = directory + "/server.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let server = FixtureServer(port: port, directory: directory, process: process)

        // Generous: on a loaded 2-core machine Python's start-up alone can take many seconds.
        let deadline = ContinuousClock.now + .seconds(60)
        while !FileManager.default.fileExists(atPath: directory + "/listening") {
            guard process.isRunning, ContinuousClock.now < deadline else {
                let running = process.isRunning
                let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                server.stop()
                throw FixtureError(
                    description: "\(script) did not start listening on port \(port): \(output)",
                    // "Address already in use" from http.server, "address already in use" from asyncio.
                    portTaken: !running && output.lowercased().contains("address already in use"))
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return server
    }

    private init(port: Int, directory: String, process: Process) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    deinit { stop() }

    /// Kills the server and removes its directory; safe to call more than once.
    ///
    /// SIGKILL rather than `terminate()`: a child inherits the blocked-signal mask of the thread
    /// that spawned it, and the test runner's threads block SIGTERM, so SIGTERM may never arrive.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The files the server wrote whose names end in `suffix`, sorted by name.
    public func files(endingWith suffix: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(suffix) }.sorted()
            .map { directory + "/" + $0 }
    }

    public func contents(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FixtureError(description: "cannot read \(path)")
        }
        return Array(data)
    }

    /// `Tests/Fixtures/<name>`, found from this source file so any working directory works.
    public static func fixturePath(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(name).path
    }

    /// A port nothing listens on right now: bind port 0, read what the kernel chose, close.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError(description: "socket failed") }
        defer { close(fd) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else { throw FixtureError(description: "bind failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    public static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    /// The server could not bind its port: another process had it.
    public var portTaken = false

    public init(description: String, portTaken: Bool = false) {
        self.description = description
        self.portTaken = portTaken
    }
}

