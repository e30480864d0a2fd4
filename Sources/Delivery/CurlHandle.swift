import CCurl

/// Owns one libcurl easy handle (`CURL *`) and everything libcurl keeps pointers into: the error
/// buffer and the option lists. Frees them exactly once, in `deinit`.
///
/// Not thread-safe: a handle belongs to one transport, which uses it under its own lock, so at most
/// one thread is ever inside libcurl with it. Keeping the handle (rather than one per message) is
/// what lets libcurl keep the connection open between messages.
final class CurlHandle {
    /// The `CURL *`; valid from `init` to `deinit`.
    let raw: UnsafeMutableRawPointer
    /// libcurl writes a detailed message here on failure (`CURLOPT_ERRORBUFFER`); more precise than
    /// `curl_easy_strerror`, for example it names the host and port that refused the connection.
    private let errorBuffer: UnsafeMutablePointer<CChar>
    /// Lists libcurl reads during `perform` but never copies, by option; each is freed only once
    /// replaced or when the handle is gone.
    private var lists: [UInt32: UnsafeMutablePointer<curl_slist>] = [:]

    /// `curl_global_init` must run before the first handle exists. Swift runs a static initialiser
    /// exactly once, thread-safely, so the first handle in the process triggers it.
    private static let globalInitialization: CURLcode = seqd_curl_global_init()

    init() throws(CurlSetupError) {
        let initialization = Self.globalInitialization
        guard initialization == CURLE_OK else {
            throw CurlSetupError(reason: "curl_global_init failed: \(Self.describe(initialization))")
        }
        guard let raw = curl_easy_init() else { throw CurlSetupError(reason: "curl_easy_init failed") }
        self.raw = raw
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
        // libcurl would otherwise use SIGALRM for DNS timeouts, which is not safe with several
        // sending threads in one process.
        try set(CURLOPT_NOSIGNAL, 1)
    }

    deinit {
        // curl_easy_cleanup closes cached connections, which for SMTP sends QUIT and reads the
        // reply. The owner's callbacks must not run then: their user-data pointer may already be
        // dangling, since the owner is being destroyed.
        _ = seqd_curl_setopt_long(raw, CURLOPT_VERBOSE, 0)
        _ = seqd_curl_setopt_debug_callback(raw, nil)
        _ = seqd_curl_setopt_read_callback(raw, nil)
        _ = seqd_curl_setopt_write_callback(raw, CURLOPT_WRITEFUNCTION, nil)
        _ = seqd_curl_setopt_write_callback(raw, CURLOPT_HEADERFUNCTION, nil)
        curl_easy_cleanup(raw)
        for list in lists.values { curl_slist_free_all(list) }
        errorBuffer.deallocate()
    }

    func set(_ option: CURLoption, _ value: Int) throws(CurlSetupError) {
        try check(seqd_curl_setopt_long(raw, option, value), option)
    }

    func set(_ option: CURLoption, _ value: Bool) throws(CurlSetupError) {
        try set(option, value ? 1 : 0)
    }

    func set(_ option: CURLoption, offset value: Int64) throws(CurlSetupError) {
        try check(seqd_curl_setopt_off_t(raw, option, curl_off_t(value)), option)
    }

    /// libcurl copies the string, so a temporary C string is enough.
    func set(_ option: CURLoption, _ value: String?) throws(CurlSetupError) {
        let code =
            if let value { value.withCString { seqd_curl_setopt_string(raw, option, $0) } }
            else { seqd_curl_setopt_string(raw, option, nil) }
        try check(code, option)
    }

    func set(_ option: CURLoption, pointer value: UnsafeMutableRawPointer?) throws(CurlSetupError) {
        try check(seqd_curl_setopt_pointer(raw, option, value), option)
    }

    /// For options that copy the bytes during the call (CURLOPT_COPYPOSTFIELDS, after its size was set).
    func set(_ option: CURLoption, copying bytes: [UInt8]) throws(CurlSetupError) {
        let code = bytes.withUnsafeBytes { seqd_curl_setopt_pointer(raw, option, UnsafeMutableRawPointer(mutating: $0.baseAddress)) }
        try check(code, option)
    }

    /// Builds a `curl_slist` from `values` and keeps it until the option is set again.
    func set(_ option: CURLoption, list values: [String]) throws(CurlSetupError) {
        var list: UnsafeMutablePointer<curl_slist>?
        for value in values {
            guard let extended = curl_slist_append(list, value) else {
                if let list { curl_slist_free_all(list) }
                throw CurlSetupError(reason: "out of memory building a list for option \(option.rawValue)")
            }
            list = extended
        }
        let code = seqd_curl_setopt_slist(raw, option, list)
        guard code == CURLE_OK else {
            if let list { curl_slist_free_all(list) }
            try check(code, option)
            return
        }
        if let previous = lists.removeValue(forKey: option.rawValue) { curl_slist_free_all(previous) }
        if let list { lists[option.rawValue] = list }
    }

    func setReadCallback(_ callback: curl_read_callback?) throws(CurlSetupError) {
        try check(seqd_curl_setopt_read_callback(raw, callback), CURLOPT_READFUNCTION)
    }

    func setWriteCallback(_ option: CURLoption, _ callback: curl_write_callback?) throws(CurlSetupError) {
        try check(seqd_curl_setopt_write_callback(raw, option, callback), option)
    }

    func setDebugCallback(_ callback: curl_debug_callback?) throws(CurlSetupError) {
        try check(seqd_curl_setopt_debug_callback(raw, callback), CURLOPT_DEBUGFUNCTION)
    }

    /// Runs the transfer; blocks until it ends. Returns libcurl's code and its most specific message.
    func perform() -> (code: CURLcode, message: String) {
        errorBuffer[0] = 0
        let code = curl_easy_perform(raw)
        guard code != CURLE_OK else { return (code, "") }
        let detail = String(cString: errorBuffer)
        return (code, detail.isEmpty ? Self.describe(code) : detail)
    }

    /// A `CURLINFO_LONG` value, or 0 when libcurl has none.
    func info(_ info: CURLINFO) -> Int {
        var value = 0
        return seqd_curl_getinfo_long(raw, info, &value) == CURLE_OK ? value : 0
    }

    /// A `CURLINFO_OFF_T` value, or 0 when libcurl has none.
    func offsetInfo(_ info: CURLINFO) -> Int64 {
        var value: curl_off_t = 0
        return seqd_curl_getinfo_off_t(raw, info, &value) == CURLE_OK ? Int64(value) : 0
    }

    static func describe(_ code: CURLcode) -> String {
        String(cString: curl_easy_strerror(code))
    }

    private func check(_ code: CURLcode, _ option: CURLoption) throws(CurlSetupError) {
        guard code == CURLE_OK else {
            // An option this libcurl build lacks (too old, or built without a protocol) ends up here.
            throw CurlSetupError(reason: "libcurl refused option \(option.rawValue): \(Self.describe(code))")
        }
    }
}

/// Setting up a libcurl handle failed; wrapped into `TransportConfigurationError` by the transports.
struct CurlSetupError: Error {
    var reason: String
}

/// A transport cannot be created from its configuration (bad URL, bad HELO name, a libcurl build
/// without the needed protocol); the message says which setting and why, never a secret.
public struct TransportConfigurationError: Error, CustomStringConvertible {
    /// The transport's configuration name (`smtp`, `http`).
    public var transport: String
    /// What is wrong, for an operator.
    public var reason: String

    /// Creates an error for `transport`.
    public init(transport: String, reason: String) {
        self.transport = transport
        self.reason = reason
    }

    /// `<transport> transport: <reason>`.
    public var description: String { "\(transport) transport: \(reason)" }
}

extension CurlFailure {
    /// Groups libcurl's result codes by what they say about the transport.
    init(_ code: CURLcode) {
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            self = .unreachable
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CRL_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
             CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CLIENTCERT, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED,
             CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_SHUTDOWN_FAILED:
            self = .tls
        case CURLE_USE_SSL_FAILED:
            self = .startTLSRefused
        case CURLE_LOGIN_DENIED, CURLE_AUTH_ERROR:
            self = .loginDenied
        case CURLE_OPERATION_TIMEDOUT:
            self = .timedOut
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_WEIRD_SERVER_REPLY,
             CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_HTTP3:
            self = .connectionLost
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT, CURLE_NOT_BUILT_IN, CURLE_UNKNOWN_OPTION,
             CURLE_BAD_FUNCTION_ARGUMENT:
            self = .configuration
        default:
            self = .other
        }
    }
}
