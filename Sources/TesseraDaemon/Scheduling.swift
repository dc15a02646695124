// The daemon's side of scheduling: it carries out what the engine
// (TesseraEngine) decides. The engine picks which microtask starts, counts
// and records; this file sends the worker its STAGE and TASK frames, lends
// uids, turns what the worker reports into a state and a reason, keeps the
// timer that lets the engine enforce wall-clock limits, and replaces a
// worker that dies.

internal import CTesseraWire
import TesseraConfig
import TesseraEngine
import TesseraProtocol
import TesseraStore

#if canImport(Glibc)
    import Glibc
#endif

/// A worker zygote and what the daemon knows about it.
final class WorkerSlot {
    let process: WorkerProcess
    var ready = false
    var running = 0
    /// Stage ids the worker has a definition of.
    var definedStages: Set<UInt32> = []
    var retiring = false

    init(process: WorkerProcess) { self.process = process }
}

extension Daemon: EngineDelegate {
    // MARK: Dispatch

    /// Starts as many queued microtasks as slots and concurrency allow.
    func dispatch() {
        engine.paused = shuttingDown
        engine.dispatch(at: now())
        armRetryTimer()
    }

    /// Keeps a timer on the earliest waiting retry, so that it starts when
    /// it is due whatever else happens.
    func armRetryTimer() {
        guard !stopped, let due = engine.nextRetryDue else {
            if retryTimerDue != nil { retryTimer.stop() }
            retryTimerDue = nil
            return
        }
        guard retryTimerDue != due else { return }
        retryTimerDue = due
        let now = monotonicMilliseconds()
        retryTimer.start(after: due > now ? due - now : 0) { [unowned self] in
            self.retryTimerDue = nil
            self.dispatch()
        }
    }

    /// The time as the engine is given it.
    func now() -> Instant { Instant(wall: wallClockSeconds(), monotonic: monotonicMilliseconds()) }

    /// The worker a run's microtasks go to: the one that was current when
    /// the run started (its plugins are the ones the run was checked
    /// against), as long as it lives; otherwise the current one.
    func worker(for run: Int64) -> WorkerSlot? {
        let shell = runShells[run] ?? RunShell()
        runShells[run] = shell
        if let pinned = shell.worker, workers.contains(where: { $0 === pinned }) { return pinned }
        shell.worker = currentWorker
        return currentWorker
    }

    /// Stops a worker that a reload replaced once nothing uses it any more:
    /// no microtask runs on it and no active run is pinned to it.
    func retireIfUnused(_ worker: WorkerSlot) {
        guard worker.retiring, worker.running == 0, !runShells.values.contains(where: { $0.worker === worker })
        else { return }
        worker.process.shutdown()
    }

    public func engine(_ engine: Engine, canStart run: EngineRun) -> Bool {
        worker(for: run.id)?.ready == true
    }

    public func engine(_ engine: Engine, start task: MicrotaskStart) {
        guard let worker = worker(for: task.run.id) else { return }
        metrics.started(
            job: task.run.job.name, stage: task.stage.name,
            waited: task.attempt == 1 ? task.stage.readyAt.map { wallClockSeconds() - $0 } : nil)
        let stageID = workerStageID(run: task.run.id, stage: task.stage.position)
        if !worker.definedStages.contains(stageID) {
            worker.process.send(stageFrame(id: stageID, stage: task.stage, of: task.run))
            worker.definedStages.insert(stageID)
        }
        var frame = FrameWriter(type: UInt8(TW_MSG_TASK.rawValue))
        frame.u64(task.token)
        frame.u32(stageID)
        frame.u64(UInt64(task.index))
        frame.str(task.item)
        let sandbox = self.sandbox(of: task.stage, in: task.run)
        // A stage keeps the uids it was lent until it ends: the worker's
        // pooled processes and stems (tesserad(8)) run as them between its
        // microtasks, and no other stage's microtask may share one.
        var uidStage: StageKey?
        var dynamicUID: UInt32?
        if sandbox.dynamicUser {
            let key = StageKey(run: task.run.id, stage: task.stage.position)
            uidStage = key
            if let shared = laneUIDs[task.lane] {
                // Handed out ahead: to the pooled process of its lane.
                dynamicUID = shared
            } else {
                dynamicUID = stageUIDs[key]?.popLast() ?? dynamicUsers.take()
                // A lane's uid is its first microtask's (one ahead gets a
                // uid of its own only when that one had none to share).
                if !task.ahead { laneUIDs[task.lane] = dynamicUID }
            }
        }
        frame.u32(dynamicUID ?? UInt32(TW_ID_UNCHANGED))
        frame.u32(UInt32(task.attempt))
        frame.u32(task.ahead ? TW_TASK_AHEAD : 0)
        worker.process.send(frame)
        var shell = TaskShell(worker: worker, dynamicUID: dynamicUID, run: task.run.id, index: task.index)
        shell.uidStage = uidStage
        shell.lane = task.lane
        taskShells[task.token] = shell
        worker.running += 1
        if task.stage.limits.wall != nil { armLimitTimer() }
    }

    public func engine(_ engine: Engine, signal token: UInt64, _ signal: Int32) {
        guard let shell = taskShells[token] else { return }
        var frame = FrameWriter(type: UInt8(TW_MSG_KILL.rawValue))
        frame.u64(token)
        frame.u32(UInt32(signal))
        shell.worker.process.send(frame)
        armLimitTimer()
    }

    public func engine(_ engine: Engine, finished stage: EngineStage, of run: EngineRun) {
        let key = StageKey(run: run.id, stage: stage.position)
        sandboxes.removeValue(forKey: key)
        for uid in stageUIDs.removeValue(forKey: key) ?? [] { dynamicUsers.give(back: uid) }
        guard let id = stageIDs.removeValue(forKey: key) else { return }
        for worker in workers where worker.definedStages.remove(id) != nil {
            var frame = FrameWriter(type: UInt8(TW_MSG_FORGET_STAGE.rawValue))
            frame.u32(id)
            worker.process.send(frame)
        }
    }

    public func engine(_ engine: Engine, ended run: EngineRun) {
        let shell = runShells.removeValue(forKey: run.id)
        if let pinned = shell?.worker { retireIfUnused(pinned) }
        finishedSinceFlush.append((run, shell?.watchers ?? []))
        metrics.runs[JobState(job: run.job.name, state: run.state.rawValue), default: 0] += 1
        retentionSoon()
        logInfo(
            "run \(run.id) of \(run.job.name) \(run.state.rawValue): \(run.counts.succeeded) succeeded, "
                + "\(run.counts.failed) failed, \(run.counts.cancelled) cancelled"
                + (run.reason.map { " (\($0))" } ?? ""),
            metadata: ["job": "\(run.job.name)", "run": "\(run.id)"])
    }

    /// Worker stage ids: unique per (run, stage) for the daemon's lifetime.
    func workerStageID(run: Int64, stage: Int) -> UInt32 {
        let key = StageKey(run: run, stage: stage)
        if let id = stageIDs[key] { return id }
        nextStageID &+= 1
        stageIDs[key] = nextStageID
        return nextStageID
    }

    /// A stage's effective sandbox in a run: its settings over the
    /// server's defaults, with the run's directory writable when the stage
    /// uses it.
    func sandbox(of stage: EngineStage, in run: EngineRun) -> ResolvedSandbox {
        let key = StageKey(run: run.id, stage: stage.position)
        if let known = sandboxes[key] { return known }
        var resolved = ResolvedSandbox(
            stage.definition.sandbox.overlaid(on: config.defaultSandbox), protected: protectedPaths)
        if stage.definition.usesRunDirectory {
            resolved = resolved.withRunDirectory(engine.files.directory(of: run.id))
        }
        sandboxes[key] = resolved
        return resolved
    }

    private func stageFrame(id: UInt32, stage: EngineStage, of run: EngineRun) -> FrameWriter {
        var frame = FrameWriter(type: UInt8(TW_MSG_STAGE.rawValue))
        frame.u32(id)
        frame.str(stage.definition.executor)
        let limits = stage.limits
        frame.u64(limits.cpu ?? 0)
        frame.u64(limits.memory ?? 0)
        frame.u64(limits.openFiles ?? 0)
        frame.u64(limits.processes ?? 0)
        frame.u64(limits.fileSize ?? 0)
        frame.u64(limits.output ?? 0)
        frame.u64(limits.cpuQuota ?? 0)
        let params = stage.definition.params
        frame.u32(UInt32(params.count))
        for param in params {
            frame.str(param.name)
            let (type, values) = wireValues(param.value)
            frame.u8(type)
            frame.u32(UInt32(values.count))
            values.forEach { frame.str($0) }
        }
        let sandbox = self.sandbox(of: stage, in: run)
        let cgroup = cgroups.map { sandbox.needsCgroup(limits: limits, controllers: $0.controllers) } ?? false
        sandbox.write(to: &frame, cgroup: cgroup)
        frame.u8(UInt8(stage.definition.result == .stdout ? TW_RESULT_STDOUT.rawValue : TW_RESULT_EXECUTOR.rawValue))
        frame.u64(limits.result ?? Limits.defaultResult)
        frame.u64(UInt64(run.id))
        frame.str(run.job.name)
        frame.str(stage.name)
        frame.str(stage.definition.usesRunDirectory ? engine.files.directory(of: run.id) : "")
        frame.str(stage.inputPath ?? "")
        if case .pooled(let recycleAfter) = stage.definition.isolation {
            frame.u32(UInt32(recycleAfter))
        } else {
            frame.u32(0)
        }
        return frame
    }

    private func wireValues(_ value: ParamValue) -> (UInt8, [String]) {
        switch value {
        case .string(let s): return (1, [s])
        case .integer(let i): return (2, [String(i)])
        case .number(let d): return (3, [String(d)])
        case .boolean(let b): return (4, [b ? "true" : "false"])
        case .list(let items): return (5, items)
        case .map(let entries): return (6, entries.flatMap { [$0.key, $0.value] })
        }
    }

    // MARK: Limits and cancellation

    /// Keeps one timer running while any running microtask has a deadline.
    func armLimitTimer() {
        guard !limitTimerArmed else { return }
        limitTimerArmed = true
        limitTimer.start(after: 50, repeatEvery: 50) { [unowned self] in
            self.engine.tick(at: self.now())
            if !self.engine.hasDeadlines {
                self.limitTimer.stop()
                self.limitTimerArmed = false
            }
        }
    }

    /// Cancels a run: queued microtasks at once, running ones get SIGTERM
    /// and, after the grace period, SIGKILL.
    func cancel(run: EngineRun) {
        engine.cancel(run, at: now())
        if engine.hasDeadlines { armLimitTimer() }
    }

    // MARK: Completion

    func handle(_ event: WorkerEvent, from worker: WorkerSlot) {
        switch event {
        case let .hello(pid, problems):
            worker.ready = true
            workerRestartDelay = 100
            notifyReady()
            for problem in problems { logWarning("worker \(pid): \(problem)") }
            logDebug("worker \(pid) is ready")
            engine.emit(
                "worker.started", at: now(), ["pid": .int(Int64(pid)), "problems": .array(problems.map(JSON.string))])
            dispatch()
        case let .started(token, pid):
            if taskShells[token] != nil { taskPIDs[token] = pid }
        case let .progress(token, fraction):
            if taskShells[token] != nil { taskProgress[token] = fraction }
        case let .output(token, offsets, stdout, stderr):
            if let shell = taskShells[token] {
                forwardOutput(
                    run: shell.run, index: shell.index, attempt: engine.running[token]?.attempt ?? 0, offsets: offsets,
                    stdout: stdout, stderr: stderr)
            }
        case let .done(completion):
            guard let shell = taskShells.removeValue(forKey: completion.token),
                let task = engine.running[completion.token]
            else { return }
            // Most microtasks end before their start or any progress
            // reaches the daemon: nothing to hash then.
            if !taskProgress.isEmpty { taskProgress.removeValue(forKey: completion.token) }
            if !taskPIDs.isEmpty { taskPIDs.removeValue(forKey: completion.token) }
            if !logFollowers.isEmpty { noteOutputEnded(run: shell.run, index: shell.index) }
            release(shell)
            engine.finished(token: completion.token, outcome(of: task.stage.limits, completion), at: now())
            dispatchPending = true
            drainProgressed()
        }
    }

    /// Gives back what a microtask held: its uid (with its lane's last
    /// microtask; called before the engine hears of its end, while the
    /// lane still counts it), its place on the worker.
    private func release(_ shell: TaskShell) {
        if let uid = shell.dynamicUID {
            let shared = laneUIDs[shell.lane] == uid
            if !shared || engine.microtasks(inLane: shell.lane) <= 1 {
                if shared { laneUIDs.removeValue(forKey: shell.lane) }
                if let stage = shell.uidStage, stageIDs[stage] != nil {
                    stageUIDs[stage, default: []].append(uid)
                } else {
                    dynamicUsers.give(back: uid)
                }
            }
        }
        shell.worker.running -= 1
        retireIfUnused(shell.worker)
    }

    /// Turns what the worker saw into a state and a reason a person can act on.
    /// Causes come from what the kernel told the worker (the wait status,
    /// the signal's sender, rusage, the peak address space the worker read);
    /// the microtask's own words are only quoted: its last error line.
    func outcome(of limits: Limits, _ c: WorkerCompletion) -> TaskCompletion {
        let cpu = Double(c.userMicros + c.systemMicros) / 1e6
        // Without tracing the worker cannot tell the kernel's signals from a
        // process's; then a limit's signal is taken at its word.
        let fromKernel = c.has(UInt32(TW_FLAG_KERNEL_SIGNAL.rawValue)) || !c.has(UInt32(TW_FLAG_TRACED.rawValue))
        var state: TaskState = .failed
        var exitCode: Int?
        var signal: String?
        var reason: String?
        var failure: FailureKind = .failed
        var quotesError = false
        switch c.end {
        case .failed(let message):
            reason = message
        case .exited(let code):
            exitCode = Int(code)
            if code == 0 {
                state = .succeeded
            } else {
                reason = "exited with code \(code)"
                quotesError = true
            }
        case .signaled(let number):
            signal = signalName(number)
            reason = "killed by \(signalName(number))"
            failure = .signal
            quotesError = true
            // A SIGXCPU may be one the microtask queued itself, with the
            // kernel's code: it counts as the limit only when the CPU time
            // (the kernel's count, which cannot be forged) reached half of
            // the limit. Not all of it: the kernel fires RLIMIT_CPU on its
            // tick-sampled count, which under load runs ahead of the
            // runtime wait4 reports (0.93 s seen for a 1 s limit).
            let overCPU = limits.cpu.map { cpu * 1000 >= Double($0) } == true
            let overSoftLimit = limits.cpu.map { cpu * 1000 >= Double($0) / 2 } == true
            if (number == SIGXCPU && fromKernel && overSoftLimit) || (number == SIGKILL && overCPU) {
                reason = "cpu limit \(formatDuration(limits.cpu ?? 0)) exceeded"
                failure = .timeout
                quotesError = false
            } else if number == SIGSYS && fromKernel {
                reason = "killed by SIGSYS: a system call the sandbox forbids"
            } else if number == SIGXFSZ && fromKernel, let size = limits.fileSize {
                reason = "file size limit \(formatSize(size)) exceeded"
                failure = .failed
                quotesError = false
            }
        }
        if state == .failed, let memory = limits.memory {
            let nearLimit = Double(memory) * 0.9
            if Double(c.peakAddressSpace) >= nearLimit || Double(c.maxRSSKiB) * 1024 >= nearLimit {
                reason = "memory limit \(formatSize(memory)) exceeded"
                failure = .memory
                quotesError = true
            }
        }
        if c.has(UInt32(TW_FLAG_OOM_KILLED.rawValue)), let memory = limits.memory {
            state = .failed
            reason = "memory limit \(formatSize(memory)) exceeded (the cgroup's OOM killer ended it)"
            failure = .memory
            quotesError = false
        }
        if c.has(UInt32(TW_FLAG_CHANNEL_ABUSED.rawValue)) {
            state = .failed
            reason = "killed: it wrote malformed data on its result channel (descriptor 3)"
            failure = .failed
            quotesError = false
        }
        if c.has(UInt32(TW_FLAG_OUTPUT_LIMIT.rawValue)) {
            state = .failed
            let cap = UInt64(TW_OUTPUT_CAP)
            reason = "output limit \(formatSize(min(limits.output ?? cap, cap))) exceeded"
            failure = .failed
            quotesError = false
        }
        if c.has(UInt32(TW_FLAG_RESULT_LIMIT.rawValue)) {
            state = .failed
            let cap = UInt64(TW_OUTPUT_CAP)
            reason = "result limit \(formatSize(min(limits.result ?? Limits.defaultResult, cap))) exceeded"
            failure = .failed
            quotesError = false
        }
        if quotesError, let line = lastErrorLine(logged: c.errorLine, stderr: c.stderr), let cause = reason {
            reason = "\(cause): \(line)"
        }
        return TaskCompletion(
            state: state, exitCode: exitCode, signal: signal, reason: reason,
            result: c.has(UInt32(TW_FLAG_HAS_RESULT.rawValue)) ? c.result : nil,
            cpuSeconds: cpu, maxRSS: Int64(c.maxRSSKiB) * 1024, finishedAt: wallClockSeconds(),
            duration: Double(c.wallMicros) / 1e6, stdout: c.stdout, stderr: c.stderr,
            stdoutTruncated: c.has(UInt32(TW_FLAG_STDOUT_TRUNCATED.rawValue)),
            stderrTruncated: c.has(UInt32(TW_FLAG_STDERR_TRUNCATED.rawValue)),
            failure: state == .failed ? failure : nil, permanent: c.has(UInt32(TW_FLAG_PERMANENT.rawValue)))
    }

    // MARK: Worker failure

    /// Fails the microtasks a dead worker was running; a fresh worker takes
    /// the queue.
    func workerDied(_ worker: WorkerSlot, how: String) {
        workers.removeAll { $0 === worker }
        if stopped {
            // Its microtasks stay recorded as running; the next start
            // queues them again.
            if workers.isEmpty { shutdownTimer.close() }
            return
        }
        let lost = taskShells.filter { $0.value.worker === worker }
        engine.emit(
            worker.retiring ? "worker.stopped" : "worker.died", at: now(),
            [
                "pid": .int(Int64(worker.process.pid)), "how": .string(how), "lost": .int(Int64(lost.count)),
                "retiring": .bool(worker.retiring),
            ])
        for (token, shell) in lost {
            taskShells.removeValue(forKey: token)
            taskProgress.removeValue(forKey: token)
            taskPIDs.removeValue(forKey: token)
            if !logFollowers.isEmpty { noteOutputEnded(run: shell.run, index: shell.index) }
            release(shell)
            engine.finished(
                token: token,
                TaskCompletion(
                    state: .failed, reason: "lost: worker process \(how)", finishedAt: wallClockSeconds(),
                    failure: .lost),
                at: now())
        }
        drainProgressed()
        if worker === currentWorker {
            currentWorker = nil
            logError("worker \(worker.process.pid) \(how); starting a new one")
            scheduleWorkerRestart()
        }
    }
}
