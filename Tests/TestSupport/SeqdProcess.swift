import Foundation

/// Runs the built `seqd` executable as a subprocess, the way an operator or a script meets it: exit
/// code, stdout and stderr.
///
/// The binary is the one SwiftPM built next to the test bundle (`swift build --build-tests` builds
/// every product, whatever the scratch path). `SEQD_BINARY` overrides the search.
public struct SeqdProcess: Sendable {
    /// What one run produced.
    public struct Result: Sendable, CustomStringConvertible {
        public let status: Int32
        public let stdout: String
        public let stderr: String

        public var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
    }

    public struct NotFound: Error, CustomStringConvertible {
        public let description: String
    }

    /// The executable.
    public let binary: URL
    /// Passed as `DATABASE_URL`.
    public let databaseURL: String
    /// The child's working directory: an empty one of its own, so no `Config/seqd.yaml` is picked up
    /// and relative paths in tests name files there.
    public let directory: URL

    public init(databaseURL: String) throws {
        binary = try Self.locateBinary()
        self.databaseURL = databaseURL
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqd-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Writes `contents` to `name` in the working directory and returns the path as given to seqd.
    @discardableResult
    public func write(_ name: String, _ contents: String) throws -> String {
        try Data(contents.utf8).write(to: directory.appendingPathComponent(name))
        return name
    }

    /// Runs `seqd arguments…` and waits for it without blocking a concurrency-pool thread.
    public func run(_ arguments: String...) async throws -> Result {
        try await run(arguments)
    }

    /// - Parameter input: the child's stdin (as an MTA pipe hands over a message); empty when nil.
    public func run(_ arguments: [String], environment extra: [String: String] = [:], input: Data? = nil) async throws -> Result {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        // A clean environment: the tests' own SEQD_* variables must not leak into the configuration.
        var environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "DATABASE_URL": databaseURL]
        if let home = ProcessInfo.processInfo.environment["HOME"] { environment["HOME"] = home }
        environment.merge(extra) { $1 }
        process.environment = environment
        return try await ExternalCommand.collect(process, input: input)
    }

    /// The `seqd` built alongside the running test bundle.
    public static func locateBinary(filePath: String = #filePath) throws -> URL {
        var candidates = [URL]()
        if let override = ProcessInfo.processInfo.environment["SEQD_BINARY"], !override.isEmpty {
            candidates.append(URL(fileURLWithPath: override))
        }
        // Linux runs the test bundle as an executable in the build directory itself; on macOS the
        // .xctest bundle sits in that directory.
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        candidates.append(executable.deletingLastPathComponent().appendingPathComponent("seqd"))
        candidates.append(Bundle.main.bundleURL.appendingPathComponent("seqd"))
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("seqd"))
        for bundle in Bundle.allBundles where bundle.bundleURL.pathExtension == "xctest" {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("seqd"))
        }
        // Last resort: the default scratch path of the package this file belongs to.
        let root = URL(fileURLWithPath: filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/seqd"))
        if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) {
            return found
        }
        throw NotFound(
            description: "no seqd executable found (looked in \(candidates.map(\.path).joined(separator: ", "))); "
                + "run `swift build --build-tests` first or set SEQD_BINARY")
    }
}
