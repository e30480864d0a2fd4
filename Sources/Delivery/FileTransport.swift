import Foundation
import Mail
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes each message to `<directory>/<delivery key>.eml`: the default transport, so a new user
/// sees mail without any server, and tests can read exactly what would have been sent.
///
/// Writes are atomic (temporary file in the same directory, `fsync`, `rename(2)`): a reader never
/// sees half a message, and a crash leaves at worst a hidden `.<name>.tmp-<uuid>` file, never a
/// partial `.eml`. The renames are made durable by one `fsync` of the directory per batch
/// (`finishBatch`, before the sender records the batch as sent): a crash before it can lose a
/// file whose delivery is still leased, never one recorded as sent, and the lease's expiry sends
/// it again. Because the name
/// comes from the delivery key and composition is deterministic, sending a delivery again replaces
/// the file with identical bytes, so the directory holds exactly one file per delivery.
public final class FileTransport: MailTransport {
    /// Always `file`.
    public var name: String { "file" }

    /// The outbox directory, as given without trailing slashes.
    public let directory: String

    /// Set by a rename that the directory's `fsync` has not yet covered.
    private let directoryUnsynced = Atomic<Bool>(false)

    /// Longest file-name stem kept verbatim; with the hash suffix and the temporary-file decoration
    /// the name stays well under the usual 255-byte `NAME_MAX`.
    static let maxStemLength = 120

    /// Creates `directory` (and its parents) if needed.
    /// - Throws: `FileTransportError` naming the path and the system's reason when the directory
    ///   cannot be created or the path exists and is not a directory.
    public init(directory: String) throws {
        var directory = directory
        while directory.count > 1, directory.hasSuffix("/") { directory.removeLast() }
        try Self.makeDirectories(directory)
        self.directory = directory
        removeAbandonedTemporaryFiles()
    }

    /// A process killed between writing and renaming leaves its temporary file behind. Ones older
    /// than ten minutes cannot belong to a write still in progress (in this or another replica
    /// sharing the directory), so they are removed when a transport starts.
    private func removeAbandonedTemporaryFiles() {
        let files = FileManager.default
        guard let names = try? files.contentsOfDirectory(atPath: directory) else { return }
        let cutoff = Date(timeIntervalSinceNow: -600)
        for name in names where name.hasPrefix(".") && name.contains(".tmp-") {
            let path = directory + "/" + name
            if let modified = (try? files.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified < cutoff {
                try? files.removeItem(atPath: path)
            }
        }
    }

    /// `.eml` files are `rw-r-----`, never world-readable.
    static let fileMode: mode_t = 0o640

    /// Writes the message atomically. A failure to write is a `.transportFault` (nothing was
    /// delivered, and the next attempt will meet the same directory), naming the path and errno text.
    public func send(_ message: ComposedMessage) -> TransportOutcome {
        let fileName = Self.fileName(forDeliveryKey: message.deliveryKey)
        let path = directory + "/" + fileName
        // Hidden and without the .eml suffix, so anything watching the outbox for *.eml ignores it;
        // unique per call, so concurrent sends of the same key never share a temporary file.
        let temporaryPath = directory + "/." + fileName + ".tmp-" + UUID().uuidString

        // Messages hold addresses and text meant for one person: owner read-write and group read
        // (a mail pickup in the group) at most, whatever the process umask; fchmod makes that exact.
        let fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, Self.fileMode)
        guard fd >= 0 else { return fault("cannot create", temporaryPath) }
        if fchmod(fd, Self.fileMode) != 0 {
            let outcome = fault("cannot chmod", temporaryPath)
            close(fd)
            unlink(temporaryPath)
            return outcome
        }
        if let code = Self.writeAll(message.data, to: fd) {
            let outcome = fault("cannot write", temporaryPath, code: code)
            close(fd)
            unlink(temporaryPath)
            return outcome
        }
        // fsync before rename: otherwise a crash can leave the new name pointing at empty data.
        if fsync(fd) != 0 {
            let outcome = fault("cannot fsync", temporaryPath)
            close(fd)
            unlink(temporaryPath)
            return outcome
        }
        if close(fd) != 0 {
            let outcome = fault("cannot close", temporaryPath)
            unlink(temporaryPath)
            return outcome
        }
        guard rename(temporaryPath, path) == 0 else {
            let outcome = fault("cannot rename to", path)
            unlink(temporaryPath)
            return outcome
        }
        directoryUnsynced.store(true, ordering: .releasing)
        return .sent(providerID: path)
    }

    /// Makes the batch's renames durable with one `fsync` of the directory.
    public func finishBatch() {
        if directoryUnsynced.exchange(false, ordering: .acquiringAndReleasing) { syncDirectory() }
    }

    /// Makes the renames themselves durable. Best effort: some file systems refuse `fsync` on a
    /// directory, and the messages are already complete and visible either way.
    private func syncDirectory() {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    /// Call immediately after the failing system call: the default argument reads `errno` before
    /// anything else can overwrite it.
    private func fault(_ what: String, _ path: String, code: Int32 = errno) -> TransportOutcome {
        .transportFault(reason: "file transport: \(what) \(path): \(String(cString: strerror(code)))")
    }

    /// Returns the `errno` of a failed write, or nil when every byte was written.
    private static func writeAll(_ bytes: [UInt8], to fd: Int32) -> Int32? {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    return code
                }
                offset += written
            }
            return nil
        }
    }

    /// `<key>.eml` with the key reduced to `A-Z a-z 0-9 . _ -` and never starting with a dot (no
    /// hidden files, no `..`). A hash of the original key is appended whenever the key had to be
    /// changed or shortened, so two different keys never map to one file.
    static func fileName(forDeliveryKey key: String) -> String {
        var stem = String(String.UnicodeScalarView(key.unicodeScalars.map { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": scalar
            default: "_"
            }
        }))
        if stem.hasPrefix(".") { stem = "_" + stem.dropFirst() }
        if stem != key || stem.isEmpty || stem.utf8.count > maxStemLength {
            stem = String(stem.prefix(maxStemLength)) + "-" + stableHex(key)
        }
        return stem + ".eml"
    }

    /// `mkdir -p` that reports the failing path and errno text, which an operator can act on.
    private static func makeDirectories(_ path: String) throws {
        guard !path.isEmpty else { throw FileTransportError(path: path, reason: "empty directory path") }
        var status = stat()
        if stat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFDIR else {
                throw FileTransportError(path: path, reason: "exists and is not a directory")
            }
            return
        }
        guard errno == ENOENT else { throw FileTransportError(path: path, errno: errno) }
        var parent = path
        while parent.count > 1, parent.hasSuffix("/") { parent.removeLast() }
        if let slash = parent.lastIndex(of: "/") {
            parent = String(parent[..<slash])
            if !parent.isEmpty { try makeDirectories(parent) }
        }
        if mkdir(path, 0o755) != 0, errno != EEXIST {
            throw FileTransportError(path: path, errno: errno)
        }
    }
}

/// The file transport's outbox directory cannot be used.
public struct FileTransportError: Error, CustomStringConvertible {
    /// The directory (or the ancestor) that failed.
    public var path: String
    /// Why, in the system's words.
    public var reason: String

    /// Creates an error; `path` is the directory that could not be created or used.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    init(path: String, errno code: Int32) {
        self.init(path: path, reason: String(cString: strerror(code)))
    }

    /// `cannot use outbox directory '<path>': <reason>`.
    public var description: String {
        "cannot use outbox directory '\(path)': \(reason)"
    }
}
