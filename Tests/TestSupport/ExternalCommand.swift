import Foundation

/// Runs a program other than seqd (initdb, pg_ctl, pg_config) and collects its exit status and
/// output, without blocking a concurrency-pool thread while it runs.
public enum ExternalCommand {
    /// The program failed; the description carries its command line and output.
    public struct Failed: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// sbin directories included: `runuser` lives in /usr/sbin, which a test runner's PATH may lack.
    static let searchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// Runs `arguments[0]` (looked up on `searchPath` when it has no slash) with the remaining
    /// arguments; throws `Failed` when it exits non-zero and `check` is true.
    ///
    /// - Parameter startsDaemon: the program leaves a daemon behind (`pg_ctl start`). Foundation on
    ///   Linux notices a child's exit when a socket it hands the child is closed by every process
    ///   holding it; a daemon inherits that socket and would keep this call waiting for as long as
    ///   it runs. So the program is started through a shell that closes every descriptor above 2.
    @discardableResult
    public static func run(
        _ arguments: [String], environment extra: [String: String] = [:], check: Bool = true, startsDaemon: Bool = false
    ) async throws -> SeqdProcess.Result {
        precondition(!arguments.isEmpty, "no program to run")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let closeDescriptors = #"for fd in /proc/$$/fd/*; do n=${fd##*/}; if [ "$n" -gt 2 ] && [ -e "$fd" ]; then eval "exec $n>&-"; fi; done; exec "$@""#
        process.arguments = startsDaemon ? ["bash", "-c", closeDescriptors, "close-descriptors"] + arguments : arguments
        var environment = ["PATH": searchPath]
        if let home = ProcessInfo.processInfo.environment["HOME"] { environment["HOME"] = home }
        environment.merge(extra) { $1 }
        process.environment = environment
        let result = try await collect(process)
        if check && result.status != 0 {
            throw Failed(description: "`\(arguments.joined(separator: " "))` failed: \(result)")
        }
        return result
    }

    /// Runs a configured `process` to its end without blocking a concurrency-pool thread, with
    /// `input` as its stdin (empty when nil), and returns its status and output. Output goes to
    /// files rather than pipes, so a chatty program can never fill a pipe and hang.
    public static func collect(_ process: Process, input: Data? = nil) async throws -> SeqdProcess.Result {
        let id = UUID().uuidString
        let directory = FileManager.default.temporaryDirectory
        let (outURL, errURL, inURL) = (
            directory.appendingPathComponent("cmd-\(id).out"), directory.appendingPathComponent("cmd-\(id).err"),
            directory.appendingPathComponent("cmd-\(id).in")
        )
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            for url in [outURL, errURL, inURL] { try? FileManager.default.removeItem(at: url) }
        }
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        if let input {
            try input.write(to: inURL)
            process.standardInput = try FileHandle(forReadingFrom: inURL)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        try out.close()
        try err.close()
        return SeqdProcess.Result(
            status: status, stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    /// The prefix that runs a command as the `postgres` user when the tests run as root
    /// (PostgreSQL refuses to run as root), as Scripts/lib.sh does.
    public static var asDatabaseOwner: [String] { getuid() == 0 ? ["runuser", "-u", "postgres", "--"] : [] }
}
