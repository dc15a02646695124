// What the plugins in the plugin directories declare, read without running
// any plugin code in the daemon: `tessera-worker describe FILE...` loads
// them in a short-lived process (the same loader the zygote uses) and prints
// their declarations as JSON. A plugin whose initialisation crashes or hangs
// takes down only that process.

import TesseraConfig
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

public struct PluginInfo: Sendable {
    public var name: String
    public var version: String
    public var path: String
    public var description: String
    public var executors: [ExecutorSpec]
    /// Which file this was: a plugin replaced under the same name has
    /// another, and the worker must load it anew.
    public var identity: FileIdentity
}

/// Device, inode, size and modification time of a file.
public struct FileIdentity: Sendable, Equatable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let modified: Int64
    let modifiedNanoseconds: Int

    init(path: String) {
        var info = stat()
        if stat(path, &info) != 0 { info = stat() }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
    }
}

public struct PluginCatalog: Sendable {
    public var plugins: [PluginInfo] = []
    /// One message per refused plugin file, naming the file and the reason.
    public var problems: [String] = []
    public var executors: ExecutorCatalog { ExecutorCatalog(plugins.flatMap(\.executors)) }
    public var pluginPaths: [String] { plugins.map(\.path) }
    public var pluginIdentities: [FileIdentity] { plugins.map(\.identity) }

    /// The `*.so` files of the given directories, sorted within each one.
    static func pluginFiles(in directories: [String]) -> (files: [String], problems: [String]) {
        var files: [String] = []
        var problems: [String] = []
        for directory in directories {
            guard let entries = directoryEntries(directory) else {
                problems.append("\(directory): cannot read plugin directory: \(String(cString: strerror(errno)))")
                continue
            }
            let names = entries.filter { $0.hasSuffix(".so") }
            let base = directory.hasSuffix("/") ? directory : directory + "/"
            files += names.sorted().map { base + $0 }
        }
        return (files, problems)
    }

    /// Describes every plugin of the directories with the worker binary.
    public static func load(directories: [String], worker: String) -> PluginCatalog {
        let (files, listProblems) = pluginFiles(in: directories)
        var catalog = PluginCatalog()
        catalog.problems = listProblems
        guard !files.isEmpty else { return catalog }
        var descriptions: [JSON] = []
        switch runDescribe(worker: worker, files: files) {
        case .success(let json):
            descriptions = json["plugins"]?.arrayValue ?? []
        case .failure where files.count > 1:
            // One plugin's initialisation crashed or hung: describe each file
            // on its own, so that the others still load.
            for file in files {
                switch runDescribe(worker: worker, files: [file]) {
                case .success(let json): descriptions += json["plugins"]?.arrayValue ?? []
                case .failure(let problem): catalog.problems.append(problem.message)
                }
            }
        case .failure(let problem):
            catalog.problems.append(problem.message)
        }
        var providers: [String: String] = [:]
        for plugin in descriptions {
            let path = plugin["path"]?.stringValue ?? "?"
            guard plugin["ok"]?.boolValue == true else {
                catalog.problems.append(plugin["error"]?.stringValue ?? "\(path): refused")
                continue
            }
            // Described one by one, plugins are not checked against each
            // other by the worker; the first file keeps an executor name.
            let names = (plugin["executors"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
            if let taken = names.first(where: { providers[$0] != nil }) {
                catalog.problems.append(
                    "\(path): executor \"\(taken)\" is already provided by \(providers[taken] ?? "?")")
                continue
            }
            names.forEach { providers[$0] = path }
            let name = plugin["name"]?.stringValue ?? path
            let executors = (plugin["executors"]?.arrayValue ?? []).map { e in
                ExecutorSpec(
                    name: e["name"]?.stringValue ?? "", plugin: name, pluginPath: path,
                    description: e["description"]?.stringValue ?? "",
                    params: (e["params"]?.arrayValue ?? []).map { p in
                        ParamSpec(
                            name: p["name"]?.stringValue ?? "",
                            type: ParamType(rawValue: p["type"]?.stringValue ?? "") ?? .string,
                            required: p["required"]?.boolValue ?? false,
                            defaultValue: p["default"]?.stringValue,
                            description: p["description"]?.stringValue ?? "")
                    })
            }
            catalog.plugins.append(
                PluginInfo(
                    name: name, version: plugin["version"]?.stringValue ?? "",
                    path: path, description: plugin["description"]?.stringValue ?? "", executors: executors,
                    identity: FileIdentity(path: path)))
        }
        return catalog
    }

    struct DescribeFailure: Error { let message: String }

    /// How long plugin initialisation may take before the describe process
    /// is killed.
    static let describeTimeoutMilliseconds: Int32 = 10_000

    /// Runs `worker describe files...` and parses its JSON output.
    static func runDescribe(worker: String, files: [String]) -> Result<JSON, DescribeFailure> {
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else {
            return .failure(DescribeFailure(message: "pipe: \(String(cString: strerror(errno)))"))
        }
        _ = fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)

        let arguments = [worker, "describe"] + files
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var cEnvironment: [UnsafeMutablePointer<CChar>?] = workerEnvironment.map { strdup($0) } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, worker, &actions, nil, &cArguments, &cEnvironment)
        close(pipeFDs[1])
        guard rc == 0 else {
            close(pipeFDs[0])
            return .failure(DescribeFailure(message: "cannot start \(worker): \(String(cString: strerror(rc)))"))
        }

        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var timedOut = false
        let deadline = monotonicMilliseconds() + UInt64(describeTimeoutMilliseconds)
        while true {
            let now = monotonicMilliseconds()
            guard now < deadline else { timedOut = true; break }
            var pfd = pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(deadline - now))
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { timedOut = true; break }
            let n = buffer.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            output.append(contentsOf: buffer[0..<n])
            if output.count > 64 << 20 { timedOut = true; break }
        }
        close(pipeFDs[0])
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if timedOut {
            return .failure(
                DescribeFailure(
                    message: "loading plugins took longer than \(describeTimeoutMilliseconds / 1000)s; "
                        + "a plugin's initialisation hangs (files: \(files.joined(separator: ", ")))"))
        }
        let termination = status & 0x7f
        if termination != 0 {
            let message =
                files.count == 1
                ? "\(files[0]): its initialisation crashed (\(signalName(termination))); refusing to load"
                : "a plugin crashed while loading (\(signalName(termination))); files: \(files.joined(separator: ", "))"
            return .failure(DescribeFailure(message: message))
        }
        let text = String(decoding: output, as: UTF8.self)
        do {
            return .success(try JSON.parse(text))
        } catch {
            return .failure(DescribeFailure(message: "\(worker) describe printed invalid JSON: \(error)"))
        }
    }
}

func monotonicMilliseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}

func wallClockSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
