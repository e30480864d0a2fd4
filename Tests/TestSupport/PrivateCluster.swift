import Foundation
import Postgres
import Synchronization

/// A throwaway PostgreSQL cluster owned by one test, for faults that hit the whole server (a
/// restart) and so must never touch the shared test cluster other suites are using.
///
/// Made the way Scripts/lib.sh makes the shared one: `initdb` and `pg_ctl` from `pg_config --bindir`
/// (they are not on PATH on Debian), trust authentication, no TCP listener (the Unix socket lives in
/// the cluster's own directory, so clusters never collide on a port), run as the `postgres` user
/// when the tests run as root, in a directory under /tmp (the postgres user cannot enter root's home).
///
/// Use `PrivateCluster.with { cluster in … }`, which stops and removes the cluster however the body ends.
public final class PrivateCluster: Sendable {
    /// How `pg_ctl` shuts the server down (`-m`).
    public enum ShutdownMode: String, Sendable {
        /// Waits for every client to disconnect.
        case smart
        /// Ends every session (rolling back open transactions), then shuts down cleanly.
        case fast
        /// Aborts without a shutdown checkpoint; recovery runs at the next start.
        case immediate
    }

    /// The cluster's directory: `data/`, `server.log` and the socket.
    public let directory: URL
    private let bindir: String
    private let stopped = Mutex(false)

    /// The administrative connection string (database `postgres`, user `postgres`).
    public var serverURL: String { "postgresql://postgres@/postgres?host=\(directory.path)" }

    private var dataDirectory: String { directory.appendingPathComponent("data").path }
    private var serverOptions: String {
        "-c listen_addresses='' -k \(directory.path) -c max_connections=100 -c fsync=off"
    }

    private init(directory: URL, bindir: String) {
        self.directory = directory
        self.bindir = bindir
    }

    /// Creates, starts and hands over a cluster; stops it (and deletes its directory) afterwards,
    /// also when `body` throws.
    public static func with<T: Sendable>(_ body: (PrivateCluster) async throws -> T) async throws -> T {
        let cluster = try await start()
        let result: T
        do {
            result = try await body(cluster)
        } catch {
            try? await cluster.stop()
            throw error
        }
        try await cluster.stop()
        return result
    }

    /// initdb + start in a new directory under /tmp.
    public static func start() async throws -> PrivateCluster {
        let bindir = try await ExternalCommand.run(["pg_config", "--bindir"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        var template = Array("/tmp/seqd-private-pg.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ExternalCommand.Failed(description: "mkdtemp under /tmp failed: errno \(errno)")
        }
        let directory = URL(fileURLWithPath: String(cString: made))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
        if getuid() == 0 {
            try FileManager.default.setAttributes([.ownerAccountName: "postgres"], ofItemAtPath: directory.path)
        }
        let cluster = PrivateCluster(directory: directory, bindir: bindir)
        do {
            try await ExternalCommand.run(
                ExternalCommand.asDatabaseOwner + [
                    "\(bindir)/initdb", "-D", cluster.dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--locale=C.UTF-8",
                ])
            try await cluster.pgCtl(["start"])
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        return cluster
    }

    /// `pg_ctl restart -m mode`: every session is ended, and the server is back when this returns.
    public func restart(mode: ShutdownMode = .fast) async throws {
        try await pgCtl(["restart", "-m", mode.rawValue])
    }

    /// Stops the server (fast) and keeps it down until `startServer`: the database is unreachable.
    public func stopServer() async throws {
        try await pgCtl(["stop", "-m", "fast"])
    }

    /// Starts the server `stopServer` stopped; it accepts connections when this returns.
    public func startServer() async throws {
        try await pgCtl(["start"])
    }

    /// Stops the server (fast) and deletes the directory. Safe to call more than once.
    public func stop() async throws {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        defer { try? FileManager.default.removeItem(at: directory) }
        try await ExternalCommand.run(
            ExternalCommand.asDatabaseOwner + ["\(bindir)/pg_ctl", "-D", dataDirectory, "-m", "fast", "-w", "-t", "60", "stop"])
    }

    /// Creates database `name` and migrates it with `seqd migrate`, as an operator would; returns
    /// its connection string.
    public func makeMigratedDatabase(_ name: String) async throws -> String {
        let admin = try Connection(serverURL)
        try admin.execute("CREATE DATABASE \(name)")
        let url = ConnectionString.replacingDatabase(in: serverURL, with: name)
        let migrate = try await SeqdProcess(databaseURL: url).run("migrate")
        guard migrate.status == 0 else { throw ExternalCommand.Failed(description: "seqd migrate failed: \(migrate)") }
        return url
    }

    /// The server's log so far (for failure messages).
    public var serverLog: String {
        (try? String(contentsOf: directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? ""
    }

    private func pgCtl(_ action: [String]) async throws {
        try await ExternalCommand.run(
            ExternalCommand.asDatabaseOwner + [
                "\(bindir)/pg_ctl", "-D", dataDirectory, "-l", directory.appendingPathComponent("server.log").path, "-w",
                "-t", "60", "-o", serverOptions,
            ] + action, startsDaemon: true)
    }
}
