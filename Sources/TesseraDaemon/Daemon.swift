// tesserad's state and lifecycle: configuration, plugins and jobs, the
// store, the worker zygote, the control socket, signals, and the flush at
// the end of every loop iteration that makes changes durable before any
// client hears of them.

import TesseraConfig
import TesseraEngine
import TesseraProtocol
import TesseraStore

#if canImport(Glibc)
    import Glibc
#endif

/// Everything the daemon was started with and can reload.
struct LoadedConfiguration {
    var server: ServerConfig
    var catalog: PluginCatalog
    var jobs: [String: JobDefinition]
}

public final class Daemon {
    let loop = EventLoop()
    let configPath: String
    let workerExecutable: String
    var loaded: LoadedConfiguration {
        didSet { protectedPaths = loaded.server.protectedPaths }
    }
    /// `config.protectedPaths`, resolved once per configuration rather
    /// than for every run (a realpath of each).
    var protectedPaths: [String]
    /// The names of the users who started runs, by uid, looked up once
    /// per configuration (a read of the user database for each StartRun).
    var userNames: [UInt32: String] = [:]
    var config: ServerConfig { loaded.server }
    let store: Store
    let startedMonotonic = monotonicMilliseconds()

    /// Runs, stages and microtasks: the engine decides, the daemon carries out.
    let engine: Engine
    // The daemon's side of runs and microtasks (see Runs.swift, Scheduling.swift).
    var runShells: [Int64: RunShell] = [:]
    var taskShells: [UInt64: TaskShell] = [:]
    var taskProgress: [UInt64: Double] = [:]
    /// The process of each running microtask, as the worker reported it.
    var taskPIDs: [UInt64: Int32] = [:]
    let dynamicUsers = DynamicUsers()
    /// The uids a stage was lent and holds between its microtasks (its
    /// pooled processes or stems run as them), given back when it ends.
    var stageUIDs: [StageKey: [UInt32]] = [:]
    /// The uid of each lane (Engine) whose microtasks have one: a pooled
    /// process and the microtasks handed to it ahead share it, and it goes
    /// back with the lane's last microtask.
    var laneUIDs: [UInt64: UInt32] = [:]
    var stageIDs: [StageKey: UInt32] = [:]
    var sandboxes: [StageKey: ResolvedSandbox] = [:]
    /// Pressure files already reported as unreadable.
    var pressureUnreadable: Set<String> = []
    /// Items sent with AddItems, per connection, until a StartRun takes them.
    var uploads: [ObjectIdentifier: ItemUpload] = [:]
    var nextStageID: UInt32 = 0
    var workers: [WorkerSlot] = []
    var currentWorker: WorkerSlot?
    var workerRestartDelay: UInt64 = 100
    lazy var limitTimer = Timer(loop: loop)
    var limitTimerArmed = false
    lazy var restartTimer = Timer(loop: loop)
    /// Fires when the next schedule is due (or every minute, to notice a
    /// wall clock that was set).
    lazy var scheduleTimer = Timer(loop: loop)
    /// Fires when the engine's earliest waiting retry is due.
    lazy var retryTimer = Timer(loop: loop)
    var retryTimerDue: UInt64?
    lazy var watchTimer = Timer(loop: loop)
    lazy var resultTimer = Timer(loop: loop)
    lazy var eventTimer = Timer(loop: loop)
    lazy var logTimer = Timer(loop: loop)
    lazy var retentionTimer = Timer(loop: loop)
    lazy var deleteTimer = Timer(loop: loop)
    var deleteTimerArmed = false
    lazy var retentionSoonTimer = Timer(loop: loop)
    let metrics = MetricsRegistry()
    var metricsListener: Stream?
    var metricsConnections: [ObjectIdentifier: MetricsConnection] = [:]
    lazy var metricsSweep = Timer(loop: loop)
    var retentionSoonArmed = false
    var logTimerArmed = false
    /// Connections with a StreamOutput call in progress.
    var logFollowers: [ObjectIdentifier: Connection] = [:]
    /// Set when a StreamOutput call began this iteration.
    var logsStarting = false
    /// Set when a ListEvents stream began this iteration.
    var eventsStarting = false
    lazy var pressureTimer = Timer(loop: loop)
    var pressureTimerArmed = false
    /// Set when a ListResults stream began this iteration: its first batch
    /// goes out after the commit, behind the replies queued before it.
    var resultsStarting = false
    var watchTimerArmed = false
    /// Set at the first SIGTERM: no new microtasks start; running ones may
    /// finish for up to shutdown_timeout.
    var shuttingDown = false
    /// Set when the daemon stops for good (the drain is over).
    var stopped = false
    /// Whether systemd passed the listening socket (then it is systemd's to remove).
    var socketActivated = false
    var readyNotified = false
    lazy var drainTimer = Timer(loop: loop)
    lazy var serviceTimer = Timer(loop: loop)
    var signalWatchers: [SignalWatcher] = []
    /// Where the worker makes a cgroup per sandboxed microtask, if anywhere.
    var cgroups: CgroupTree?
    var flusher: Check?
    /// When the last commit ended (monotonicMicroseconds()), for deferCommit().
    var lastCommitAt: UInt64 = 0
    lazy var commitTimer = Timer(loop: loop)
    var commitTimerArmed = false
    /// Microtasks ended in this iteration: the slots they leave are filled
    /// once, at its end (flush), however many ended.
    var dispatchPending = false
    /// Kills workers that have not exited a while after shutdown began.
    lazy var shutdownTimer = Timer(loop: loop)
    var exitCode: Int32 = 0
    /// The plugins of a reload being described, and who waits for the next one.
    var pluginDescription: PluginDescription?
    var reloadWaiters: [(ReloadOutcome) -> Void] = []

    // Control socket (see Control.swift).
    var listener: Stream?
    var connections: [ObjectIdentifier: Connection] = [:]
    /// Replies held until the iteration's changes are committed.
    var pendingReplies: [(Connection, [UInt8])] = []
    var finishedSinceFlush: [(EngineRun, [Watcher])] = []
    var storeFailure: String?

    /// Loads everything and opens the store; throws a message for the user
    /// when the daemon cannot start.
    public init(configPath: String, workerExecutable: String) throws(StartupError) {
        self.configPath = configPath
        self.workerExecutable = workerExecutable
        Daemon.clearSignalMask()
        let server: ServerConfig
        switch ConfigLoader.loadServerConfig(path: configPath) {
        case .success(let value): server = value
        case .failure(let diagnostics): throw StartupError(message: diagnostics.description)
        }
        if server.defaultSandbox.user == .dynamic && !HostCapabilities.current.isRoot {
            throw StartupError(message: "\(server.file): defaults.sandbox.user: \(Daemon.dynamicUserMessage)")
        }
        let (configuration, problems) = Daemon.load(server: server, worker: workerExecutable)
        problems.forEach { logWarning($0) }
        loaded = configuration
        protectedPaths = configuration.server.protectedPaths
        do {
            try makeDirectories(server.stateDir, mode: 0o750)
            try Daemon.lockStateDirectory(server.stateDir)
            store = try Store(directory: server.stateDir)
        } catch let error as StoreError {
            throw StartupError(message: error.message)
        } catch {
            throw StartupError(message: "\(server.stateDir): \(error)")
        }
        engine = Engine(
            settings: Engine.Settings(
                slots: server.slots, defaultLimits: server.defaults, killGrace: 2000, capacity: server.capacity,
                pressure: server.pressure.thresholds),
            store: store, files: RunFiles(stateDirectory: Daemon.absolute(server.stateDir)))
        engine.delegate = self
        let registry = metrics
        engine.attemptEnded = { run, stage, completion, retried in
            registry.attemptEnded(job: run.job.name, stage: stage.name, completion, retried: retried)
        }
    }

    /// A directory that exists, as an absolute path without symbolic links:
    /// the sandbox mounts run directories by absolute path, and templates
    /// hand them to commands that may change directory.
    static func absolute(_ directory: String) -> String {
        guard let resolved = realpath(directory, nil) else { return directory }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Unblocks every signal. A mask inherited from whoever started us (a
    /// test runner's thread, a shell) would hide SIGCHLD from libuv, which
    /// describes the plugins before anything else, and SIGTERM from us.
    static func clearSignalMask() {
        var empty = sigset_t()
        sigemptyset(&empty)
        sigprocmask(SIG_SETMASK, &empty, nil)
    }

    /// Takes an exclusive lock on the state directory for the life of the
    /// process, so two daemons never share one store.
    private static func lockStateDirectory(_ directory: String) throws(StartupError) {
        let path = directory + "/tesserad.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StartupError(message: "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw StartupError(message: "\(directory): another tesserad is already using this state directory")
        }
    }

    /// `log_level:` of the configuration, if it sets one.
    public var configuredLogLevel: LogLevel? { config.logLevel.flatMap(LogLevel.init(name:)) }

    public struct StartupError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Reads the plugins and the job files named by a server configuration,
    /// blocking while the plugins are described (see reload() for the way
    /// that does not). Problems are returned as messages (`file:line:column:
    /// path: what`), the plugins' first.
    static func load(server: ServerConfig, worker: String) -> (LoadedConfiguration, [String]) {
        let catalog = PluginCatalog.load(directories: server.pluginDirs, worker: worker, timeout: server.pluginTimeout)
        return load(server: server, catalog: catalog)
    }

    /// Reads the job files of a server configuration against described plugins.
    static func load(server: ServerConfig, catalog: PluginCatalog) -> (LoadedConfiguration, [String]) {
        var (jobs, diagnostics) = ConfigLoader.loadJobs(directories: server.jobsDirs, catalog: catalog.executors)
        var unsupported: [Diagnostic] = []
        if server.defaultSandbox.user == .dynamic && !HostCapabilities.current.isRoot {
            unsupported.append(
                Diagnostic(
                    file: server.file, position: nil, path: "defaults.sandbox.user",
                    message: Daemon.dynamicUserMessage))
        }
        jobs.removeAll { job in
            let problems = job.stages.enumerated().flatMap { index, stage in
                Daemon.unsupportedSandbox(stage.sandbox.overlaid(on: server.defaultSandbox)).map {
                    Diagnostic(file: job.file, position: stage.mark, path: "stages[\(index)].sandbox", message: $0)
                }
                    + Daemon.unsupportedIsolation(stage, defaults: server.defaultSandbox).map {
                        Diagnostic(
                            file: job.file, position: stage.mark, path: "stages[\(index)].isolation", message: $0)
                    }
                    + Daemon.unfitRequests(stage.requests, server.capacity).map {
                        Diagnostic(
                            file: job.file, position: stage.requestsMark ?? stage.mark,
                            path: "stages[\(index)].requests",
                            message: $0)
                    }
            }
            unsupported += problems
            return !problems.isEmpty
        }
        diagnostics += unsupported
        let configuration = LoadedConfiguration(
            server: server, catalog: catalog,
            jobs: Dictionary(jobs.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first }))
        return (configuration, catalog.problems + diagnostics.map(\.description))
    }

    /// What a stage's sandbox asks for that cannot be given.
    static func unsupportedSandbox(_ settings: SandboxSettings) -> [String] {
        guard !settings.disabled else { return [] }
        var problems: [String] = []
        if settings.user == .dynamic && !HostCapabilities.current.isRoot { problems.append(dynamicUserMessage) }
        let namespaces = settings.namespaces ?? [.pid, .ipc, .uts, .mount]
        let asksForFiles =
            settings.readOnly != nil || settings.writable != nil || settings.hidden != nil
            || settings.tmp == .private
        if !namespaces.contains(.mount) && asksForFiles {
            problems.append("filesystem settings need the mount namespace; add \"mount\" to namespaces")
        }
        return problems
    }

    /// What a stage's isolation asks for that its sandbox cannot give:
    /// a pooled process is pid 1 of a pid namespace, which is how it ends
    /// what a microtask leaves running before the next one starts.
    static func unsupportedIsolation(_ stage: StageDefinition, defaults: SandboxSettings) -> [String] {
        guard stage.isolation.isPooled else { return [] }
        let settings = stage.sandbox.overlaid(on: defaults)
        if settings.disabled {
            return ["isolation: pooled needs the sandbox; the stage runs with sandbox: none"]
        }
        if !(settings.namespaces ?? [.pid, .ipc, .uts, .mount]).contains(.pid) {
            return [
                "isolation: pooled needs the pid namespace (it ends what a microtask leaves running); "
                    + "add \"pid\" to namespaces"
            ]
        }
        return []
    }

    /// What a stage requests that no microtask could ever be given.
    static func unfitRequests(_ requests: ResourceRequests, _ capacity: Capacity) -> [String] {
        var problems: [String] = []
        if let cpu = requests.cpu, cpu > capacity.cpu {
            problems.append(
                "each microtask requests \(cpu.formatted) CPU(s), more than the server's capacity of "
                    + "\(capacity.cpu.formatted) (capacity.cpu in the server configuration)")
        }
        if let memory = requests.memory, memory > capacity.memory {
            problems.append(
                "each microtask requests \(formatSize(memory)) of memory, more than the server's capacity of "
                    + "\(formatSize(capacity.memory)) (capacity.memory in the server configuration)")
        }
        return problems
    }

    static let dynamicUserMessage =
        "user \"dynamic\" needs tesserad to run as root: it switches each microtask to a uid of its own"

    /// Validates a configuration file and everything it names, without
    /// starting anything. Returns every problem found.
    public static func check(configPath: String, workerExecutable: String) -> (summary: [String], problems: [String]) {
        clearSignalMask()
        switch ConfigLoader.loadServerConfig(path: configPath) {
        case .failure(let diagnostics):
            return ([], diagnostics.diagnostics.map(\.description))
        case .success(let server):
            let (configuration, problems) = load(server: server, worker: workerExecutable)
            var summary = [
                "\(configPath): slots \(server.slots), capacity \(server.capacity.cpu.formatted) CPU(s) and "
                    + "\(formatSize(server.capacity.memory)), socket \(server.socket), state in \(server.stateDir)"
            ]
            for plugin in configuration.catalog.plugins {
                summary.append(
                    "plugin \(plugin.name) \(plugin.version) (\(plugin.path)): executors "
                        + plugin.executors.map(\.name).joined(separator: ", "))
            }
            summary.append("enforcement: \(HostCapabilities.current.enforcementNote)")
            let protected = server.protectedPaths
            for job in configuration.jobs.values.sorted(by: { $0.name < $1.name }) {
                summary.append("job \(job.name) (\(job.file)): \(job.stages.count) stage(s)")
                for stage in job.stages {
                    let sandbox = ResolvedSandbox(
                        stage.sandbox.overlaid(on: server.defaultSandbox), protected: protected)
                    summary.append("  stage \(stage.name) (executor \(stage.executor)):")
                    summary.append(
                        "    source: \(stage.items.summary)" + (stage.chunk.map { ", \($0) per microtask" } ?? ""))
                    if stage.requests.cpu != nil || stage.requests.memory != nil || stage.requests.learnsMemory {
                        let parts = [
                            stage.requests.cpu.map { "cpu \($0.formatted) of \(server.capacity.cpu.formatted)" },
                            stage.requests.memory.map {
                                "memory \(formatSize($0)) of \(formatSize(server.capacity.memory))"
                            },
                            stage.requests.learnsMemory
                                ? "memory auto (the peak RSS seen of the stage) of "
                                    + formatSize(server.capacity.memory) : nil,
                        ].compactMap { $0 }
                        summary.append("    requests: " + parts.joined(separator: ", ") + " (the server's capacity)")
                    }
                    let limits = stage.limits.overlaid(on: server.defaults)
                    summary += sandbox.summary(limits: limits).map { "    " + $0 }
                    if case .pooled(let recycleAfter) = stage.isolation {
                        summary.append(
                            "    isolation: pooled: a sandboxed process per slot runs up to \(recycleAfter) of the "
                                + "stage's microtasks in turn, sharing its memory, /tmp and uid among them; replaced "
                                + "after one fails or its resident memory grows by 64 MiB; no cgroup of its own; nothing "
                                + "else of the stage's sandbox changes, and no other stage's microtask shares its uid")
                    } else if sandbox.usesStems() {
                        summary.append(
                            "    isolation: process: a process of its own for each microtask, forked from a stem "
                                + "(a process sandboxed once per uid lent to the stage, which runs no plugin code); "
                                + "the pid and IPC namespaces are the stem's, one microtask at a time; between two "
                                + "it kills what the last left running, and is replaced if that one left System V "
                                + "objects, message queues or files in /tmp; a microtask whose limits take a cgroup "
                                + "of its own is forked by the worker instead")
                    } else {
                        summary.append("    isolation: process: a process of its own for each microtask")
                    }
                }
            }
            return (summary, problems)
        }
    }

    // MARK: Running

    /// Starts the worker, recovers unfinished runs, opens the control socket
    /// and runs the loop until shutdown. Returns the process exit code.
    public func run() -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // Before the socket exists: whoever sees the socket may signal us.
        signalWatchers = [
            SignalWatcher(loop: loop, signal: SIGTERM) { [unowned self] _ in self.shutdown(reason: "SIGTERM") },
            SignalWatcher(loop: loop, signal: SIGINT) { [unowned self] _ in self.shutdown(reason: "SIGINT") },
            SignalWatcher(loop: loop, signal: SIGHUP) { [unowned self] _ in
                guard !self.shuttingDown else { return logWarning("SIGHUP ignored: the daemon is shutting down") }
                self.reload { _ in }
            },
        ]
        do {
            try openControlSocket()
        } catch {
            logError("\(error)")
            return 1
        }
        cgroups = HostCapabilities.current.cgroup.flatMap(CgroupTree.init)
        startWorker()
        engine.emit(
            "daemon.started", at: now(),
            [
                "version": .string(tesseraVersion), "pid": .int(Int64(getpid())),
                "jobs": .int(Int64(loaded.jobs.count)), "plugins": .int(Int64(loaded.catalog.plugins.count)),
            ])
        recoverRuns()
        engine.log = { logInfo($0) }
        updateSchedules()
        watchPressure()
        startRetention()
        openMetricsListener()
        flusher = Check(loop: loop) { [unowned self] in self.flush() }
        logInfo(HostCapabilities.current.enforcementNote)
        warnIfRunDirectoriesUnreachable()
        if let cgroups { logInfo(cgroups.note) }
        logInfo(
            "tesserad \(tesseraVersion) ready on \(config.socket): \(loaded.jobs.count) job(s), "
                + "\(loaded.catalog.plugins.count) plugin(s), \(config.slots) slot(s)")
        loop.run()
        flush(force: true)
        // The worker has ended, and every microtask with it.
        dynamicUsers.releaseAll()
        cgroups?.remove()
        if !loop.closeAll() { logWarning("event loop closed with handles still open") }
        logInfo(exitCode == 0 ? "stopped" : "stopped with exit status \(exitCode)")
        return exitCode
    }

    /// Reads the pressure files every second while thresholds are set, and
    /// lets the engine pause or resume admission by them.
    func watchPressure() {
        let watched = config.pressure.thresholds
        guard !watched.isEmpty else {
            if pressureTimerArmed {
                pressureTimer.stop()
                pressureTimerArmed = false
                if engine.observePressure([:], at: now()) != nil { dispatch() }
            }
            return
        }
        guard !pressureTimerArmed else { return }
        pressureTimerArmed = true
        samplePressure()
        pressureTimer.start(after: 1000, repeatEvery: 1000) { [unowned self] in self.samplePressure() }
    }

    private func samplePressure() {
        var samples: [String: Double] = [:]
        for (resource, _) in config.pressure.thresholds {
            let path = "\(config.pressure.source)/\(resource)"
            if let value = readText(path).flatMap(pressureAverage) {
                samples[resource] = value
            } else if !pressureUnreadable.contains(path) {
                pressureUnreadable.insert(path)
                logWarning("cannot read \(path) (some avg10): its pressure threshold is not watched")
            }
        }
        guard let change = engine.observePressure(samples, at: now()) else { return }
        if engine.pressureGate.pause == nil {
            logInfo(change)
            dispatch()
        } else {
            logWarning(change)
        }
    }

    /// A run's directory lives under the state directory; a microtask with
    /// a uid of its own reaches it through the state directory's parents,
    /// so each must be searchable by others (as /var/lib is).
    func warnIfRunDirectoriesUnreachable() {
        var path = config.stateDir
        while let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            path = String(path[..<slash])
            var info = stat()
            if stat(path, &info) == 0, info.st_mode & 0o001 == 0 {
                logWarning(
                    "\(path) is not searchable by others (mode \(String(info.st_mode & 0o7777, radix: 8))): "
                        + "microtasks with a uid of their own cannot reach their run directory under "
                        + "\(config.stateDir)")
                return
            }
        }
    }

    /// Commits the iteration's changes, then sends the replies and watch
    /// updates that report them. If the commit fails, nothing is reported
    /// and the daemon stops: it cannot promise durability any more.
    func flush(force: Bool = false) {
        if dispatchPending {
            dispatchPending = false
            if !stopped { dispatch() }
        }
        // The worker starts on the iteration's microtasks while the commit
        // (an fsync) runs.
        for worker in workers { worker.process.flushFrames() }
        if storeFailure == nil, let failure = engine.storeFailure { storeFailure = failure }
        if storeFailure == nil && !force && deferCommit() { return }
        if storeFailure == nil {
            do {
                let began = monotonicMicroseconds()
                if try store.commit() {
                    lastCommitAt = monotonicMicroseconds()
                    metrics.commits.observe(Double(lastCommitAt - began) / 1e6)
                }
            } catch {
                storeFailure = "cannot commit state: \(error)"
            }
        }
        if let failure = storeFailure {
            // Whatever this iteration changed may not be on disk: report
            // none of it, and stop rather than pretend.
            if !stopped { logError("\(failure); stopping") }
            exitCode = 1
            pendingReplies.removeAll()
            finishedSinceFlush.removeAll()
            if !shuttingDown { shuttingDown = true }
            stop()
            return
        }
        engine.committed()
        for (connection, bytes) in pendingReplies { connection.write(bytes) }
        pendingReplies.removeAll(keepingCapacity: true)
        // Result streams read what is committed, after the replies before them.
        if resultsStarting {
            resultsStarting = false
            pumpResults()
        }
        if eventsStarting || connections.values.contains(where: { $0.following != nil }) {
            eventsStarting = false
            pumpEvents()
        }
        if logsStarting || logFollowers.values.contains(where: { $0.logs?.ended.isEmpty == false }) {
            logsStarting = false
            pumpLogs()
        }
        for (run, watchers) in finishedSinceFlush {
            notifyWatchers(run, watchers)
        }
        finishedSinceFlush.removeAll()
    }

    /// Group commit: while microtasks run, the changes of the iterations
    /// within `commitWindow` milliseconds of the last commit wait for one
    /// commit at its end, with the replies that report them. A commit is an
    /// fsync, and under load the daemon committed once for every one or two
    /// microtasks, which was a third of its CPU time; now it commits at most
    /// 1000/commitWindow times a second. With nothing running (a request
    /// to an idle daemon, the last microtask of a run), it commits at once.
    static let commitWindow: UInt64 = 2

    /// Whether the iteration's changes wait for the commit timer (armed
    /// here if need be).
    func deferCommit() -> Bool {
        guard store.hasUncommittedChanges, !engine.running.isEmpty, !shuttingDown else { return false }
        let since = monotonicMicroseconds() &- lastCommitAt
        guard since < Daemon.commitWindow * 1000 else { return false }
        if !commitTimerArmed {
            commitTimerArmed = true
            // The iteration the timer ends is followed by a flush, which
            // finds the window over.
            commitTimer.start(after: Daemon.commitWindow) { [unowned self] in self.commitTimerArmed = false }
        }
        return true
    }

    /// Runs a store write; a failure is remembered and stops the daemon at
    /// the next flush.
    func record(_ write: () throws -> Void) {
        do {
            try write()
        } catch {
            storeFailure = "cannot write state: \(error)"
        }
    }

    // MARK: Worker

    func startWorker() {
        do {
            var slot: WorkerSlot?
            let process = try WorkerProcess(
                loop: loop, executable: workerExecutable, plugins: loaded.catalog.pluginPaths,
                onEvent: { [unowned self] event in
                    if let slot { self.handle(event, from: slot) }
                },
                onExit: { [unowned self] how in
                    if let slot { self.workerDied(slot, how: how) }
                })
            slot = WorkerSlot(process: process)
            if let cgroups { process.send(cgroups.configFrame) }
            workers.append(slot!)
            currentWorker = slot
        } catch {
            logError("cannot start the worker: \(error)")
            scheduleWorkerRestart()
        }
    }

    func scheduleWorkerRestart() {
        let delay = workerRestartDelay
        workerRestartDelay = min(workerRestartDelay * 2, 10_000)
        restartTimer.start(after: delay) { [unowned self] in
            guard self.currentWorker == nil, !self.shuttingDown else { return }
            self.startWorker()
        }
    }

    // MARK: Runs

    /// Creates a run of a job with run-time parameter overrides, items from
    /// the caller, or as a rerun of an earlier run.
    func startRun(
        jobName: String, overrides: [(String, String)], startedBy: String, priority: Int? = nil,
        callerItems: (stage: String, items: any ItemStream, count: Int)? = nil,
        rerun: (run: SavedRun, failedOnly: Bool)? = nil
    ) throws(ControlError) -> EngineRun {
        let job = try resolve(jobName: jobName, overrides: overrides)
        let paramsJSON = JSON.object(overrides.map { ($0.0, JSON.string($0.1)) }).serialized()
        let run: EngineRun
        do {
            run = try engine.createRun(
                Engine.RunRequest(
                    job: job, params: paramsJSON, startedBy: startedBy, priority: priority, callerItems: callerItems,
                    rerun: rerun),
                at: now())
        } catch {
            throw ControlError(ManagerError.invalidParameter, ["parameter": "job", "reason": .string(error.message)])
        }
        // A run may have ended already (no items, or a source that failed).
        if engine.runs[run.id] != nil {
            runShells[run.id] = RunShell()
            runShells[run.id]?.worker = currentWorker
        }
        logInfo(
            "run \(run.id) of \(job.name) queued by \(startedBy): \(run.total) microtask(s)"
                + (rerun.map { " (rerun of run \($0.run.id)\($0.failedOnly ? ", what did not succeed" : ""))" } ?? ""),
            metadata: ["job": "\(job.name)", "run": "\(run.id)"])
        dispatch()
        return run
    }

    /// A job with run-time parameter overrides applied: each goes to every
    /// stage whose executor declares it, converted to the declared type.
    func resolve(jobName: String, overrides: [(String, String)]) throws(ControlError) -> JobDefinition {
        guard var job = loaded.jobs[jobName] else {
            let closest = suggestion(for: jobName, among: loaded.jobs.keys.sorted())
            throw ControlError(
                ManagerError.jobNotFound, ["job": .string(jobName), "didYouMean": .optional(closest, JSON.string)])
        }
        for (name, text) in overrides {
            var applied = false
            for stagePosition in job.stages.indices {
                guard let executor = loaded.catalog.executors[job.stages[stagePosition].executor],
                    let spec = executor.params.first(where: { $0.name == name })
                else { continue }
                if let problem = job.stages[stagePosition].templateProblem(in: text) {
                    throw ControlError(
                        ManagerError.invalidParameter, ["parameter": .string(name), "reason": .string(problem)])
                }
                guard let value = ConfigLoader.convertRunParam(text, to: spec.type) else {
                    throw ControlError(
                        ManagerError.invalidParameter,
                        [
                            "parameter": .string(name),
                            "reason": .string("expected \(spec.type.rawValue), found \"\(text)\""),
                        ])
                }
                if let existing = job.stages[stagePosition].params.firstIndex(where: { $0.name == name }) {
                    job.stages[stagePosition].params[existing].value = value
                } else {
                    job.stages[stagePosition].params.append(Param(name: name, value: value))
                }
                applied = true
            }
            guard applied else {
                throw ControlError(
                    ManagerError.invalidParameter,
                    [
                        "parameter": .string(name),
                        "reason": .string("no stage of job \(jobName) has a parameter \"\(name)\""),
                    ])
            }
        }
        return job
    }

    /// Picks up runs an earlier daemon accepted but did not finish: their
    /// unfinished microtasks run again under the job's current definition.
    func recoverRuns() {
        let unfinished: [SavedRun]
        do {
            unfinished = try store.unfinishedRuns()
        } catch {
            logError("cannot read unfinished runs: \(error)")
            return
        }
        let problems = engine.recover(unfinished, at: now()) { saved in
            let overrides = (try? JSON.parse(saved.params))?.objectValue?.compactMap { key, value in
                value.stringValue.map { (key, $0) }
            }
            return try? resolve(jobName: saved.job, overrides: overrides ?? [])
        }
        problems.forEach { logError($0) }
        for run in engine.runs.values.sorted(by: { $0.id < $1.id }) where runShells[run.id] == nil {
            runShells[run.id] = RunShell()
            runShells[run.id]?.worker = currentWorker
            logInfo(
                "run \(run.id) of \(run.job.name) recovered: \(run.counts.queued) microtask(s) to go",
                metadata: ["job": "\(run.job.name)", "run": "\(run.id)"])
        }
        dispatch()
    }

    // MARK: Schedules

    /// Gives the engine the jobs' schedules (at start, the missed times are
    /// caught up), and keeps the timer on the next one.
    func updateSchedules() {
        engine.updateSchedules(loaded.jobs.values.sorted { $0.name < $1.name }, at: now())
        armScheduleTimer()
        dispatch()
    }

    func armScheduleTimer() {
        guard !stopped, !shuttingDown, let due = engine.nextScheduleDue else {
            scheduleTimer.stop()
            return
        }
        let wait = min(60_000, max(0, (due - wallClockSeconds()) * 1000))
        scheduleTimer.start(after: UInt64(wait.rounded(.up)) + 1) { [unowned self] in
            guard !self.shuttingDown else { return }
            self.engine.fireSchedules(at: self.now())
            self.armScheduleTimer()
            self.dispatch()
        }
    }

    // MARK: Reload

    /// How a reload went.
    enum ReloadOutcome {
        /// It took effect; `problems` are the plugins refused meanwhile.
        case applied(jobs: Int, plugins: Int, problems: [String])
        /// It did not; the running configuration stays. Every problem,
        /// the plugins' with the jobs'.
        case failed([String])
    }

    /// Re-reads the configuration, plugins and jobs, and calls `done` when
    /// that is over. The plugins are described beside the loop, which goes
    /// on serving and enforcing limits meanwhile. A reload asked for while
    /// one is under way runs after it (the files may have changed since it
    /// began).
    func reload(_ done: @escaping (ReloadOutcome) -> Void) {
        reloadWaiters.append(done)
        if pluginDescription == nil { startReload() }
    }

    private func startReload() {
        let waiters = reloadWaiters
        reloadWaiters.removeAll()
        ServiceManager.notify("RELOADING=1\nMONOTONIC_USEC=\(ServiceManager.monotonicMicroseconds)")
        let server: ServerConfig
        switch ConfigLoader.loadServerConfig(path: configPath) {
        case .success(let value): server = value
        case .failure(let diagnostics):
            return finishReload(.failed(diagnostics.diagnostics.map(\.description)), waiters)
        }
        let description = PluginDescription(
            loop: loop, directories: server.pluginDirs, worker: workerExecutable, timeout: server.pluginTimeout
        ) { [unowned self] catalog in
            self.finishReload(self.apply(server: server, catalog: catalog), waiters)
        }
        pluginDescription = description
        description.start()
    }

    private func finishReload(_ outcome: ReloadOutcome, _ waiters: [(ReloadOutcome) -> Void]) {
        pluginDescription = nil
        ServiceManager.notify("READY=1\nSTATUS=\(statusLine)")
        switch outcome {
        case .failed(let errors):
            errors.forEach { logError("reload: \($0)") }
            engine.emit("reload.failed", at: now(), ["errors": .array(errors.map(JSON.string))])
        case .applied(let jobs, let plugins, let problems):
            problems.forEach { logWarning("reload: \($0)") }
            logInfo("reloaded: \(jobs) job(s), \(plugins) plugin(s)")
            engine.emit(
                "reload.applied", at: now(),
                [
                    "jobs": .int(Int64(jobs)), "plugins": .int(Int64(plugins)),
                    "problems": .array(problems.map(JSON.string)),
                ])
        }
        waiters.forEach { $0(outcome) }
        if !reloadWaiters.isEmpty && !stopped { startReload() }
    }

    /// Takes a reloaded configuration into use, unless a job has an error.
    private func apply(server: ServerConfig, catalog: PluginCatalog) -> ReloadOutcome {
        let (configuration, problems) = Daemon.load(server: server, catalog: catalog)
        let jobErrors = problems.filter { !catalog.problems.contains($0) }
        if !jobErrors.isEmpty { return .failed(catalog.problems + jobErrors) }
        if server.socket != config.socket || server.stateDir != config.stateDir {
            logWarning("reload: socket and state_dir changes take effect at the next start")
        }
        if server.metrics != config.metrics {
            logWarning("reload: a metrics.listen change takes effect at the next start")
        }
        var kept = configuration
        kept.server.socket = config.socket
        kept.server.stateDir = config.stateDir
        let pluginsChanged =
            kept.catalog.pluginPaths != loaded.catalog.pluginPaths
            || kept.catalog.pluginIdentities != loaded.catalog.pluginIdentities
        loaded = kept
        userNames.removeAll()
        engine.settings.slots = kept.server.slots
        engine.settings.defaultLimits = kept.server.defaults
        engine.settings.capacity = kept.server.capacity
        engine.settings.pressure = kept.server.pressure.thresholds
        watchPressure()
        updateSchedules()
        if pluginsChanged, let old = currentWorker {
            // Runs in flight keep the plugins they started with: the old
            // worker serves them and stops when none is left.
            for shell in runShells.values where shell.worker == nil { shell.worker = old }
            old.retiring = true
            currentWorker = nil
            startWorker()
            retireIfUnused(old)
        }
        dispatch()
        return .applied(jobs: loaded.jobs.count, plugins: loaded.catalog.plugins.count, problems: catalog.problems)
    }

    // MARK: Shutdown

    /// Drains: no microtask starts any more, and new runs and reloads are
    /// refused, but the socket stays open for reading (status, runs, tasks,
    /// output) and cancelling, until the running microtasks have ended or
    /// `shutdown_timeout` has passed; then stop().
    func shutdown(reason: String) {
        guard !shuttingDown else {
            if !stopped {
                logInfo("\(reason) again: stopping now")
                stop()
            }
            return
        }
        shuttingDown = true
        ServiceManager.notify("STOPPING=1")
        engine.emit(
            "daemon.stopping", at: now(), ["reason": .string(reason), "running": .int(Int64(engine.running.count))])
        guard !engine.running.isEmpty, storeFailure == nil else {
            logInfo("shutting down (\(reason))")
            stop()
            return
        }
        logInfo(
            "shutting down (\(reason)): waiting up to \(formatDuration(config.shutdownTimeout)) for "
                + "\(engine.running.count) running microtask(s), still answering reads and refusing new runs; "
                + "send it again to stop at once")
        drainTimer.start(after: config.shutdownTimeout) { [unowned self] in
            logInfo("shutdown_timeout reached; killing the running microtasks")
            self.stop()
        }
    }

    /// Called when a microtask ends: ends the drain when it was the last.
    func drainProgressed() {
        if shuttingDown && !stopped && engine.running.isEmpty { stop() }
    }

    /// Stops for good: the worker is told to go, which kills the running
    /// microtasks' process groups; they stay recorded as running and are
    /// queued again by the next start. The loop ends when the last handle
    /// is closed.
    func stop() {
        guard !stopped else { return }
        stopped = true
        listener?.close()
        listener = nil
        if !socketActivated { unlink(config.socket) }
        for connection in connections.values { connection.close() }
        for worker in workers { worker.process.shutdown() }
        pluginDescription?.cancel()
        pluginDescription = nil
        reloadWaiters.removeAll()
        limitTimer.close()
        restartTimer.close()
        retryTimer.close()
        scheduleTimer.close()
        watchTimer.close()
        resultTimer.close()
        pressureTimer.close()
        eventTimer.close()
        logTimer.close()
        retentionTimer.close()
        retentionSoonTimer.close()
        metricsSweep.close()
        metricsListener?.close()
        for connection in metricsConnections.values { connection.stream.close() }
        metricsConnections.removeAll()
        deleteTimer.close()
        drainTimer.close()
        serviceTimer.close()
        signalWatchers.forEach { $0.close() }
        signalWatchers.removeAll()
        commitTimer.close()
        flush(force: true)
        flusher?.close()
        flusher = nil
        if workers.isEmpty {
            shutdownTimer.close()
        } else {
            shutdownTimer.start(after: 5000) { [unowned self] in
                for worker in self.workers { worker.process.kill(signal: SIGKILL) }
            }
        }
    }

    /// READY=1 once the worker is up, then STATUS= every few seconds and
    /// watchdog pings from the loop, when systemd listens.
    func notifyReady() {
        guard !readyNotified else { return }
        readyNotified = true
        ServiceManager.notify("READY=1\nSTATUS=\(statusLine)")
        guard ServiceManager.isNotifying else { return }
        let interval = min(ServiceManager.watchdogInterval ?? 2000, 2000)
        let watchdog = ServiceManager.watchdogInterval != nil
        serviceTimer.start(after: interval, repeatEvery: interval) { [unowned self] in
            ServiceManager.notify((watchdog ? "WATCHDOG=1\n" : "") + "STATUS=\(self.statusLine)")
        }
    }

    var statusLine: String {
        "\(engine.running.count) running, \(engine.queuedCount) queued, \(engine.runs.count) active run(s)"
            + (engine.pressureGate.pause.map { "; admission paused: \($0.description)" } ?? "")
    }

}

extension Double {
    /// 2 -> "2", 0.5 -> "0.5".
    var formatted: String { self == rounded() && abs(self) < 1e15 ? String(Int64(self)) : String(self) }
}

/// Creates a directory and its parents.
func makeDirectories(_ path: String, mode: mode_t) throws {
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        current += "/" + component
        if mkdir(current, mode) != 0 && errno != EEXIST {
            throw Daemon.StartupError(message: "cannot create \(current): \(String(cString: strerror(errno)))")
        }
    }
}
