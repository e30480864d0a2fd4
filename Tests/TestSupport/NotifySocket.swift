import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A datagram socket in the abstract namespace that plays systemd's side of the notify protocol:
/// hand `name` to a child as `NOTIFY_SOCKET=@name` and read what it sends.
public final class NotifySocket: @unchecked Sendable {
    // Safe to share: `descriptor` is only read (recv is thread-safe on a datagram socket).
    public let name: String
    private let descriptor: Int32

    public init() throws {
        name = "seqd-test-notify-\(UUID().uuidString)"
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw TimedOut(description: "socket() failed: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else { throw TimedOut(description: "bind() failed: errno \(errno)") }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    /// The environment value for the child.
    public var environmentValue: String { "@" + name }

    /// The next datagram, or nil after a short timeout.
    public func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }
}
