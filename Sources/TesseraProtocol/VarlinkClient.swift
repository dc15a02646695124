// A blocking varlink client over a Unix stream socket, for the CLI and the
// integration tests. One call at a time; `call(more:)` streams replies to a
// closure until the server stops setting "continues".

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

public enum VarlinkClientError: Error, Sendable, CustomStringConvertible {
    case connect(path: String, errno: Int32)
    case io(String, errno: Int32)
    case closed
    case malformedReply(String)
    /// The server answered with a named varlink error.
    case remote(name: String, parameters: JSON)

    public var description: String {
        switch self {
        case let .connect(path, code):
            let hint =
                code == ENOENT || code == ECONNREFUSED
                ? " (is tesserad running? set --socket or TESSERA_SOCKET)" : ""
            return "cannot connect to \(path): \(String(cString: strerror(code)))\(hint)"
        case let .io(what, code): return "\(what) failed: \(String(cString: strerror(code)))"
        case .closed: return "the daemon closed the connection"
        case let .malformedReply(why): return "the daemon sent a malformed reply: \(why)"
        case let .remote(name, parameters): return VarlinkClientError.sentence(for: name, parameters)
        }
    }

    /// A sentence for a named error, for people rather than programs.
    static func sentence(for name: String, _ p: JSON) -> String {
        switch name {
        case ManagerError.jobNotFound:
            let meant = p["didYouMean"]?.stringValue.map { "; did you mean \"\($0)\"?" } ?? ""
            return "no job named \"\(p["job"]?.stringValue ?? "?")\"\(meant) (tessera jobs lists them)"
        case ManagerError.runNotFound: return "no run with id \(p["id"]?.intValue.map(String.init) ?? "?")"
        case ManagerError.taskNotFound:
            return
                "run \(p["run"]?.intValue.map(String.init) ?? "?") has no task \(p["index"]?.intValue.map(String.init) ?? "?")"
        case ManagerError.invalidParameter, ServiceError.invalidParameter:
            let reason = p["reason"]?.stringValue.map { ": \($0)" } ?? ""
            return "invalid parameter \"\(p["parameter"]?.stringValue ?? "?")\"\(reason)"
        case ManagerError.reloadFailed:
            let errors = p["errors"]?.arrayValue?.compactMap(\.stringValue) ?? []
            return "reload failed; the running configuration stays in force:\n" + errors.joined(separator: "\n")
        case ManagerError.runFinished:
            return
                "run \(p["id"]?.intValue.map(String.init) ?? "?") has already ended (\(p["state"]?.stringValue ?? "?"))"
        case ManagerError.stageNotFound:
            return
                "run \(p["run"]?.intValue.map(String.init) ?? "?") has no stage \"\(p["stage"]?.stringValue ?? "?")\""
        case ManagerError.shuttingDown:
            return "the daemon is shutting down: it lets its \(p["runningTasks"]?.intValue ?? 0) running "
                + "microtask(s) finish and takes no new runs or reloads"
        case ServiceError.methodNotFound:
            return "the daemon does not know the method \(p["method"]?.stringValue ?? "?")"
        case ServiceError.permissionDenied:
            let method = p["method"]?.stringValue.map { " to call \($0)" } ?? ""
            return "permission denied\(method); see access: in tessera.yaml(5)"
        default: return "\(name) \(p.serialized())"
        }
    }
}

public final class VarlinkClient {
    private let fd: Int32
    private var framer = VarlinkFramer(maximumMessageSize: 256 << 20)
    private var queued: [[UInt8]] = []
    public let path: String

    public init(path: String) throws(VarlinkClientError) {
        self.path = path
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .io("socket()", errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw .connect(path: path, errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw .connect(path: path, errno: code)
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Calls a method and returns the reply parameters; named errors throw
    /// `.remote`.
    public func call(_ method: String, _ parameters: JSON = .object([])) throws(VarlinkClientError) -> JSON {
        try send(VarlinkCall(method: method, parameters: parameters))
        let reply = try receive()
        if let error = reply.error { throw .remote(name: error, parameters: reply.parameters) }
        return reply.parameters
    }

    /// Calls a method with "more" and hands every reply to `body` until the
    /// server ends the stream or `body` returns false.
    public func stream(_ method: String, _ parameters: JSON = .object([]), _ body: (JSON) throws -> Bool) throws {
        try send(VarlinkCall(method: method, parameters: parameters, more: true))
        while true {
            let reply = try receive()
            if let error = reply.error { throw VarlinkClientError.remote(name: error, parameters: reply.parameters) }
            guard try body(reply.parameters), reply.continues else { return }
        }
    }

    /// Sends raw bytes, for tests that speak broken protocol on purpose.
    public func sendRaw(_ bytes: [UInt8]) throws(VarlinkClientError) {
        var offset = 0
        while offset < bytes.count {
            // MSG_NOSIGNAL: a daemon that hung up is an error to report, not
            // a SIGPIPE that kills the client.
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("write()", errno: errno)
            }
            offset += n
        }
    }

    public func send(_ call: VarlinkCall) throws(VarlinkClientError) {
        try sendRaw(call.json.varlinkFrame)
    }

    /// Reads the next reply.
    public func receive() throws(VarlinkClientError) -> VarlinkReply {
        let message = try receiveMessage()
        let json: JSON
        let parsed = message.withUnsafeBufferPointer { bytes in
            Result { () throws(JSONParseError) in try JSON.parse(bytes) }
        }
        switch parsed {
        case .success(let value): json = value
        case .failure(let error): throw .malformedReply(error.description)
        }
        guard let reply = VarlinkReply(json: json) else { throw .malformedReply("not an object") }
        return reply
    }

    private func receiveMessage() throws(VarlinkClientError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while queued.isEmpty {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("read()", errno: errno)
            }
            if n == 0 { throw .closed }
            let appended = buffer.withUnsafeBytes { raw in
                Result { () throws(VarlinkFramer.FramingError) in
                    try framer.append(UnsafeRawBufferPointer(rebasing: raw[0..<n]))
                }
            }
            guard case .success(let messages) = appended else {
                throw .malformedReply("reply longer than \(framer.maximumMessageSize) bytes")
            }
            queued += messages
        }
        return queued.removeFirst()
    }
}
