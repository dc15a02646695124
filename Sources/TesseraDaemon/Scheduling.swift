// Dispatching microtasks to the worker, enforcing wall-clock limits,
// recording what the worker reports, and finishing stages and runs.
//
// Slots are global (`slots` in tessera.yaml); each job's `concurrency`
// caps its own microtasks across all its runs. Runs take turns (round
// robin) so one large run does not starve the others.

internal import CTesseraWire
import TesseraConfig
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

/// The grace period between SIGTERM and SIGKILL.
let killGraceMilliseconds: UInt64 = 2000

extension Daemon {
    // MARK: Dispatch

    /// Starts as many queued microtasks as slots and concurrency allow.
    func dispatch() {
        guard !shuttingDown else { return }
        while runningTasks.count < config.slots {
            guard let (run, stage, worker) = nextRunnableStage(), let position = stage.takeNext() else { return }
            start(run: run, stage: stage, position: position, on: worker)
        }
    }

    /// The worker a run's microtasks go to: the one that was current when
    /// the run started (its plugins are the ones the run was checked
    /// against), as long as it lives; otherwise the current one.
    func worker(for run: ActiveRun) -> WorkerSlot? {
        if let pinned = run.worker, workers.contains(where: { $0 === pinned }) { return pinned }
        run.worker = currentWorker
        return currentWorker
    }

    /// Stops a worker that a reload replaced once nothing uses it any more:
    /// no microtask runs on it and no active run is pinned to it.
    func retireIfUnused(_ worker: WorkerSlot) {
        guard worker.retiring, worker.running == 0, !activeRuns.values.contains(where: { $0.worker === worker })
        else { return }
        worker.process.shutdown()
    }

    /// The next (run, stage) with a queued microtask whose job has room,
    /// taking runs in turn.
    private func nextRunnableStage() -> (ActiveRun, StagePlan, WorkerSlot)? {
        let count = runOrder.count
        guard count > 0 else { return nil }
        for step in 0..<count {
            let run = runOrder[(roundRobin + step) % count]
            if run.cancelRequested { continue }
            if let limit = run.job.concurrency, (runningPerJob[run.job.name] ?? 0) >= limit { continue }
            guard let worker = worker(for: run), worker.ready else { continue }
            if let stage = run.stages.first(where: { $0.phase == .ready && $0.hasQueued }) {
                roundRobin = (roundRobin + step + 1) % count
                return (run, stage, worker)
            }
        }
        return nil
    }

    private func start(run: ActiveRun, stage: StagePlan, position: Int, on worker: WorkerSlot) {
        let index = stage.firstIndex + position
        let now = wallClockSeconds()
        let stageID = workerStageID(run: run, stage: stage)
        if !worker.definedStages.contains(stageID) {
            worker.process.send(stageFrame(id: stageID, stage: stage))
            worker.definedStages.insert(stageID)
        }
        nextToken += 1
        let token = nextToken
        var frame = FrameWriter(type: UInt8(TW_MSG_TASK.rawValue))
        frame.u64(token)
        frame.u32(stageID)
        frame.u64(UInt64(index))
        frame.str(stage.definition.items.item(at: position))
        let dynamicUID = stage.sandbox.dynamicUser ? dynamicUsers.take() : nil
        frame.u32(dynamicUID ?? UInt32(TW_ID_UNCHANGED))
        worker.process.send(frame)

        let monotonic = monotonicMilliseconds()
        runningTasks[token] = RunningTask(
            run: run, stage: stage, index: index, startedAt: now, startedMonotonic: monotonic,
            wallDeadline: stage.limits.wall.map { monotonic + $0 }, dynamicUID: dynamicUID, worker: worker)
        worker.running += 1
        runningPerJob[run.job.name, default: 0] += 1
        run.counts.queued -= 1
        run.counts.running += 1
        if run.state == .queued {
            run.state = .running
            run.startedAt = now
            record { try store.setRunState(id: run.id, state: .running, startedAt: now, finishedAt: nil) }
        }
        run.changed = true
        record { try store.markRunning(run: run.id, index: index, at: now) }
        if stage.limits.wall != nil { armLimitTimer() }
    }

    /// Worker stage ids: unique per (run, stage) for the daemon's lifetime.
    func workerStageID(run: ActiveRun, stage: StagePlan) -> UInt32 {
        let key = StageKey(run: run.id, stage: stage.position)
        if let id = stageIDs[key] { return id }
        nextStageID &+= 1
        stageIDs[key] = nextStageID
        return nextStageID
    }

    private func stageFrame(id: UInt32, stage: StagePlan) -> FrameWriter {
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
        let cgroup = cgroups.map { stage.sandbox.needsCgroup(limits: limits, controllers: $0.controllers) } ?? false
        stage.sandbox.write(to: &frame, cgroup: cgroup)
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
        limitTimer.start(after: 50, repeatEvery: 50) { [unowned self] in self.checkDeadlines() }
    }

    private func checkDeadlines() {
        let now = monotonicMilliseconds()
        var anyDeadline = false
        for (token, task) in runningTasks {
            if let killAt = task.killDeadline {
                anyDeadline = true
                if now >= killAt {
                    signalTask(token: token, task.worker, SIGKILL)
                    runningTasks[token]?.killDeadline = nil
                }
            } else if let wall = task.wallDeadline, !task.killedForWall {
                anyDeadline = true
                if now >= wall {
                    runningTasks[token]?.killedForWall = true
                    runningTasks[token]?.killDeadline = now + killGraceMilliseconds
                    signalTask(token: token, task.worker, SIGTERM)
                }
            }
        }
        if !anyDeadline {
            limitTimer.stop()
            limitTimerArmed = false
        }
    }

    func signalTask(token: UInt64, _ worker: WorkerSlot, _ signal: Int32) {
        var frame = FrameWriter(type: UInt8(TW_MSG_KILL.rawValue))
        frame.u64(token)
        frame.u32(UInt32(signal))
        worker.process.send(frame)
    }

    /// Cancels a run: queued microtasks are cancelled at once, running ones
    /// get SIGTERM and, after the grace period, SIGKILL.
    func cancel(run: ActiveRun) {
        guard !run.cancelRequested else { return }
        run.cancelRequested = true
        for stage in run.stages where stage.phase != .finished {
            cancelQueued(of: stage, in: run, reason: "run cancelled")
        }
        let deadline = monotonicMilliseconds() + killGraceMilliseconds
        for (token, task) in runningTasks where task.run === run {
            runningTasks[token]?.cancelled = true
            runningTasks[token]?.killDeadline = deadline
            signalTask(token: token, task.worker, SIGTERM)
        }
        if run.counts.running > 0 { armLimitTimer() }
        run.changed = true
        advance(run)
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
            dispatch()
        case .started:
            break
        case let .progress(token, fraction):
            if runningTasks[token] != nil { taskProgress[token] = fraction }
        case let .done(completion):
            guard let task = runningTasks.removeValue(forKey: completion.token) else { return }
            taskProgress.removeValue(forKey: completion.token)
            finish(task, completion: outcome(of: task, completion))
            dispatch()
            drainProgressed()
        }
    }

    /// Turns what the worker saw into a state and a reason a person can act on.
    /// Causes come from what the kernel told the worker (the wait status,
    /// the signal's sender, rusage, the peak address space the worker read);
    /// the microtask's own words are only quoted: its last error line.
    func outcome(of task: RunningTask, _ c: WorkerCompletion) -> Store.Completion {
        let limits = task.stage.limits
        let cpu = Double(c.userMicros + c.systemMicros) / 1e6
        // Without tracing the worker cannot tell the kernel's signals from a
        // process's; then a limit's signal is taken at its word.
        let fromKernel = c.has(UInt32(TW_FLAG_KERNEL_SIGNAL.rawValue)) || !c.has(UInt32(TW_FLAG_TRACED.rawValue))
        var state: TaskState = .failed
        var exitCode: Int?
        var signal: String?
        var reason: String?
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
                quotesError = false
            } else if number == SIGSYS && fromKernel {
                reason = "killed by SIGSYS: a system call the sandbox forbids"
            } else if number == SIGXFSZ && fromKernel, let size = limits.fileSize {
                reason = "file size limit \(formatSize(size)) exceeded"
                quotesError = false
            }
        }
        if state == .failed, let memory = limits.memory {
            let nearLimit = Double(memory) * 0.9
            if Double(c.peakAddressSpace) >= nearLimit || Double(c.maxRSSKiB) * 1024 >= nearLimit {
                reason = "memory limit \(formatSize(memory)) exceeded"
                quotesError = true
            }
        }
        if c.has(UInt32(TW_FLAG_OOM_KILLED.rawValue)), let memory = limits.memory {
            state = .failed
            reason = "memory limit \(formatSize(memory)) exceeded (the cgroup's OOM killer ended it)"
            quotesError = false
        }
        if c.has(UInt32(TW_FLAG_CHANNEL_ABUSED.rawValue)) {
            state = .failed
            reason = "killed: it wrote malformed data on its result channel (descriptor 3)"
            quotesError = false
        }
        if c.has(UInt32(TW_FLAG_OUTPUT_LIMIT.rawValue)) {
            state = .failed
            let cap = UInt64(TW_OUTPUT_CAP)
            reason = "output limit \(formatSize(min(limits.output ?? cap, cap))) exceeded"
            quotesError = false
        }
        if task.killedForWall {
            state = .failed
            reason = "wall time limit \(formatDuration(limits.wall ?? 0)) exceeded"
            quotesError = false
        }
        if task.cancelled {
            state = .cancelled
            reason = "run cancelled"
            quotesError = false
        }
        if quotesError, let line = lastErrorLine(logged: c.errorLine, stderr: c.stderr), let cause = reason {
            reason = "\(cause): \(line)"
        }
        return Store.Completion(
            state: state, exitCode: exitCode, signal: signal, reason: reason,
            result: c.has(UInt32(TW_FLAG_HAS_RESULT.rawValue)) ? c.result : nil,
            cpuSeconds: cpu, maxRSS: Int64(c.maxRSSKiB) * 1024, finishedAt: wallClockSeconds(),
            duration: Double(c.wallMicros) / 1e6, stdout: c.stdout, stderr: c.stderr,
            stdoutTruncated: c.has(UInt32(TW_FLAG_STDOUT_TRUNCATED.rawValue)),
            stderrTruncated: c.has(UInt32(TW_FLAG_STDERR_TRUNCATED.rawValue)))
    }

    func finish(_ task: RunningTask, completion: Store.Completion) {
        let run = task.run
        record { try store.finishTask(run: run.id, index: task.index, completion) }
        if let uid = task.dynamicUID { dynamicUsers.give(back: uid) }
        task.worker.running -= 1
        runningPerJob[run.job.name, default: 1] -= 1
        run.counts.running -= 1
        run.counts[completion.state] += 1
        task.stage.unfinished -= 1
        if completion.state == .failed { task.stage.failed += 1 }
        if completion.state == .cancelled { task.stage.cancelled += 1 }
        run.changed = true
        retireIfUnused(task.worker)
        advance(run)
    }

    /// Moves a run's stages forward after a change, and ends the run when
    /// every stage is finished.
    func advance(_ run: ActiveRun) {
        var progressed = true
        while progressed {
            progressed = false
            for stage in run.stages {
                switch stage.phase {
                case .ready where stage.unfinished == 0:
                    stage.phase = .finished
                    forgetStage(run: run, stage: stage)
                    progressed = true
                case .waiting:
                    let dependencies = stage.dependencies.map { run.stages[$0] }
                    if let failed = dependencies.first(where: { $0.phase == .finished && $0.failed + $0.cancelled > 0 })
                        ?? (run.cancelRequested ? stage : nil)
                    {
                        skip(
                            stage, of: run,
                            because: failed === stage ? "run cancelled" : "stage \(failed.definition.name) failed")
                        progressed = true
                    } else if dependencies.allSatisfy({ $0.phase == .finished }) {
                        stage.phase = .ready
                        if stage.unfinished == 0 { stage.phase = .finished }
                        progressed = true
                    }
                default:
                    break
                }
            }
        }
        if run.isComplete { end(run) }
    }

    /// Marks a stage that will never run as finished, its microtasks cancelled.
    private func skip(_ stage: StagePlan, of run: ActiveRun, because reason: String) {
        cancelQueued(of: stage, in: run, reason: "not run: \(reason)")
        stage.phase = .finished
        run.changed = true
    }

    /// Cancels the microtasks of a stage that have not started, with a reason.
    private func cancelQueued(of stage: StagePlan, in run: ActiveRun, reason: String) {
        let queued = stage.takeAllQueued()
        guard !queued.isEmpty else { return }
        let now = wallClockSeconds()
        record {
            try store.cancelQueuedTasks(
                run: run.id, indices: queued.map { stage.firstIndex + $0 }, reason: reason, at: now)
        }
        stage.unfinished -= queued.count
        stage.cancelled += queued.count
        run.counts.queued -= queued.count
        run.counts.cancelled += queued.count
    }

    private func forgetStage(run: ActiveRun, stage: StagePlan) {
        guard let id = stageIDs.removeValue(forKey: StageKey(run: run.id, stage: stage.position)) else { return }
        for worker in workers where worker.definedStages.remove(id) != nil {
            var frame = FrameWriter(type: UInt8(TW_MSG_FORGET_STAGE.rawValue))
            frame.u32(id)
            worker.process.send(frame)
        }
    }

    private func end(_ run: ActiveRun) {
        guard !run.state.isFinal else { return }
        let final: RunState =
            run.cancelRequested
            ? .cancelled : (run.counts.failed > 0 || run.counts.cancelled > 0 ? .failed : .succeeded)
        run.state = final
        let now = wallClockSeconds()
        record { try store.setRunState(id: run.id, state: final, startedAt: run.startedAt ?? now, finishedAt: now) }
        activeRuns.removeValue(forKey: run.id)
        runOrder.removeAll { $0 === run }
        if roundRobin >= runOrder.count { roundRobin = 0 }
        if let pinned = run.worker { retireIfUnused(pinned) }
        finishedSinceFlush.append((run, now))
        logInfo(
            "run \(run.id) of \(run.job.name) \(final.rawValue): \(run.counts.succeeded) succeeded, "
                + "\(run.counts.failed) failed, \(run.counts.cancelled) cancelled",
            metadata: ["job": "\(run.job.name)", "run": "\(run.id)"])
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
        let lost = runningTasks.filter { $0.value.worker === worker }
        for (token, task) in lost {
            runningTasks.removeValue(forKey: token)
            taskProgress.removeValue(forKey: token)
            var completion = Store.Completion(
                state: task.cancelled ? .cancelled : .failed, reason: "worker process \(how)",
                finishedAt: wallClockSeconds())
            if task.cancelled { completion.reason = "run cancelled" }
            finish(task, completion: completion)
        }
        drainProgressed()
        if worker === currentWorker {
            currentWorker = nil
            logError("worker \(worker.process.pid) \(how); starting a new one")
            scheduleWorkerRestart()
        }
    }
}

struct StageKey: Hashable {
    let run: Int64
    let stage: Int
}
