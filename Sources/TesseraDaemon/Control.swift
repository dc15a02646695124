// The control socket: varlink over a Unix stream socket. Connections are
// read as NUL-terminated JSON messages (at most `maximumRequestSize` bytes
// each, so a client cannot make the daemon buffer without bound), calls on
// one connection are answered in order, and every reply is held until the
// loop iteration's state changes are committed.

import TesseraConfig
import TesseraEngine
import TesseraProtocol
import TesseraStore

#if canImport(Glibc)
    import Glibc
#endif

/// A named varlink error raised by a method.
struct ControlError: Error {
    let name: String
    let parameters: JSON
    init(_ name: String, _ parameters: JSON = .object([])) {
        self.name = name
        self.parameters = parameters
    }
}

/// The largest request accepted; requests are small, so this is generous.
let maximumRequestSize = 1 << 20
/// A client that lets this much output pile up unread is disconnected.
let maximumPendingOutput = 64 << 20

final class Connection {
    let stream: Stream
    unowned let daemon: Daemon
    /// Who is at the other end; nil when the kernel did not say (then only
    /// what anyone may do is allowed).
    let peer: Peer?
    private var framer = VarlinkFramer(maximumMessageSize: maximumRequestSize)
    /// Set while a WatchRun stream is in progress; later calls wait.
    var watching: Int64?
    /// Set while a call's reply comes later (a reload); later calls wait.
    var awaitingReply = false
    /// Set while a ListResults stream is in progress; later calls wait.
    var results: ResultStream?
    /// Set while a ListEvents stream follows the log; later calls wait.
    var following: EventFollower?
    /// Set while a StreamOutput call is in progress; later calls wait.
    var logs: LogFollower?
    /// Whether calls that arrive now must wait for an earlier one.
    private var holding: Bool {
        watching != nil || awaitingReply || results != nil || following != nil || logs != nil
    }
    private var waitingCalls: [[UInt8]] = []
    private(set) var isClosed = false

    init(stream: Stream, daemon: Daemon) {
        self.stream = stream
        self.daemon = daemon
        peer = Peer(fd: stream.fileDescriptor)
    }

    func start() {
        stream.onRead = { [unowned self] bytes in self.received(bytes) }
        stream.onEnd = { [unowned self] _ in self.close() }
        stream.startReading()
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        let messages: [[UInt8]]
        do {
            messages = try framer.append(bytes)
        } catch {
            logWarning("control: closing a connection that sent a message over \(maximumRequestSize) bytes")
            close()
            return
        }
        for message in messages where !isClosed {
            if holding {
                waitingCalls.append(message)
            } else {
                daemon.handleMessage(message, on: self)
            }
        }
    }

    /// Called when a watch or a later reply ends: handles calls that
    /// arrived meanwhile.
    func resume() {
        while !holding, !waitingCalls.isEmpty, !isClosed {
            daemon.handleMessage(waitingCalls.removeFirst(), on: self)
        }
    }

    func write(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        stream.write(bytes)
        if stream.pendingWriteBytes > maximumPendingOutput {
            logWarning("control: closing a connection that does not read its replies")
            close()
        }
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        if let run = watching {
            daemon.runShells[run]?.watchers.removeAll { $0.connection === self }
            watching = nil
        }
        results = nil
        following = nil
        logs = nil
        daemon.logFollowers.removeValue(forKey: ObjectIdentifier(self))
        daemon.uploads.removeValue(forKey: ObjectIdentifier(self))
        daemon.connections.removeValue(forKey: ObjectIdentifier(self))
        stream.close()
    }
}

extension Daemon {
    /// Who a run is recorded as started by: the name of the connection's
    /// user (cached by uid), "uid N" when it has none.
    func userName(of connection: Connection) -> String {
        guard let peer = connection.peer else { return "unknown" }
        if let known = userNames[peer.uid] { return known }
        let name = peer.userName
        userNames[peer.uid] = name
        return name
    }

    func openControlSocket() throws {
        if let fd = ServiceManager.passedSocket() {
            let stream = Stream(loop: loop)
            do {
                try stream.open(fd: fd)
                try stream.listen { [unowned self] in self.accept() }
            } catch {
                stream.close()
                throw StartupError(message: "cannot listen on the socket systemd passed: \(error)")
            }
            socketActivated = true
            listener = stream
            return
        }
        let path = config.socket
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]), mode: 0o755)
        }
        if let probe = try? VarlinkClient(path: path) {
            _ = probe
            throw StartupError(message: "\(path): another tesserad is already listening there")
        }
        unlink(path)
        let stream = Stream(loop: loop)
        // The socket is created 0660 (owner and group may connect) without a
        // window in which it is more open.
        let previous = umask(0o117)
        defer { umask(previous) }
        do {
            try stream.listen(path: path) { [unowned self] in self.accept() }
        } catch {
            stream.close()
            throw StartupError(message: "cannot listen on \(path): \(error)")
        }
        chmod(path, 0o660)
        listener = stream
    }

    private func accept() {
        guard let listener, let client = listener.accept(loop: loop) else { return }
        let connection = Connection(stream: client, daemon: self)
        connections[ObjectIdentifier(connection)] = connection
        connection.start()
    }

    /// Queues a reply to go out after the iteration's commit.
    func send(_ reply: VarlinkReply, to connection: Connection) {
        pendingReplies.append((connection, reply.json.varlinkFrame))
    }

    func handleMessage(_ message: [UInt8], on connection: Connection) {
        let parsed = message.withUnsafeBufferPointer { bytes in
            Result { () throws(JSONParseError) in try JSON.parse(bytes) }
        }
        guard case .success(let json) = parsed, case .success(let call) = VarlinkCall.decode(json) else {
            // Not a varlink call: the protocol says to drop the connection.
            logDebug("control: closing a connection that sent a message that is not a varlink call")
            connection.close()
            return
        }
        let reply: VarlinkReply?
        let allowed = connection.peer.map { Access.allows($0, call.method, rules: config.access) } ?? false
        guard allowed else {
            logWarning("control: denied \(call.method) to \(connection.peer?.description ?? "an unknown peer")")
            if !call.oneway {
                send(.failure(ServiceError.permissionDenied, ["method": .string(call.method)]), to: connection)
            }
            return
        }
        do {
            reply = try dispatch(call, on: connection)
        } catch {
            reply = .failure(error.name, error.parameters)
        }
        if let reply, !call.oneway { send(reply, to: connection) }
    }

    /// Answers one call. Returns nil when the reply comes later (WatchRun).
    private func dispatch(_ call: VarlinkCall, on connection: Connection) throws(ControlError) -> VarlinkReply? {
        let p = call.parameters
        switch call.method {
        case "org.varlink.service.GetInfo":
            return VarlinkReply(parameters: [
                "vendor": "Tessera", "product": "tesserad", "version": .string(tesseraVersion),
                "url": "https://github.com/tessera/tessera",
                "interfaces": [.string(serviceInterfaceName), .string(managerInterfaceName)],
            ])
        case "org.varlink.service.GetInterfaceDescription":
            let name = try p.requiredString("interface")
            switch name {
            case managerInterfaceName:
                return VarlinkReply(parameters: ["description": .string(managerInterfaceDescription)])
            case serviceInterfaceName:
                return VarlinkReply(parameters: ["description": .string(serviceInterfaceDescription)])
            default: throw ControlError(ServiceError.interfaceNotFound, ["interface": .string(name)])
            }
        case "io.tessera.Manager.ListRunning":
            return VarlinkReply(parameters: ["tasks": .array(runningJSON())])
        case "io.tessera.Manager.GetMetrics":
            return VarlinkReply(parameters: ["text": .string(metricsText())])
        case "io.tessera.Manager.GetStatus":
            return VarlinkReply(parameters: ["status": statusJSON()])
        case "io.tessera.Manager.ListPlugins":
            return VarlinkReply(parameters: ["plugins": .array(loaded.catalog.plugins.map(pluginJSON))])
        case "io.tessera.Manager.ListJobs":
            let jobs = loaded.jobs.values.sorted { $0.name < $1.name }
            return VarlinkReply(parameters: ["jobs": .array(jobs.map(jobJSON))])
        case "io.tessera.Manager.StartRun":
            let job = try p.requiredString("job")
            var overrides: [(String, String)] = []
            if let params = p["params"], !params.isNull {
                guard let members = params.objectValue else { throw invalid("params") }
                for (key, value) in members {
                    guard let text = value.stringValue else { throw invalid("params.\(key)") }
                    overrides.append((key, text))
                }
            }
            var priority: Int?
            if let value = try p.optionalInt("priority") {
                guard (0...100).contains(value) else {
                    throw ControlError(
                        ManagerError.invalidParameter,
                        ["parameter": "priority", "reason": .string("expected 0 to 100, found \(value)")])
                }
                priority = Int(value)
            }
            try refuseWhileDraining()
            var callerItems: (stage: String, items: any ItemStream, count: Int)?
            if let items = p["items"], !items.isNull {
                let upload = uploads[ObjectIdentifier(connection)]
                guard let count = items["count"]?.intValue, count == Int64(upload?.count ?? 0) else {
                    throw ControlError(
                        ManagerError.invalidParameter,
                        [
                            "parameter": "items.count",
                            "reason": .string(
                                "\(upload?.count ?? 0) item(s) were sent on this connection with AddItems"),
                        ])
                }
                let stage = try items.optionalString("stage") ?? loaded.jobs[job]?.stages.first?.name ?? ""
                if let definition = loaded.jobs[job], !definition.stages.contains(where: { $0.name == stage }) {
                    throw ControlError(
                        ManagerError.invalidParameter,
                        [
                            "parameter": "items.stage",
                            "reason": .string(
                                "job \(job) has no stage \"\(stage)\" (stages: "
                                    + definition.stages.map(\.name).joined(separator: ", ") + ")"),
                        ])
                }
                callerItems = (stage, upload?.stream() ?? ItemUpload.empty, Int(count))
            }
            let run = try startRun(
                jobName: job, overrides: overrides, startedBy: userName(of: connection),
                priority: priority, callerItems: callerItems)
            if callerItems != nil { uploads.removeValue(forKey: ObjectIdentifier(connection)) }
            return VarlinkReply(parameters: ["id": .int(run.id)])
        case "io.tessera.Manager.AddItems":
            try refuseWhileDraining()
            guard let values = p["items"]?.arrayValue else { throw invalid("items") }
            var items: [String] = []
            items.reserveCapacity(values.count)
            for value in values {
                guard let text = value.stringValue else { throw invalid("items") }
                items.append(text)
            }
            let key = ObjectIdentifier(connection)
            let upload: ItemUpload
            if let existing = uploads[key] {
                upload = existing
            } else {
                upload = try ItemUpload(directory: config.stateDir)
                uploads[key] = upload
            }
            try upload.append(items)
            return VarlinkReply(parameters: ["count": .int(Int64(upload.count))])
        case "io.tessera.Manager.RerunRun":
            try refuseWhileDraining()
            let id = try p.requiredInt("id")
            let failedOnly = p["failedOnly"]?.boolValue ?? false
            guard let saved = try storeRead({ try store.savedRun(id: id) }) else {
                throw ControlError(ManagerError.runNotFound, ["id": .int(id)])
            }
            guard saved.state.isFinal, engine.runs[id] == nil else {
                throw ControlError(
                    ManagerError.invalidParameter,
                    ["parameter": "id", "reason": .string("run \(id) has not ended; rerun it when it has")])
            }
            let overrides = (try? JSON.parse(saved.params))?.objectValue?.compactMap { key, value in
                value.stringValue.map { (key, $0) }
            }
            let run = try startRun(
                jobName: saved.job, overrides: overrides ?? [], startedBy: userName(of: connection),
                rerun: (saved, failedOnly))
            return VarlinkReply(parameters: ["id": .int(run.id)])
        case "io.tessera.Manager.DescribeRun":
            let id = try p.requiredInt("id")
            let info = try runInfo(id)
            guard let saved = try storeRead({ try store.savedRun(id: id) }) else {
                throw ControlError(ManagerError.runNotFound, ["id": .int(id)])
            }
            let live = engine.runs[id]
            var stages: [JSON] = []
            for record in saved.stages {
                let stage = live?.stages.first { $0.position == record.position }
                let current = stage?.record ?? record
                var counts = TaskCounts()
                if let stage {
                    counts = stage.counts
                } else {
                    counts = try storeRead { try store.taskCounts(run: id, in: current.range) }
                }
                stages.append([
                    "name": .string(current.name), "source": .string(current.source),
                    "state": .string(current.state.rawValue),
                    "firstIndex": .optional(current.firstIndex) { .int(Int64($0)) },
                    "tasks": .optional(current.count) { .int(Int64($0)) }, "counts": counts.json,
                    "reason": .optional(current.reason, JSON.string),
                ])
            }
            let params = (try? JSON.parse(saved.params)) ?? .object([])
            return VarlinkReply(parameters: [
                "run": info.json, "params": params, "startedBy": .string(saved.startedBy),
                "rerunOf": .optional(saved.rerunOf, JSON.int), "stages": .array(stages),
            ])
        case "io.tessera.Manager.ListResults":
            let id = try p.requiredInt("run")
            _ = try runInfo(id)
            let stage = try p.optionalString("stage")
            if let stage {
                let names = try storeRead { try store.stages(run: id) }.map(\.name)
                guard names.contains(stage) else {
                    throw ControlError(ManagerError.stageNotFound, ["run": .int(id), "stage": .string(stage)])
                }
            }
            guard call.more else {
                throw ControlError(ServiceError.expectedMore, [:])
            }
            connection.results = ResultStream(run: id, stage: stage)
            resultsStarting = true
            return nil
        case "io.tessera.Manager.ListRuns":
            let limit = try p.optionalInt("limit") ?? 50
            guard limit > 0 else { throw invalid("limit") }
            var state: RunState?
            if let text = try p.optionalString("state") {
                guard let parsed = RunState(rawValue: text) else { throw invalid("state") }
                state = parsed
            }
            let job = try p.optionalString("job")
            let since = p["since"]?.doubleValue
            let runs = try storeRead {
                try store.runs(limit: Int(min(limit, 10_000)), job: job, state: state, since: since) {
                    engine.runs[$0]?.counts
                }
            }
            return VarlinkReply(parameters: ["runs": .array(runs.map { (engine.runs[$0.id]?.info ?? $0).json })])
        case "io.tessera.Manager.GetRun":
            return VarlinkReply(parameters: ["run": try runInfo(try p.requiredInt("id")).json])
        case "io.tessera.Manager.ListTasks":
            let id = try p.requiredInt("run")
            _ = try runInfo(id)
            var state: TaskState?
            if let text = try p.optionalString("state") {
                guard let parsed = TaskState(rawValue: text) else { throw invalid("state") }
                state = parsed
            }
            let offset = try p.optionalInt("offset") ?? 0
            let limit = try p.optionalInt("limit") ?? 1000
            guard offset >= 0, limit > 0 else { throw invalid(offset < 0 ? "offset" : "limit") }
            var tasks = try storeRead {
                try store.tasks(run: id, state: state, offset: Int(offset), limit: Int(min(limit, 100_000)))
            }
            if engine.runs[id] != nil { overlayRunning(&tasks, of: id) }
            return VarlinkReply(parameters: ["tasks": .array(tasks.map(\.json))])
        case "io.tessera.Manager.GetTaskOutput":
            let id = try p.requiredInt("run")
            let index = try p.requiredInt("index")
            guard let output = try storeRead({ try store.output(run: id, index: Int(index)) }) else {
                _ = try runInfo(id)
                throw ControlError(ManagerError.taskNotFound, ["run": .int(id), "index": .int(index)])
            }
            return VarlinkReply(parameters: ["output": output.json])
        case "io.tessera.Manager.ListAttempts":
            let id = try p.requiredInt("run")
            let index = try p.requiredInt("index")
            _ = try runInfo(id)
            guard index >= 0, index < Int64(Int32.max),
                try storeRead({ try store.output(run: id, index: Int(index)) }) != nil
            else {
                throw ControlError(ManagerError.taskNotFound, ["run": .int(id), "index": .int(index)])
            }
            let attempts = try storeRead { try store.attempts(run: id, index: Int(index)) }
            return VarlinkReply(parameters: ["attempts": .array(attempts.map(\.json))])
        case "io.tessera.Manager.CancelRun":
            let id = try p.requiredInt("id")
            guard let run = engine.runs[id] else {
                let info = try runInfo(id)
                throw ControlError(ManagerError.runFinished, ["id": .int(id), "state": .string(info.state.rawValue)])
            }
            cancel(run: run)
            logInfo("run \(id) cancelled by request", metadata: ["job": "\(run.job.name)", "run": "\(id)"])
            return VarlinkReply(parameters: ["run": run.info.json])
        case "io.tessera.Manager.WatchRun":
            let id = try p.requiredInt("id")
            guard call.more, let run = engine.runs[id], let shell = runShells[id] else {
                return VarlinkReply(parameters: ["run": try runInfo(id).json])
            }
            connection.watching = id
            shell.watchers.append(Watcher(connection: connection))
            send(VarlinkReply(parameters: ["run": run.info.json], continues: true), to: connection)
            armWatchTimer()
            return nil
        case "io.tessera.Manager.DeleteRun":
            return try deleteRun(try p.requiredInt("id"))
        case "io.tessera.Manager.StreamOutput":
            return try streamOutput(p, more: call.more, on: connection)
        case "io.tessera.Manager.ListEvents":
            return try listEvents(p, more: call.more, on: connection)
        case "io.tessera.Manager.Reload":
            try refuseWhileDraining()
            // The reply comes when the plugins are described, which happens
            // beside the loop.
            connection.awaitingReply = true
            reload { [unowned self, weak connection] outcome in
                guard let connection, !connection.isClosed else { return }
                connection.awaitingReply = false
                if !call.oneway {
                    switch outcome {
                    case .failed(let errors):
                        self.send(
                            .failure(ManagerError.reloadFailed, ["errors": .array(errors.map(JSON.string))]),
                            to: connection)
                    case .applied(let jobs, let plugins, let problems):
                        self.send(
                            VarlinkReply(parameters: [
                                "jobs": .int(Int64(jobs)), "plugins": .int(Int64(plugins)),
                                "problems": .array(problems.map(JSON.string)),
                            ]), to: connection)
                    }
                }
                connection.resume()
            }
            return nil
        default:
            throw ControlError(ServiceError.methodNotFound, ["method": .string(call.method)])
        }
    }

    /// New runs and reloads are refused while the daemon drains.
    private func refuseWhileDraining() throws(ControlError) {
        guard shuttingDown else { return }
        throw ControlError(ManagerError.shuttingDown, ["runningTasks": .int(Int64(engine.running.count))])
    }

    private func invalid(_ parameter: String) -> ControlError {
        ControlError(ServiceError.invalidParameter, ["parameter": .string(parameter)])
    }

    private func storeRead<T>(_ body: () throws -> T) throws(ControlError) -> T {
        do {
            return try body()
        } catch {
            logError("control: \(error)")
            throw ControlError(ManagerError.invalidParameter, ["parameter": "", "reason": .string("\(error)")])
        }
    }

    /// A run from memory when active, else from the store.
    func runInfo(_ id: Int64) throws(ControlError) -> RunInfo {
        if let run = engine.runs[id] { return run.info }
        guard let info = try storeRead({ try store.run(id: id) }) else {
            throw ControlError(ManagerError.runNotFound, ["id": .int(id)])
        }
        return info
    }

    /// The store does not know a running task's progress; add what the worker said.
    private func overlayRunning(_ tasks: inout [TaskInfo], of run: Int64) {
        guard !taskProgress.isEmpty else { return }
        var progressByIndex: [Int: Double] = [:]
        for (token, fraction) in taskProgress {
            if let shell = taskShells[token], shell.run == run { progressByIndex[shell.index] = fraction }
        }
        for i in tasks.indices where tasks[i].state == .running {
            if let fraction = progressByIndex[tasks[i].index] {
                tasks[i].progress = fraction
            }
        }
    }

    // MARK: Watching

    /// While anyone watches, a timer sends changed runs every 100 ms; final
    /// states are sent at the flush that commits them.
    private func armWatchTimer() {
        guard !watchTimerArmed else { return }
        watchTimerArmed = true
        watchTimer.start(after: 100, repeatEvery: 100) { [unowned self] in
            var anyWatched = false
            for run in self.engine.runs.values {
                guard let watchers = self.runShells[run.id]?.watchers, !watchers.isEmpty else { continue }
                anyWatched = true
                if run.changed {
                    run.changed = false
                    for watcher in watchers {
                        self.send(
                            VarlinkReply(parameters: ["run": run.info.json], continues: true), to: watcher.connection)
                    }
                }
            }
            if !anyWatched {
                self.watchTimer.stop()
                self.watchTimerArmed = false
            }
        }
    }

    func notifyWatchers(_ run: EngineRun, _ watchers: [Watcher]) {
        let info = run.info
        for watcher in watchers {
            watcher.connection.watching = nil
            watcher.connection.write(VarlinkReply(parameters: ["run": info.json]).json.varlinkFrame)
            watcher.connection.resume()
        }
    }

    // MARK: Records

    func statusJSON() -> JSON {
        let queued = engine.queuedCount
        let size = store.size()
        return [
            "version": .string(tesseraVersion), "pid": .int(Int64(getpid())),
            "uptimeSeconds": .double(Double(monotonicMilliseconds() - startedMonotonic) / 1000),
            "slots": .int(Int64(config.slots)), "runningTasks": .int(Int64(engine.running.count)),
            "queuedTasks": .int(Int64(queued)), "activeRuns": .int(Int64(engine.runs.count)),
            "jobs": .int(Int64(loaded.jobs.count)), "plugins": .int(Int64(loaded.catalog.plugins.count)),
            "workers": .int(Int64(workers.filter(\.ready).count)), "shuttingDown": .bool(shuttingDown),
            "admissionPaused": .optional(engine.pressureGate.pause) { pause in
                .string("\(pause.description) since \(formatClock(pause.since))")
            },
            "attemptsEnded": .int(Int64(metrics.attemptsEnded)),
            "databaseBytes": .int(size.bytes), "databaseFreeBytes": .int(size.free),
            "schedulesDue": .array(
                engine.schedules.prefix(10).compactMap { schedule in
                    guard let next = schedule.next, next <= wallClockSeconds() + 3600 else { return nil }
                    return [
                        "job": .string(schedule.job), "schedule": .string(schedule.summary), "next": .double(next),
                    ]
                }),
        ]
    }

    private func pluginJSON(_ plugin: PluginInfo) -> JSON {
        [
            "name": .string(plugin.name), "version": .string(plugin.version), "path": .string(plugin.path),
            "description": .string(plugin.description),
            "executors": .array(
                plugin.executors.map { executor in
                    [
                        "name": .string(executor.name), "description": .string(executor.description),
                        "params": .array(
                            executor.params.map { param in
                                [
                                    "name": .string(param.name), "type": .string(param.type.rawValue),
                                    "required": .bool(param.required),
                                    "default": .optional(param.defaultValue, JSON.string),
                                    "description": .string(param.description),
                                ]
                            }),
                    ]
                }),
        ]
    }

    private func jobJSON(_ job: JobDefinition) -> JSON {
        [
            "name": .string(job.name), "description": .string(job.description), "file": .string(job.file),
            "concurrency": .optional(job.concurrency) { .int(Int64($0)) }, "priority": .int(Int64(job.priority)),
            "stages": .array(
                job.stages.map { stage in
                    [
                        "name": .string(stage.name), "executor": .string(stage.executor),
                        "tasks": .optional(
                            stage.items.knownCount.map { count in
                                stage.chunk.map { (count + $0 - 1) / $0 } ?? count
                            }
                        ) { .int(Int64($0)) },
                        "source": .string(stage.items.summary), "after": .array(stage.dependencies.map(JSON.string)),
                    ]
                }),
            "schedule": .optional(job.schedule?.summary, JSON.string),
            "nextRun": .optional(engine.schedules.first { $0.job == job.name }?.next, JSON.double),
        ]
    }
}

extension JSON {
    func requiredString(_ name: String) throws(ControlError) -> String {
        guard let value = self[name]?.stringValue else {
            throw ControlError(ServiceError.invalidParameter, ["parameter": .string(name)])
        }
        return value
    }

    func requiredInt(_ name: String) throws(ControlError) -> Int64 {
        guard let value = self[name]?.intValue else {
            throw ControlError(ServiceError.invalidParameter, ["parameter": .string(name)])
        }
        return value
    }

    func optionalInt(_ name: String) throws(ControlError) -> Int64? {
        guard let value = self[name], !value.isNull else { return nil }
        guard let int = value.intValue else {
            throw ControlError(ServiceError.invalidParameter, ["parameter": .string(name)])
        }
        return int
    }

    func optionalString(_ name: String) throws(ControlError) -> String? {
        guard let value = self[name], !value.isNull else { return nil }
        guard let string = value.stringValue else {
            throw ControlError(ServiceError.invalidParameter, ["parameter": .string(name)])
        }
        return string
    }
}
