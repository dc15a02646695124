// Swift handles over libuv. This file and WorkerProcess.swift are the only
// places that call uv_*.
//
// libuv's lifecycle rules (docs/src/design.rst) are kept literally: every
// handle lives in memory of its own, allocated here; `handle->data` holds a
// retained reference to its Swift owner; after uv_*_init the owner must call
// close(), and the memory and the reference are released only in the close
// callback, never in deinit. The loop runs on one thread; nothing here is
// thread-safe, and nothing needs to be.

internal import CLibUV

#if canImport(Glibc)
    import Glibc
#endif

/// The one loop of the daemon.
final class EventLoop {
    let raw: UnsafeMutablePointer<uv_loop_t>

    init() {
        raw = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        uv_loop_init(raw)
    }

    /// Runs until no active handles remain or stop() is called.
    func run() {
        uv_run(raw, UV_RUN_DEFAULT)
    }

    func stop() {
        uv_stop(raw)
    }

    /// Runs the loop until every closing handle's close callback has run and
    /// frees it; returns whether the loop closed cleanly (no handle leaked).
    func closeAll() -> Bool {
        uv_walk(
            raw,
            { handle, _ in
                if let handle, uv_is_closing(handle) == 0 { uv_close(handle, Handle.closeCallback) }
            }, nil)
        uv_run(raw, UV_RUN_DEFAULT)
        let clean = uv_loop_close(raw) == 0
        if clean { raw.deallocate() }
        return clean
    }

    /// The loop's cached time in milliseconds (monotonic).
    var now: UInt64 { uv_now(raw) }
}

/// Base class of every handle: owns the uv memory and the retain that keeps
/// the Swift object alive while libuv may call back into it.
class Handle {
    let handle: UnsafeMutablePointer<uv_handle_t>
    private(set) var isClosing = false

    init(type: uv_handle_type) {
        let size = uv_handle_size(type)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        handle = memory.bindMemory(to: uv_handle_t.self, capacity: 1)
    }

    /// To be called by subclasses right after a successful uv_*_init.
    func retainForCallbacks() {
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    /// Closes the handle; `closed` runs after libuv has let go of it.
    func close() {
        guard !isClosing else { return }
        isClosing = true
        if uv_is_closing(handle) == 0 { uv_close(handle, Handle.closeCallback) }
    }

    /// Called once libuv is done with the handle; subclasses release
    /// resources that callbacks might still have used.
    func closed() {}

    static let closeCallback: uv_close_cb = { handle in
        guard let handle else { return }
        if let data = handle.pointee.data {
            let owner = Unmanaged<Handle>.fromOpaque(data)
            owner.takeUnretainedValue().closed()
            handle.pointee.data = nil
            owner.release()
        }
        UnsafeMutableRawPointer(handle).deallocate()
    }

    static func owner<T: Handle>(_ handle: UnsafeMutableRawPointer?, as: T.Type) -> T? {
        guard let data = handle?.assumingMemoryBound(to: uv_handle_t.self).pointee.data else { return nil }
        return Unmanaged<Handle>.fromOpaque(data).takeUnretainedValue() as? T
    }
}

/// A libuv error as a Swift error, naming the call that failed.
struct UVError: Error, CustomStringConvertible {
    let call: String
    let code: Int32
    var description: String { "\(call): \(String(cString: uv_strerror(code)))" }

    static func check(_ code: Int32, _ call: @autoclosure () -> String) throws(UVError) {
        if code < 0 { throw UVError(call: call(), code: code) }
    }
}

// MARK: - Timer

final class Timer: Handle {
    private var action: (() -> Void)?

    init(loop: EventLoop) {
        super.init(type: UV_TIMER)
        uv_timer_init(loop.raw, UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_timer_t.self))
        retainForCallbacks()
    }

    private var timer: UnsafeMutablePointer<uv_timer_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_timer_t.self)
    }

    /// Runs `action` after `milliseconds`, then every `repeatEvery` ms if non-zero.
    func start(after milliseconds: UInt64, repeatEvery: UInt64 = 0, _ action: @escaping () -> Void) {
        self.action = action
        uv_timer_start(
            timer,
            { timer in
                Handle.owner(UnsafeMutableRawPointer(timer), as: Timer.self)?.action?()
            }, milliseconds, repeatEvery)
    }

    func stop() {
        uv_timer_stop(timer)
        action = nil
    }

    override func closed() { action = nil }
}

// MARK: - Check (runs once per loop iteration, after I/O)

final class Check: Handle {
    private var action: (() -> Void)?

    init(loop: EventLoop, _ action: @escaping () -> Void) {
        self.action = action
        super.init(type: UV_CHECK)
        let check = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_check_t.self)
        uv_check_init(loop.raw, check)
        retainForCallbacks()
        uv_check_start(check) { check in
            Handle.owner(UnsafeMutableRawPointer(check), as: Check.self)?.action?()
        }
    }

    override func closed() { action = nil }
}

// MARK: - Signal

final class SignalWatcher: Handle {
    private var action: ((Int32) -> Void)?

    init(loop: EventLoop, signal: Int32, _ action: @escaping (Int32) -> Void) {
        self.action = action
        super.init(type: UV_SIGNAL)
        let watcher = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_signal_t.self)
        uv_signal_init(loop.raw, watcher)
        retainForCallbacks()
        uv_signal_start(
            watcher,
            { watcher, signal in
                Handle.owner(UnsafeMutableRawPointer(watcher), as: SignalWatcher.self)?.action?(signal)
            }, signal)
    }

    override func closed() { action = nil }
}

// MARK: - Streams (Unix and TCP sockets)

/// A stream socket: a Unix one (a listening socket, an accepted connection
/// or the worker's channel) or, made with `init(tcpLoop:)`, a TCP one (the
/// metrics listener and its connections). Reads are delivered to
/// `onRead`; writes are queued and counted so a peer that does not read
/// can be detected.
final class Stream: Handle {
    var onRead: ((UnsafeRawBufferPointer) -> Void)?
    var onEnd: ((Int32) -> Void)?
    private var onConnection: (() -> Void)?
    /// Bytes handed to libuv that it has not written yet.
    private(set) var pendingWriteBytes = 0
    private var readBuffer: UnsafeMutableRawPointer?
    private static let readBufferSize = 256 * 1024
    let isTCP: Bool
    /// Set by closeWhenWritten: the stream closes once its writes are out.
    private var closeWhenDrained = false

    init(loop: EventLoop) {
        isTCP = false
        super.init(type: UV_NAMED_PIPE)
        uv_pipe_init(loop.raw, pipe, 0)
        retainForCallbacks()
    }

    init(tcpLoop loop: EventLoop) {
        isTCP = true
        super.init(type: UV_TCP)
        uv_tcp_init(loop.raw, UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_tcp_t.self))
        retainForCallbacks()
    }

    /// Binds a TCP stream to an IPv4 or IPv6 address literal and port, and
    /// listens.
    func listen(host: String, port: Int, backlog: Int32 = 64, _ onConnection: @escaping () -> Void) throws(UVError) {
        var storage = sockaddr_storage()
        let rc = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                host.contains(":")
                    ? uv_ip6_addr(host, Int32(port), v6)
                    : v6.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_addr(host, Int32(port), $0) }
            }
        }
        try UVError.check(rc, "address \(host)")
        let tcp = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_tcp_t.self)
        let bound = withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_bind(tcp, $0, 0) }
        }
        try UVError.check(bound, "bind \(host):\(port)")
        try listen(backlog: backlog, onConnection)
    }

    /// Closes the stream once what was written has gone out.
    func closeWhenWritten() {
        if pendingWriteBytes == 0 {
            close()
        } else {
            closeWhenDrained = true
        }
    }

    var pipe: UnsafeMutablePointer<uv_pipe_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_pipe_t.self)
    }

    private var stream: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_stream_t.self)
    }

    /// Binds and listens on a filesystem path.
    func listen(path: String, backlog: Int32 = 128, _ onConnection: @escaping () -> Void) throws(UVError) {
        try UVError.check(uv_pipe_bind(pipe, path), "bind \(path)")
        try listen(backlog: backlog, onConnection)
    }

    /// Listens on an already bound socket (opened with `open(fd:)`).
    func listen(backlog: Int32 = 128, _ onConnection: @escaping () -> Void) throws(UVError) {
        self.onConnection = onConnection
        try UVError.check(
            uv_listen(stream, backlog) { server, status in
                guard status == 0 else { return }
                Handle.owner(UnsafeMutableRawPointer(server), as: Stream.self)?.onConnection?()
            }, "listen")
    }

    func open(fd: Int32) throws(UVError) {
        try UVError.check(uv_pipe_open(pipe, fd), "uv_pipe_open")
    }

    /// Accepts one pending connection of a listening stream.
    func accept(loop: EventLoop) -> Stream? {
        let client = isTCP ? Stream(tcpLoop: loop) : Stream(loop: loop)
        guard uv_accept(stream, client.stream) == 0 else {
            client.close()
            return nil
        }
        return client
    }

    var fileDescriptor: Int32 {
        var fd: uv_os_fd_t = -1
        uv_fileno(handle, &fd)
        return fd
    }

    func startReading() {
        uv_read_start(
            stream,
            { handle, _, buf in
                guard let owner = Handle.owner(UnsafeMutableRawPointer(handle), as: Stream.self), let buf else {
                    return
                }
                if owner.readBuffer == nil {
                    owner.readBuffer = UnsafeMutableRawPointer.allocate(byteCount: Stream.readBufferSize, alignment: 16)
                }
                buf.pointee = uv_buf_init(
                    owner.readBuffer!.assumingMemoryBound(to: CChar.self), UInt32(Stream.readBufferSize))
            },
            { stream, count, buf in
                guard let owner = Handle.owner(UnsafeMutableRawPointer(stream), as: Stream.self) else { return }
                if count > 0, let base = buf?.pointee.base {
                    owner.onRead?(UnsafeRawBufferPointer(start: base, count: count))
                } else if count < 0 {
                    uv_read_stop(stream)
                    owner.onEnd?(Int32(count))
                }
            })
    }

    private final class WriteRequest {
        let owner: Stream
        let storage: UnsafeMutableRawPointer
        let count: Int
        let request: UnsafeMutablePointer<uv_write_t>

        init(owner: Stream, bytes: UnsafeRawBufferPointer) {
            self.owner = owner
            count = bytes.count
            storage = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 1)
            storage.copyMemory(from: bytes.baseAddress!, byteCount: count)
            request = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        }

        deinit {
            storage.deallocate()
            request.deallocate()
        }
    }

    /// Writes all bytes: what the socket takes now is written at once, the
    /// rest is queued in libuv. Errors end up in onEnd through the read side.
    func write(_ bytes: [UInt8]) {
        guard !isClosing, !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { raw in
            var buf = uv_buf_init(
                UnsafeMutablePointer(mutating: raw.baseAddress!.assumingMemoryBound(to: CChar.self)), UInt32(raw.count))
            var offset = 0
            if pendingWriteBytes == 0 {
                let written = uv_try_write(stream, &buf, 1)
                if written > 0 { offset = Int(written) }
            }
            guard offset < raw.count else { return }
            let rest = UnsafeRawBufferPointer(rebasing: raw[offset...])
            let request = WriteRequest(owner: self, bytes: rest)
            pendingWriteBytes += request.count
            request.request.pointee.data = Unmanaged.passRetained(request).toOpaque()
            var restBuf = uv_buf_init(request.storage.assumingMemoryBound(to: CChar.self), UInt32(request.count))
            let rc = uv_write(request.request, stream, &restBuf, 1) { req, _ in
                guard let req, let data = req.pointee.data else { return }
                let request = Unmanaged<WriteRequest>.fromOpaque(data).takeRetainedValue()
                request.owner.pendingWriteBytes -= request.count
                if request.owner.closeWhenDrained, request.owner.pendingWriteBytes == 0 { request.owner.close() }
            }
            if rc < 0 {
                pendingWriteBytes -= request.count
                Unmanaged<WriteRequest>.fromOpaque(request.request.pointee.data!).release()
            }
        }
    }

    override func closed() {
        onRead = nil
        onEnd = nil
        onConnection = nil
        readBuffer?.deallocate()
        readBuffer = nil
    }
}
