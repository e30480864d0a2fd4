import CCurl
import Foundation

/// What libcurl's callbacks collect during one HTTP request: the start of the response body,
/// `Retry-After`, and how far the request got on the wire. The `http` transport and the webhook
/// client each keep one per handle; libcurl reaches it through the user-data pointer, so it must
/// live as long as the handle (its owner holds both).
final class HTTPCapture {
    /// Response bytes kept; the rest is read and dropped.
    let maxBodyLength: Int
    private(set) var body: [UInt8] = []
    private(set) var retryAfter: String?
    private(set) var progress = HTTPExchange()

    init(maxBodyLength: Int) {
        self.maxBodyLength = maxBodyLength
    }

    /// Points `handle`'s body, header and debug callbacks at this capture. Verbose mode is on only
    /// so that the debug callback runs; with it set, libcurl prints nothing.
    func install(on handle: CurlHandle) throws(CurlSetupError) {
        let user = Unmanaged.passUnretained(self).toOpaque()
        try handle.setWriteCallback(CURLOPT_WRITEFUNCTION, Self.bodyCallback)
        try handle.set(CURLOPT_WRITEDATA, pointer: user)
        try handle.setWriteCallback(CURLOPT_HEADERFUNCTION, Self.headerCallback)
        try handle.set(CURLOPT_HEADERDATA, pointer: user)
        try handle.setDebugCallback(Self.debugCallback)
        try handle.set(CURLOPT_DEBUGDATA, pointer: user)
        try handle.set(CURLOPT_VERBOSE, true)
    }

    /// Forgets the previous request, before the next one.
    func reset() {
        body = []
        retryAfter = nil
        progress = HTTPExchange()
    }

    private static let bodyCallback: curl_write_callback = { data, size, count, user in
        guard let user else { return 0 }
        let capture = Unmanaged<HTTPCapture>.fromOpaque(user).takeUnretainedValue()
        let length = size * count
        let room = capture.maxBodyLength - capture.body.count
        if let data, room > 0 {
            capture.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: min(room, length)))
        }
        return length  // anything else would abort the transfer
    }

    private static let headerCallback: curl_write_callback = { data, size, count, user in
        guard let data, let user else { return size * count }
        let capture = Unmanaged<HTTPCapture>.fromOpaque(user).takeUnretainedValue()
        let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            capture.retryAfter = nil  // a new response (after 100 Continue, or a retried request)
        } else if let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == "retry-after" {
            capture.retryAfter = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return size * count
    }

    /// Watches the request leave: libcurl reports the header block and then the body bytes.
    private static let debugCallback: curl_debug_callback = { _, type, _, size, user in
        guard let user else { return 0 }
        let capture = Unmanaged<HTTPCapture>.fromOpaque(user).takeUnretainedValue()
        if type == CURLINFO_HEADER_OUT {
            capture.progress.headerWasSent()
        } else if type == CURLINFO_DATA_OUT {
            capture.progress.bodyBytesSent(size)
        }
        return 0
    }
}
