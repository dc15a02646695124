// Starts the real tesserad, built by `swift build`, on a real socket in a
// temporary directory, with real plugins copied from the build directory,
// and talks to it with the real varlink client. Nothing is mocked.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The directory holding the built products (tesserad, tessera-worker, the
/// plugins): $TESSERA_BIN_DIR, else the directory of the test bundle.
let binDirectory: String = {
    if let env = getenv("TESSERA_BIN_DIR") { return String(cString: env) }
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let exe = String(decoding: buffer[0..<max(count, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var directory = String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)])
    // swift-testing may run from inside the .xctest bundle directory.
    while !directory.isEmpty, access(directory + "/tesserad", X_OK) != 0 {
        guard let slash = directory.lastIndex(of: "/") else { break }
        directory = String(directory[..<slash])
    }
    return directory
}()

struct HarnessError: Error, CustomStringConvertible {
    let description: String
}

/// Creates a fresh temporary directory.
func makeTemporaryDirectory(_ prefix: String = "tessera-test") -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let result = mkdtemp(&template) else { fatalError("mkdtemp failed") }
    // Searchable, as /var/lib is: microtasks with uids of their own reach
    // their run directory under the state directory through it.
    chmod(result, 0o755)
    return String(cString: result)
}

func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
    precondition(fd >= 0, "cannot create \(path)")
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    fchmod(fd, mode)
    close(fd)
}

func readFile(_ path: String) -> String {
    guard let file = fopen(path, "r") else { return "" }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buffer, 1, buffer.count, file)
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

func copyFile(_ from: String, _ to: String, mode: mode_t) {
    let source = readFileBytes(from)
    let fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, mode)
    precondition(fd >= 0, "cannot create \(to)")
    _ = source.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    fchmod(fd, mode)
    close(fd)
}

func readFileBytes(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    precondition(fd >= 0, "cannot open \(path)")
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return bytes
}

/// The children of a process (tesserad's worker zygote; the zygote's
/// stems and pooled processes), from /proc.
func children(of pid: pid_t) -> [pid_t] {
    let text = readFile("/proc/\(pid)/task/\(pid)/children")
    return text.split(separator: " ").compactMap { pid_t($0) }
}

/// Polls `condition` every 20 ms until it holds or `timeout` seconds pass.
func waitUntil(timeout: Double = 30, _ what: String, _ condition: () throws -> Bool) throws {
    let deadline = now() + timeout
    while now() < deadline {
        if try condition() { return }
        usleep(20_000)
    }
    throw HarnessError(description: "timed out after \(timeout)s waiting for \(what)")
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The test process's environment with `overrides` set and the variables
/// whose names start with one of `dropping` left out, as NAME=value.
func processEnvironment(setting overrides: [String: String] = [:], dropping prefixes: [String] = []) -> [String] {
    var result: [String] = []
    var index = 0
    while let entry = environ[index] {
        let text = String(cString: entry)
        let name = String(text.prefix { $0 != "=" })
        if overrides[name] == nil && !prefixes.contains(where: { name.hasPrefix($0) }) { result.append(text) }
        index += 1
    }
    return result + overrides.map { "\($0.key)=\($0.value)" }
}

/// Starts a program (looked up in PATH) with stdin from `stdin` and stdout
/// and stderr appended to the files named (inherited when nil), and
/// returns its pid. `cleanSignals` gives it an empty signal mask and
/// default dispositions instead of the test thread's.
func spawn(
    _ arguments: [String], environment: [String], stdin: String = "/dev/null", stdout: String? = nil,
    stderr: String? = nil, cleanSignals: Bool = true
) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
    for (fd, path) in [(Int32(1), stdout), (2, stderr)] {
        if let path { posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_CREAT | O_APPEND, 0o644) }
    }
    var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    var cEnvironment: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
    defer {
        cArguments.forEach { free($0) }
        cEnvironment.forEach { free($0) }
    }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    if cleanSignals {
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    }
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, &cArguments, &cEnvironment)
    guard rc == 0 else {
        throw HarnessError(description: "cannot start \(arguments[0]): \(String(cString: strerror(rc)))")
    }
    return pid
}

/// Runs a program to completion, returning its exit status and output.
func runProgram(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil)
    -> (status: Int32, stdout: String, stderr: String)
{
    let directory = makeTemporaryDirectory("tessera-run")
    defer { removeTree(directory) }
    let out = directory + "/out", err = directory + "/err", input = directory + "/in"
    writeFile(input, stdin ?? "")
    let pid: pid_t
    do {
        pid = try spawn(
            arguments, environment: processEnvironment(setting: environment), stdin: input, stdout: out, stderr: err)
    } catch {
        return (127, "", "\(error)")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (code, readFile(out), readFile(err))
}

/// The names in a directory, without "." and "..".
func directoryEntries(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Removes a file or a directory tree.
func removeTree(_ path: String) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if info.st_mode & S_IFMT == S_IFDIR {
        directoryEntries(path).forEach { removeTree(path + "/" + $0) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

/// A tesserad started for one test.
final class Daemon {
    let directory: String
    /// The socket clients use (tests of socket activation change it).
    var socket: String
    let logPath: String
    let configPath: String
    /// When set, the daemon runs as this user (through setpriv), rootless.
    let runAs: (uid: uid_t, gid: gid_t)?
    /// --log-level, or nil to leave the level to the configuration.
    let logLevel: String?
    private(set) var pid: pid_t = 0

    /// Writes a configuration with the given jobs (file name -> YAML) and
    /// plugins (product names such as "shell"), then starts the daemon and
    /// waits until it answers on its socket.
    init(
        jobs: [String: String] = [:], plugins: [String] = ["shell", "noop"], slots: Int = 2,
        extraConfig: String = "", runAs: (uid: uid_t, gid: gid_t)? = nil, logLevel: String? = "debug",
        start: Bool = true
    ) throws {
        self.runAs = runAs
        self.logLevel = logLevel
        directory = makeTemporaryDirectory()
        if runAs != nil { chmod(directory, 0o777) }
        socket = directory + "/tessera.sock"
        logPath = directory + "/tesserad.log"
        configPath = directory + "/tessera.yaml"
        mkdir(directory + "/plugins", 0o755)
        mkdir(directory + "/jobs", 0o755)
        for plugin in plugins {
            copyFile("\(binDirectory)/libtessera-\(plugin).so", "\(directory)/plugins/\(plugin).so", mode: 0o755)
        }
        for (name, text) in jobs {
            writeFile("\(directory)/jobs/\(name)", text)
        }
        writeFile(
            configPath,
            """
            socket: \(socket)
            state_dir: \(directory)/state
            plugin_dirs: [\(directory)/plugins]
            jobs_dirs: [\(directory)/jobs]
            slots: \(slots)
            \(extraConfig)
            """)
        if start { try self.start() }
    }

    var pluginDirectory: String { directory + "/plugins" }
    var jobsDirectory: String { directory + "/jobs" }

    /// Starts tesserad, optionally behind a launcher (such as
    /// systemd-socket-activate) and with extra environment variables, and
    /// waits until `socket` answers.
    func start(launcher: [String] = [], environment: [String: String] = [:]) throws {
        var arguments = ["\(binDirectory)/tesserad", "--config", configPath]
        if let logLevel { arguments += ["--log-level", logLevel] }
        if let runAs {
            arguments =
                ["/usr/bin/setpriv", "--reuid=\(runAs.uid)", "--regid=\(runAs.gid)", "--clear-groups", "--"]
                + arguments
        }
        // Spawned with the test thread's signal mask on purpose: tesserad
        // must clear an inherited mask itself (it did not once, and hung).
        pid = try spawn(
            launcher + arguments, environment: processEnvironment(setting: environment), stdout: logPath,
            stderr: logPath, cleanSignals: false)
        try waitUntil(timeout: 30, "tesserad to listen on \(socket)") {
            guard isAlive else { throw HarnessError(description: "tesserad exited at start-up:\n\(log)") }
            return (try? VarlinkClient(path: socket)) != nil
        }
    }

    var log: String { readFile(logPath) }

    var isAlive: Bool {
        guard pid > 0 else { return false }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid {
            pid = 0
            return false
        }
        return true
    }

    func client() throws -> VarlinkClient { try VarlinkClient(path: socket) }

    func call(_ method: String, _ parameters: JSON = .object([])) throws -> JSON {
        try client().call("io.tessera.Manager." + method, parameters)
    }

    func startRun(_ job: String, params: [String: String] = [:]) throws -> Int64 {
        var parameters: [(String, JSON)] = [("job", .string(job))]
        if !params.isEmpty { parameters.append(("params", .object(params.map { ($0.key, .string($0.value)) }))) }
        guard let id = try call("StartRun", .object(parameters))["id"]?.intValue else {
            throw HarnessError(description: "StartRun returned no id")
        }
        return id
    }

    /// Follows a run with WatchRun until it ends and returns its final record.
    func wait(forRun id: Int64, timeout: Double = 60) throws -> RunInfo {
        let client = try self.client()
        var final: RunInfo?
        let deadline = now() + timeout
        try client.stream("io.tessera.Manager.WatchRun", ["id": .int(id)]) { parameters in
            guard now() < deadline else { throw HarnessError(description: "run \(id) did not end in \(timeout)s") }
            let run = RunInfo(json: parameters["run"] ?? .null)
            if let run, run.state.isFinal { final = run }
            return final == nil
        }
        guard let final else { throw HarnessError(description: "WatchRun ended without a final state for run \(id)") }
        return final
    }

    func tasks(_ run: Int64, state: TaskState? = nil) throws -> [TaskInfo] {
        var parameters: [(String, JSON)] = [("run", .int(run))]
        if let state { parameters.append(("state", .string(state.rawValue))) }
        return (try call("ListTasks", .object(parameters))["tasks"]?.arrayValue ?? []).compactMap(TaskInfo.init(json:))
    }

    func output(_ run: Int64, _ index: Int) throws -> TaskOutput? {
        TaskOutput(json: try call("GetTaskOutput", ["run": .int(run), "index": .int(Int64(index))])["output"] ?? .null)
    }

    /// The tessera CLI against this daemon.
    func cli(_ arguments: [String]) -> (status: Int32, stdout: String, stderr: String) {
        runProgram(["\(binDirectory)/tessera"] + arguments, environment: ["TESSERA_SOCKET": socket])
    }

    /// Sends a signal and waits for the daemon to exit; returns its status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) -> Int32 {
        guard pid > 0 else { return -1 }
        kill(pid, signal)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        pid = 0
        return status
    }

    deinit {
        stop(signal: SIGKILL)
        removeTree(directory)
    }
}
