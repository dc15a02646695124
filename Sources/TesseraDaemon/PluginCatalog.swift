// What the plugins in the plugin directories declare, read without running
// any plugin code in the daemon: `tessera-worker describe FILE...` loads
// them in a short-lived process (the same loader the zygote uses) and prints
// their declarations as JSON. A plugin whose initialisation crashes or hangs
// takes down only that process.

import TesseraConfig
import TesseraEngine
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

    /// Describes every plugin of the directories with the worker binary,
    /// blocking until it is done: for the start, before the daemon's loop
    /// serves anyone, and for `tesserad --check`. It is PluginDescription,
    /// run on a loop of its own.
    public static func load(directories: [String], worker: String, timeout: UInt64) -> PluginCatalog {
        let loop = EventLoop()
        var catalog = PluginCatalog()
        let description = PluginDescription(
            loop: loop, directories: directories, worker: worker, timeout: timeout
        ) { catalog = $0 }
        description.start()
        loop.run()
        if !loop.closeAll() { logWarning("describing plugins left handles open") }
        return catalog
    }

    /// The catalog of what `tessera-worker describe` printed, with every
    /// refusal, and the plugins whose executors another file provides
    /// already, as problems after `problems`.
    static func assemble(_ descriptions: [JSON], problems: [String]) -> PluginCatalog {
        var catalog = PluginCatalog(problems: problems)
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

    /// The most a description may print: the worker bounds what one plugin
    /// may declare, so anything near this is not a description.
    static let describeOutputLimit = 4 << 20

    /// What one run of `worker describe files...` amounts to.
    static func interpret(
        _ outcome: DescribeProcess.Outcome, worker: String, files: [String], timeout: UInt64
    ) -> Result<JSON, DescribeFailure> {
        let named = files.joined(separator: ", ")
        if outcome.timedOut {
            let message =
                files.count == 1
                ? "\(files[0]): its initialisation took longer than \(formatDuration(timeout)) "
                    + "(plugin_timeout); refusing to load"
                : "loading plugins took longer than \(formatDuration(timeout)); a plugin's initialisation hangs "
                    + "(files: \(named))"
            return .failure(DescribeFailure(message: message))
        }
        if outcome.tooLarge {
            return .failure(
                DescribeFailure(
                    message: "\(worker) describe printed more than \(formatSize(UInt64(describeOutputLimit))) "
                        + "(files: \(named)); refusing to load"))
        }
        if outcome.signal != 0 {
            let message =
                files.count == 1
                ? "\(files[0]): its initialisation crashed (\(signalName(outcome.signal))); refusing to load"
                : "a plugin crashed while loading (\(signalName(outcome.signal))); files: \(named)"
            return .failure(DescribeFailure(message: message))
        }
        let text = String(decoding: outcome.output, as: UTF8.self)
        do {
            return .success(try JSON.parse(text))
        } catch {
            return .failure(DescribeFailure(message: "\(worker) describe printed invalid JSON: \(error)"))
        }
    }
}

/// Describes the plugins on an event loop, which at a reload goes on serving
/// clients and enforcing limits meanwhile: one describe process for every
/// file, then, if it crashed or hung, one per file, at once, so that the
/// others still load.
final class PluginDescription {
    private let loop: EventLoop
    private let worker: String
    private let timeout: UInt64
    private let directories: [String]
    private var processes: [DescribeProcess] = []
    private var completion: ((PluginCatalog) -> Void)?

    init(
        loop: EventLoop, directories: [String], worker: String, timeout: UInt64,
        completion: @escaping (PluginCatalog) -> Void
    ) {
        self.loop = loop
        self.directories = directories
        self.worker = worker
        self.timeout = timeout
        self.completion = completion
    }

    /// Starts describing. `completion` may be called before this returns
    /// (no plugin files, or no process could be started), so the owner
    /// keeps the object before it calls start().
    func start() {
        let (files, problems) = PluginCatalog.pluginFiles(in: directories)
        guard !files.isEmpty else {
            finish(PluginCatalog(problems: problems))
            return
        }
        describe(files) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let json):
                self.finish(PluginCatalog.assemble(json["plugins"]?.arrayValue ?? [], problems: problems))
            case .failure(let problem) where files.count == 1:
                self.finish(PluginCatalog(problems: problems + [problem.message]))
            case .failure:
                self.describeEach(files, problems: problems)
            }
        }
    }

    private func describeEach(_ files: [String], problems: [String]) {
        var results: [Result<JSON, PluginCatalog.DescribeFailure>?] = Array(repeating: nil, count: files.count)
        var left = files.count
        for (position, file) in files.enumerated() {
            describe([file]) { [weak self] result in
                guard let self else { return }
                results[position] = result
                left -= 1
                guard left == 0 else { return }
                var descriptions: [JSON] = []
                var all = problems
                for result in results {
                    switch result {
                    case .success(let json)?: descriptions += json["plugins"]?.arrayValue ?? []
                    case .failure(let problem)?: all.append(problem.message)
                    case nil: break
                    }
                }
                self.finish(PluginCatalog.assemble(descriptions, problems: all))
            }
        }
    }

    private func describe(_ files: [String], _ done: @escaping (Result<JSON, PluginCatalog.DescribeFailure>) -> Void) {
        do {
            let process = try DescribeProcess(
                loop: loop, executable: worker, files: files, timeout: timeout,
                outputLimit: PluginCatalog.describeOutputLimit
            ) { [weak self] outcome in
                guard let self else { return }
                self.processes.removeAll { $0.isClosing }
                done(PluginCatalog.interpret(outcome, worker: self.worker, files: files, timeout: self.timeout))
            }
            processes.append(process)
        } catch {
            done(.failure(PluginCatalog.DescribeFailure(message: "cannot start \(worker): \(error)")))
        }
    }

    private func finish(_ catalog: PluginCatalog) {
        let completion = self.completion
        self.completion = nil
        completion?(catalog)
    }

    /// Kills what is still describing; the completion is not called.
    func cancel() {
        completion = nil
        processes.forEach { $0.kill() }
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

func monotonicMicroseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
}
