// The daemon's side of one worker zygote: starting it with uv_spawn (the
// daemon itself never forks), the frames of tessera_wire.h in both
// directions, and noticing when it dies.

internal import CLibUV
internal import CTesseraWire

#if canImport(Glibc)
    import Glibc
#endif

/// A frame being built for the worker, in the field encodings of
/// tessera_wire.h.
struct FrameWriter {
    private(set) var bytes: [UInt8] = [0, 0, 0, 0]

    init(type: UInt8) {
        bytes.append(type)
    }

    mutating func u8(_ v: UInt8) { bytes.append(v) }

    mutating func u32(_ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func u64(_ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func str(_ s: String) {
        let utf8 = s.utf8
        u32(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// The finished frame with its length prefix filled in.
    func finished() -> [UInt8] {
        var out: [UInt8] = []
        append(to: &out)
        return out
    }

    /// Appends the frame, with its length, to `out`.
    func append(to out: inout [UInt8]) {
        withUnsafeBytes(of: UInt32(bytes.count - 4).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: bytes[4...])
    }
}

/// Reads the fields of one received frame; every read is bounds-checked and
/// a short frame is a protocol error, not a crash.
struct FrameReader {
    let bytes: [UInt8]
    var offset = 0

    struct Truncated: Error {}

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func take(_ n: Int) throws(Truncated) -> ArraySlice<UInt8> {
        guard n >= 0, offset + n <= bytes.count else { throw Truncated() }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    mutating func u8() throws(Truncated) -> UInt8 { try take(1).first! }

    mutating func u32() throws(Truncated) -> UInt32 {
        try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func u64() throws(Truncated) -> UInt64 {
        try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func i32() throws(Truncated) -> Int32 { Int32(bitPattern: try u32()) }

    mutating func f64() throws(Truncated) -> Double { Double(bitPattern: try u64()) }

    mutating func bytesField() throws(Truncated) -> [UInt8] {
        let count = Int(try u32())
        return Array(try take(count))
    }

    mutating func str() throws(Truncated) -> String {
        String(decoding: try bytesField(), as: UTF8.self)
    }
}

/// What the worker reports about a finished microtask (TW_MSG_DONE).
struct WorkerCompletion {
    enum End { case exited(Int32), signaled(Int32), failed(String) }
    var token: UInt64
    var end: End
    var userMicros: UInt64
    var systemMicros: UInt64
    var maxRSSKiB: UInt64
    var wallMicros: UInt64
    /// Read by the worker from /proc when a fatal signal arrived or the
    /// process exited with a failure; 0 when it was not read.
    var peakAddressSpace: UInt64
    var flags: UInt32
    var result: [UInt8]
    var stdout: [UInt8]
    var stderr: [UInt8]
    /// The executor's last error-level log message.
    var errorLine: [UInt8] = []

    func has(_ flag: UInt32) -> Bool { flags & flag != 0 }
}

enum WorkerEvent {
    case hello(pid: Int32, problems: [String])
    case started(token: UInt64, pid: Int32)
    case progress(token: UInt64, fraction: Double)
    case done(WorkerCompletion)
    /// What a running microtask wrote from the offsets a PEEK asked for.
    case output(token: UInt64, offsets: (stdout: UInt64, stderr: UInt64), stdout: [UInt8], stderr: [UInt8])
}

/// The whole environment tessera-worker starts with, in every mode. The
/// worker's memory is what every microtask's process starts as a copy of,
/// so nothing of the daemon's own environment (which may hold secrets)
/// goes there; microtasks get their stage's environment on top of this.
let workerEnvironment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]

/// uv_spawn of the tessera-worker binary: `arguments` (argv[0] included),
/// `workerEnvironment` as its whole environment, `stdio` as descriptors 0
/// to 2, and `onExit` called on the loop when it exits. Returns what
/// uv_spawn returns; the process handle is initialised either way.
func spawnWorkerBinary(
    loop: EventLoop, process: UnsafeMutablePointer<uv_handle_t>, arguments: [String],
    stdio: [uv_stdio_container_t], onExit: uv_exit_cb
) -> Int32 {
    var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    var cEnvironment: [UnsafeMutablePointer<CChar>?] = workerEnvironment.map { strdup($0) } + [nil]
    defer {
        cArguments.forEach { free($0) }
        cEnvironment.forEach { free($0) }
    }
    var stdio = stdio
    var options = uv_process_options_t()
    return arguments[0].withCString { file in
        cArguments.withUnsafeMutableBufferPointer { args in
            cEnvironment.withUnsafeMutableBufferPointer { env in
                stdio.withUnsafeMutableBufferPointer { stdio in
                    options.file = file
                    options.args = args.baseAddress
                    options.env = env.baseAddress
                    options.stdio = stdio.baseAddress
                    options.stdio_count = Int32(stdio.count)
                    options.exit_cb = onExit
                    let raw = UnsafeMutableRawPointer(process).assumingMemoryBound(to: uv_process_t.self)
                    return uv_spawn(loop.raw, raw, &options)
                }
            }
        }
    }
}

/// One running tessera-worker zygote.
final class WorkerProcess: Handle {
    private let channel: Stream
    private var inbound: [UInt8] = []
    private var onEvent: ((WorkerEvent) -> Void)?
    private var onExit: ((String) -> Void)?
    private var exited = false
    let executable: String
    private(set) var pid: Int32 = 0

    /// Spawns `executable zygote plugins...` with a socket on its stdin.
    init(
        loop: EventLoop, executable: String, plugins: [String], onEvent: @escaping (WorkerEvent) -> Void,
        onExit: @escaping (String) -> Void
    ) throws(UVError) {
        self.executable = executable
        self.onEvent = onEvent
        self.onExit = onExit
        channel = Stream(loop: loop)
        super.init(type: UV_PROCESS)

        var stdio = [uv_stdio_container_t](repeating: uv_stdio_container_t(), count: 3)
        stdio[0].flags = uv_stdio_flags(
            rawValue: UV_CREATE_PIPE.rawValue | UV_READABLE_PIPE.rawValue | UV_WRITABLE_PIPE.rawValue)
        stdio[0].data.stream = UnsafeMutableRawPointer(channel.pipe).assumingMemoryBound(to: uv_stream_t.self)
        stdio[1].flags = UV_INHERIT_FD
        stdio[1].data.fd = 2
        stdio[2].flags = UV_INHERIT_FD
        stdio[2].data.fd = 2
        let rc = spawnWorkerBinary(
            loop: loop, process: handle, arguments: [executable, "zygote"] + plugins, stdio: stdio
        ) { process, status, signal in
            guard let owner = Handle.owner(UnsafeMutableRawPointer(process), as: WorkerProcess.self) else { return }
            owner.processExited(signal != 0 ? "killed by \(signalName(signal))" : "exited with status \(status)")
        }
        if rc < 0 {
            channel.close()
            // A failed uv_spawn still initialised the handle; it must be closed.
            retainForCallbacks()
            super.close()
            throw UVError(call: "spawn \(executable)", code: rc)
        }
        retainForCallbacks()
        pid = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_process_t.self).pointee.pid
        channel.onRead = { [unowned self] bytes in self.received(bytes) }
        channel.onEnd = { [unowned self] _ in self.processExited("closed its channel") }
        channel.startReading()
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        inbound.append(contentsOf: bytes)
        var offset = 0
        while inbound.count - offset >= 4 {
            let length = Int(
                UInt32(inbound[offset]) | UInt32(inbound[offset + 1]) << 8 | UInt32(inbound[offset + 2]) << 16
                    | UInt32(inbound[offset + 3]) << 24)
            guard length >= 1, length <= Int(TW_MAX_FRAME) else {
                protocolError("frame of \(length) bytes")
                return
            }
            guard inbound.count - offset - 4 >= length else { break }
            let frame = Array(inbound[(offset + 4)..<(offset + 4 + length)])
            offset += 4 + length
            do {
                try decode(frame)
            } catch {
                protocolError("truncated frame of type \(frame[0])")
                return
            }
        }
        if offset > 0 { inbound.removeFirst(offset) }
    }

    private func decode(_ frame: [UInt8]) throws(FrameReader.Truncated) {
        var r = FrameReader(frame)
        let type = UInt32(try r.u8())
        switch type {
        case UInt32(TW_MSG_HELLO.rawValue):
            let version = try r.u32()
            let pid = Int32(bitPattern: try r.u32())
            guard version == UInt32(TW_PROTOCOL_VERSION) else {
                protocolError("speaks worker protocol \(version), the daemon speaks \(TW_PROTOCOL_VERSION)")
                return
            }
            let count = try r.u32()
            var problems: [String] = []
            for _ in 0..<min(count, 10_000) { problems.append(try r.str()) }
            onEvent?(.hello(pid: pid, problems: problems))
        case UInt32(TW_MSG_STARTED.rawValue):
            let token = try r.u64()
            onEvent?(.started(token: token, pid: Int32(bitPattern: try r.u32())))
        case UInt32(TW_MSG_PROGRESS.rawValue):
            let token = try r.u64()
            onEvent?(.progress(token: token, fraction: try r.f64()))
        case UInt32(TW_MSG_DONE.rawValue):
            let token = try r.u64()
            let how = try r.u8()
            let code = try r.i32()
            let signal = try r.i32()
            var c = WorkerCompletion(
                token: token, end: .exited(code), userMicros: try r.u64(), systemMicros: try r.u64(),
                maxRSSKiB: try r.u64(), wallMicros: try r.u64(), peakAddressSpace: try r.u64(), flags: try r.u32(),
                result: try r.bytesField(), stdout: try r.bytesField(), stderr: try r.bytesField())
            let workerError = try r.str()
            c.errorLine = try r.bytesField()
            switch UInt32(how) {
            case UInt32(TW_END_SIGNALED.rawValue): c.end = .signaled(signal)
            case UInt32(TW_END_FAILED.rawValue): c.end = .failed(workerError)
            default: c.end = .exited(code)
            }
            onEvent?(.done(c))
        case UInt32(TW_MSG_OUTPUT.rawValue):
            let token = try r.u64()
            let offsets = (stdout: try r.u64(), stderr: try r.u64())
            onEvent?(.output(token: token, offsets: offsets, stdout: try r.bytesField(), stderr: try r.bytesField()))
        default:
            protocolError("unknown frame type \(type)")
        }
    }

    private func protocolError(_ what: String) {
        logError("worker \(pid): protocol error: \(what); stopping it")
        kill(signal: SIGKILL)
    }

    /// Frames queued in this loop iteration, written together by
    /// flushFrames() (at the iteration's end, before its commit): one
    /// write instead of one per microtask started.
    private var outgoing: [UInt8] = []

    func send(_ frame: FrameWriter) {
        guard !exited else { return }
        frame.append(to: &outgoing)
    }

    /// Writes the frames queued since the last call.
    func flushFrames() {
        guard !outgoing.isEmpty else { return }
        if !exited { channel.write(outgoing) }
        outgoing.removeAll(keepingCapacity: outgoing.capacity <= 1 << 20)
    }

    func kill(signal: Int32) {
        guard !exited else { return }
        uv_process_kill(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_process_t.self), signal)
    }

    /// Asks the worker to stop: closing its channel makes it kill its
    /// microtasks' process groups and exit.
    func shutdown() {
        flushFrames()
        channel.close()
    }

    private func processExited(_ how: String) {
        guard !exited else { return }
        exited = true
        channel.close()
        let callback = onExit
        onExit = nil
        onEvent = nil
        callback?(how)
        close()
    }

    override func closed() {
        onEvent = nil
        onExit = nil
    }
}

/// SIGSEGV, SIGKILL...: the conventional name of a signal number.
func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGHUP: return "SIGHUP"
    case SIGINT: return "SIGINT"
    case SIGQUIT: return "SIGQUIT"
    case SIGILL: return "SIGILL"
    case SIGTRAP: return "SIGTRAP"
    case SIGABRT: return "SIGABRT"
    case SIGBUS: return "SIGBUS"
    case SIGFPE: return "SIGFPE"
    case SIGKILL: return "SIGKILL"
    case SIGUSR1: return "SIGUSR1"
    case SIGSEGV: return "SIGSEGV"
    case SIGUSR2: return "SIGUSR2"
    case SIGPIPE: return "SIGPIPE"
    case SIGALRM: return "SIGALRM"
    case SIGTERM: return "SIGTERM"
    case SIGXCPU: return "SIGXCPU"
    case SIGXFSZ: return "SIGXFSZ"
    case SIGSYS: return "SIGSYS"
    default: return "signal \(signal)"
    }
}

/// One `tessera-worker describe FILE...` run beside the loop: its standard
/// output is collected (up to `outputLimit` bytes), it is killed when it
/// takes longer than `timeout` milliseconds, and `completion` gets what it
/// printed and how it ended once it has exited and its output has ended.
final class DescribeProcess: Handle {
    struct Outcome {
        var output: [UInt8] = []
        /// The signal that ended it, 0 if it exited.
        var signal: Int32 = 0
        var timedOut = false
        var tooLarge = false
    }

    private let output: Stream
    private let timer: Timer
    private var outcome = Outcome()
    private var exited = false
    private var ended = false
    private var completion: ((Outcome) -> Void)?
    private let outputLimit: Int

    init(
        loop: EventLoop, executable: String, files: [String], timeout: UInt64, outputLimit: Int,
        completion: @escaping (Outcome) -> Void
    ) throws(UVError) {
        self.completion = completion
        self.outputLimit = outputLimit
        output = Stream(loop: loop)
        timer = Timer(loop: loop)
        super.init(type: UV_PROCESS)

        var stdio = [uv_stdio_container_t](repeating: uv_stdio_container_t(), count: 3)
        stdio[0].flags = UV_IGNORE
        stdio[1].flags = uv_stdio_flags(rawValue: UV_CREATE_PIPE.rawValue | UV_WRITABLE_PIPE.rawValue)
        stdio[1].data.stream = UnsafeMutableRawPointer(output.pipe).assumingMemoryBound(to: uv_stream_t.self)
        stdio[2].flags = UV_INHERIT_FD
        stdio[2].data.fd = 2
        let rc = spawnWorkerBinary(
            loop: loop, process: handle, arguments: [executable, "describe"] + files, stdio: stdio
        ) { process, _, signal in
            Handle.owner(UnsafeMutableRawPointer(process), as: DescribeProcess.self)?.exited(signal: signal)
        }
        retainForCallbacks()
        if rc < 0 {
            output.close()
            timer.close()
            super.close()
            throw UVError(call: "spawn \(executable) describe", code: rc)
        }
        output.onRead = { [unowned self] bytes in self.received(bytes) }
        output.onEnd = { [unowned self] _ in
            self.ended = true
            self.finishIfDone()
        }
        output.startReading()
        timer.start(after: timeout) { [unowned self] in
            self.outcome.timedOut = true
            self.kill()
        }
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        guard !outcome.tooLarge else { return }
        outcome.output.append(contentsOf: bytes)
        if outcome.output.count > outputLimit {
            outcome.tooLarge = true
            outcome.output = []
            kill()
        }
    }

    /// Ends it at once (a timeout, too much output, the daemon stopping).
    func kill() {
        guard !exited else { return }
        uv_process_kill(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_process_t.self), SIGKILL)
    }

    private func exited(signal: Int32) {
        exited = true
        outcome.signal = signal
        finishIfDone()
        // A process the plugin started may hold the pipe open: what came
        // until a moment after the exit is all there is.
        if !ended {
            timer.start(after: 1000) { [unowned self] in
                self.ended = true
                self.finishIfDone()
            }
        }
    }

    private func finishIfDone() {
        guard exited, ended, let completion else { return }
        self.completion = nil
        timer.close()
        output.close()
        close()
        completion(outcome)
    }

    override func closed() { completion = nil }
}
