// Engine.swift
//
// Why this file exists: this is the life of a run, in one place. A run is
// created from a job (its stages partitioned from their sources and
// written to the store in one transaction), its stages become ready as the
// stages they depend on succeed (a `from:` or `reduce:` stage is
// partitioned then, from the results upstream), microtasks are dispatched
// to free slots taking runs in turn, their completions are recorded and
// counted against each stage's `max_failures`, wall-clock limits and
// cancellation become signals, and a run ends when every stage has.
//
// The engine does no I/O of its own but through the RunStore it is given
// and the files of runs (RunFiles, partition sources); it has no event
// loop and no clock: the shell (tesserad) passes the time in with every
// event and carries out what the engine asks through EngineDelegate. So
// its tests drive it directly, deterministically, without a daemon.

import TesseraConfig
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// A request the engine refuses, in words for the caller.
public struct EngineError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public final class Engine {
    public struct Settings: Sendable {
        /// Microtasks that may run at once.
        public var slots: Int
        /// The server's default limits, under each stage's own.
        public var defaultLimits: Limits
        /// Between SIGTERM and SIGKILL, for wall limits and cancellation.
        public var killGrace: UInt64
        /// The most items a stage may have (ItemSource.maximumCount).
        public var maximumItems: Int
        /// What the requests of the microtasks running at once must fit in;
        /// nil: only slots count.
        public var capacity: Capacity?
        /// Pressure thresholds in percent (PressureSettings.thresholds).
        public var pressure: [(resource: String, percent: Double)] = []
        /// How long (ms) a stage whose request does not fit may wait while
        /// smaller ones go ahead; after that nothing else starts until it has.
        public var reservationAfter: UInt64

        public init(
            slots: Int, defaultLimits: Limits = Limits(), killGrace: UInt64 = 2000,
            maximumItems: Int = ItemSource.maximumCount, capacity: Capacity? = nil,
            pressure: [(resource: String, percent: Double)] = [], reservationAfter: UInt64 = 5000
        ) {
            self.pressure = pressure
            self.slots = slots
            self.defaultLimits = defaultLimits
            self.killGrace = killGrace
            self.maximumItems = maximumItems
            self.capacity = capacity
            self.reservationAfter = reservationAfter
        }
    }

    /// How a run is to be started.
    public struct RunRequest {
        /// The job with any run-time parameters applied.
        public var job: JobDefinition
        /// The run-time parameter overrides, as a JSON object of strings.
        public var params: String
        public var startedBy: String
        /// The run's priority (0-100) when not the job's.
        public var priority: Int?
        /// Items sent by the caller for one stage, and how many there are.
        public var callerItems: (stage: String, items: any ItemStream, count: Int)?
        /// The run this one reruns, and whether only what did not succeed.
        public var rerun: (run: SavedRun, failedOnly: Bool)?
        /// The schedule's time this run is for, when the schedule started it.
        public var scheduledFor: Double?

        public init(
            job: JobDefinition, params: String = "{}", startedBy: String, priority: Int? = nil,
            callerItems: (stage: String, items: any ItemStream, count: Int)? = nil,
            rerun: (run: SavedRun, failedOnly: Bool)? = nil, scheduledFor: Double? = nil
        ) {
            self.scheduledFor = scheduledFor
            self.job = job
            self.params = params
            self.startedBy = startedBy
            self.priority = priority
            self.callerItems = callerItems
            self.rerun = rerun
        }
    }

    public var settings: Settings
    public let store: any RunStore
    public let files: RunFiles
    public weak var delegate: (any EngineDelegate)?
    /// While set, nothing new starts (the daemon is draining).
    public var paused = false
    /// Admission held back by the machine's pressure.
    public private(set) var pressureGate = PressureGate()
    public private(set) var runs: [Int64: EngineRun] = [:]
    private var order: [EngineRun] = []
    private var roundRobin = 0
    public private(set) var running: [UInt64: RunningMicrotask] = [:]
    private var runningPerJob: [String: Int] = [:]
    private var nextToken: UInt64 = 0
    private var lastDispatch = Instant(wall: 0, monotonic: 0)
    /// Stages whose request did not fit when last considered (few: only
    /// stages with requests ever are), for the reservation.
    private var blocked: [EngineStage] = []
    /// The slots in use: lanes (Model.swift), one per running microtask
    /// but for a pooled stage's microtask handed out ahead.
    private var lanes: [UInt64: Lane] = [:]
    private var nextLane: UInt64 = 0
    public var slotsInUse: Int { lanes.count }
    /// How many running microtasks hold the lane (0 once it is given back).
    public func microtasks(inLane lane: UInt64) -> Int { lanes[lane]?.count ?? 0 }
    /// The sums of the requests of the lanes.
    public private(set) var cpuInUse = 0.0
    public private(set) var memoryInUse: UInt64 = 0
    /// Runs that ended since the shell last said their end is committed.
    private var endedSinceCommit: [Int64] = []
    /// The first store write that failed; once set the shell must stop.
    public private(set) var storeFailure: String?
    /// Failed attempts waiting for their retry, earliest first.
    private var retries = RetryQueue()
    /// The peak RSS seen of each `memory: auto` stage (by job and stage).
    private var learnedMemory: [LearnedKey: UInt64] = [:]
    /// The jobs with a schedule, by name (Schedule.swift).
    var scheduled: [String: ScheduledJob] = [:]
    /// Whether `updateSchedules` has run: only its first call catches up.
    var schedulesLoaded = false
    /// Schedule fires that wait for a run to end (`overlap: queue`).
    var queuedFires: [String] = []
    /// Where the engine says what it decided on its own (schedules).
    public var log: (String) -> Void = { _ in }
    /// A number in [0, 1) for the jitter of retries; tests set their own.
    public var random: () -> Double = { Double.random(in: 0..<1) }
    /// Told of every attempt as it ends (for metrics): whether it is
    /// retried.
    public var attemptEnded: ((EngineRun, EngineStage, TaskCompletion, _ retried: Bool) -> Void)?

    /// Microtasks written to the store per statement when partitioning.
    public static let insertBatch = 64

    public init(settings: Settings, store: any RunStore, files: RunFiles) {
        self.settings = settings
        self.store = store
        self.files = files
    }

    /// Microtasks waiting for a slot, over all runs (waiting retries too).
    public var queuedCount: Int { runs.values.reduce(0) { $0 + $1.counts.queued } }

    /// When (monotonic ms) the earliest waiting retry is due: the shell
    /// calls `dispatch` then.
    public var nextRetryDue: UInt64? { retries.earliest }

    // MARK: Creating runs

    /// Creates a run: records it and partitions every stage whose items do
    /// not depend on another stage's results, in one transaction committed
    /// before this returns. A source that cannot be read fails its stage
    /// (and so the run) with the reason; it does not refuse the run.
    public func createRun(_ request: RunRequest, at now: Instant) throws(EngineError) -> EngineRun {
        let job = request.job
        var plans: [(SourcePlan, String)] = job.stages.map { (.definition, $0.items.summary) }
        if let caller = request.callerItems {
            guard let position = job.stages.firstIndex(where: { $0.name == caller.stage }) else {
                throw EngineError(
                    "job \(job.name) has no stage \"\(caller.stage)\" (stages: "
                        + job.stages.map(\.name).joined(separator: ", ") + ")")
            }
            guard job.stages[position].items.upstream.isEmpty else {
                throw EngineError(
                    "stage \(caller.stage) takes its items from other stages' results; it cannot take the caller's")
            }
            plans[position] = (.caller(caller.items), "caller: \(caller.count) items")
        }
        if let (saved, failedOnly) = request.rerun {
            for (position, stage) in job.stages.enumerated() {
                // A reduce stage is made again from this run's results, and
                // so is a stage whose source failed (it has no items to take).
                guard let old = saved.stages.first(where: { $0.name == stage.name }), old.count != nil,
                    !isReduce(stage), !(old.state == .failed && old.count == 0)
                else { continue }
                if failedOnly {
                    plans[position] = (
                        .stored(run: saved.id, range: old.range, unsuccessfulOnly: true),
                        "rerun of run \(saved.id): the items that did not succeed (\(old.source))"
                    )
                } else if old.source.hasPrefix("caller:") || old.source.hasPrefix("rerun of") {
                    plans[position] = (
                        .stored(run: saved.id, range: old.range, unsuccessfulOnly: false),
                        "rerun of run \(saved.id): \(old.source)"
                    )
                }
            }
        }
        let stages = job.stages.enumerated().map { position, definition in
            EngineStage(
                definition: definition, position: position,
                limits: definition.limits.overlaid(on: settings.defaultLimits), plan: plans[position].0,
                source: plans[position].1)
        }
        let priority = request.priority ?? request.rerun?.run.priority ?? job.priority
        var record = NewRun(
            job: job.name, params: request.params, definition: job.file, createdAt: now.wall,
            startedBy: request.startedBy, rerunOf: request.rerun?.run.id, priority: priority)
        record.scheduledFor = request.scheduledFor
        let run: EngineRun
        do {
            run = try store.inTransaction { () throws -> EngineRun in
                let id = try store.insertRun(record)
                try store.appendEvent(
                    EventRecord(
                        time: now.wall, kind: "run.created", job: job.name, run: id,
                        fields: [
                            "startedBy": .string(request.startedBy), "priority": .int(Int64(priority)),
                            "rerunOf": .optional(request.rerun?.run.id, JSON.int),
                            "scheduledFor": .optional(request.scheduledFor, JSON.double),
                        ]))
                let run = EngineRun(
                    id: id, job: job, createdAt: now.wall, params: request.params, startedBy: request.startedBy,
                    rerunOf: request.rerun?.run.id, priority: priority, stages: stages)
                run.scheduledFor = request.scheduledFor
                // The fire is durable with its run: a restart neither
                // repeats nor misses it.
                if let time = request.scheduledFor, let schedule = job.schedule {
                    try store.recordFire(job: job.name, schedule: schedule.summary, at: time)
                }
                for stage in stages { try store.insertStage(run: id, stage.record) }
                // Only a run that gives it to a stage has one: no stage
                // of the others can reach it, and its mkdir and rmdir were
                // a tenth of a one-microtask run's time. Fresh: a creation
                // that crashed before its commit may have left one under
                // the same id (without, that one goes when the run ends).
                if run.usesRunDirectory {
                    files.remove(run: id)
                    do {
                        try files.create(run: id)
                    } catch {
                        throw EngineError("\(error)")
                    }
                }
                for stage in stages where stage.definition.items.upstream.isEmpty || isStored(stage) {
                    try partition(stage, of: run)
                }
                try store.setRunTotal(run: id, total: run.total)
                return run
            }
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError("cannot record the run: \(error)")
        }
        activate(run)
        advance(run, at: now)
        return run
    }

    private func isReduce(_ stage: StageDefinition) -> Bool {
        if case .reduce = stage.items { return true }
        return false
    }

    private func isStored(_ stage: EngineStage) -> Bool {
        if case .stored = stage.plan { return true }
        return false
    }

    private func activate(_ run: EngineRun) {
        runs[run.id] = run
        order.append(run)
        run.changed = true
    }

    // MARK: Partitioning

    /// Writes a stage's microtasks to the store, numbered after the run's
    /// last. A source that fails leaves the stage failed with its reason
    /// (and no microtasks); a store failure is thrown.
    private func partition(_ stage: EngineStage, of run: EngineRun) throws {
        let first = run.total
        var count = 0
        do {
            if stage.isReduce {
                let path = try writeReduceInput(stage, of: run)
                stage.inputPath = path
                try store.insertTasks(run: run.id, firstIndex: first, stage: stage.name, items: [path])
                count = 1
            } else {
                // Written in batches: one statement per batch costs a
                // fraction of one per row.
                var stream = try makeStream(for: stage, of: run)
                var batch: [String] = []
                batch.reserveCapacity(Engine.insertBatch)
                while let item = try stream.next() {
                    batch.append(item)
                    if batch.count == Engine.insertBatch {
                        try store.insertTasks(run: run.id, firstIndex: first + count, stage: stage.name, items: batch)
                        count += batch.count
                        batch.removeAll(keepingCapacity: true)
                    }
                }
                try store.insertTasks(run: run.id, firstIndex: first + count, stage: stage.name, items: batch)
                count += batch.count
            }
        } catch let failure as PartitionFailure where failure.isStoreFailure {
            throw EngineError(failure.message)
        } catch let failure as PartitionFailure {
            if count > 0 { try store.deleteTasks(run: run.id, in: first..<(first + count)) }
            stage.record.firstIndex = first
            stage.record.count = 0
            stage.record.state = .failed
            stage.record.reason = failure.message
            stage.phase = .finished
            try store.updateStage(run: run.id, stage.record)
            return
        }
        stage.record.firstIndex = first
        stage.record.count = count
        stage.cursor = first
        stage.counts.queued = count
        run.total += count
        run.counts.queued += count
        try store.updateStage(run: run.id, stage.record)
    }

    private func makeStream(for stage: EngineStage, of run: EngineRun) throws(PartitionFailure) -> any ItemStream {
        let definition = stage.definition
        var stream: any ItemStream
        switch stage.plan {
        case .caller(let items):
            stream = items
        case .stored(let old, let range, let unsuccessfulOnly):
            // Recorded items are already chunked; they are taken as they are.
            return CappedStream(
                inner: StoredItemsStream(store: store, run: old, range: range, unsuccessfulOnly: unsuccessfulOnly),
                what: stage.record.source, limit: settings.maximumItems)
        case .definition:
            switch definition.items {
            case .list, .range, .none, .matrix: stream = StaticStream(definition.items)
            case .glob(let patterns): stream = GlobStream(patterns: patterns)
            case .lines(let path): stream = LinesStream(path: path)
            case .split(let file, let block): stream = SplitStream(path: file, block: block)
            case .from(let name):
                guard let upstream = run.stage(named: name) else {
                    throw PartitionFailure("from: no stage \(name)")
                }
                stream = ResultsStream(store: store, run: run.id, stage: name, range: upstream.record.range)
            case .reduce:
                preconditionFailure("reduce stages are partitioned by writeReduceInput")
            }
        }
        stream = CappedStream(inner: stream, what: stage.record.source, limit: settings.maximumItems)
        if let size = definition.chunk { stream = ChunkStream(inner: stream, size: size) }
        return stream
    }

    /// The input of a reduce stage: one line per succeeded upstream
    /// microtask, in index order: `{"stage", "index", "item", "result"}`.
    private func writeReduceInput(_ stage: EngineStage, of run: EngineRun) throws -> String {
        let upstream = stage.definition.items.upstream.compactMap(run.stage(named:))
            .sorted { $0.record.range.lowerBound < $1.record.range.lowerBound }
        var storeError: (any Error)?
        let path = try files.writeInput(run: run.id, stage: stage.name) { (write) throws(PartitionFailure) in
            for source in upstream {
                var range = source.record.range
                while !range.isEmpty {
                    let rows: [ResultRow]
                    do {
                        rows = try store.results(run: run.id, in: range, limit: 256)
                    } catch {
                        storeError = error
                        throw PartitionFailure(
                            "cannot read the results of stage \(source.name): \(error)", storeFailed: true)
                    }
                    guard let last = rows.last else { break }
                    for row in rows {
                        try write([
                            "stage": .string(source.name), "index": .int(Int64(row.index)),
                            "item": embeddedItemJSON(row.item), "result": embeddedResult(row.result),
                        ])
                    }
                    range = (last.index + 1)..<range.upperBound
                }
            }
        }
        if let storeError { throw storeError }
        return path
    }

    /// Tells the engine that what it wrote is committed: the directories of
    /// runs whose end is now durable are removed (before, a crash would
    /// take the run up again without the files its last microtasks need).
    public func committed() {
        for run in endedSinceCommit { files.remove(run: run) }
        endedSinceCommit.removeAll()
    }

    // MARK: Recovery

    /// Takes up runs an earlier daemon accepted but did not finish. Their
    /// job must still have the same stages; `resolve` gives its current
    /// definition (with the run's parameters), or nil when it is gone.
    /// Returns a message for each run that could not be taken up (it is
    /// failed, its queued microtasks cancelled).
    public func recover(_ saved: [SavedRun], at now: Instant, resolve: (SavedRun) -> JobDefinition?) -> [String] {
        var problems: [String] = []
        for record in saved {
            let job = resolve(record)
            let sameShape =
                job.map { job in
                    job.stages.map(\.name) == record.stages.map(\.name)
                        && zip(job.stages, record.stages).allSatisfy { definition, stage in
                            stage.count != nil || !definition.items.upstream.isEmpty
                        }
                } ?? false
            guard let job, sameShape else {
                problems.append(
                    "run \(record.id): job \(record.job) is gone or changed shape; its unfinished tasks are cancelled")
                write {
                    try store.cancelQueuedTasks(
                        run: record.id, in: 0..<max(record.total, 0), reason: "job definition changed", at: now.wall)
                    try store.setRunState(
                        run: record.id, state: .failed, startedAt: record.startedAt ?? now.wall, finishedAt: now.wall,
                        reason: "job definition changed while the run was unfinished")
                }
                emit(
                    "run.finished", job: record.job, run: record.id, at: now,
                    [
                        "state": "failed", "reason": "job definition changed while the run was unfinished",
                    ])
                endedSinceCommit.append(record.id)
                continue
            }
            let stages = zip(job.stages, record.stages).map { definition, saved in
                let stage = EngineStage(
                    definition: definition, position: saved.position,
                    limits: definition.limits.overlaid(on: settings.defaultLimits), plan: .definition,
                    source: saved.source)
                stage.record = saved
                return stage
            }
            let run = EngineRun(
                id: record.id, job: job, createdAt: record.createdAt, params: record.params,
                startedBy: record.startedBy, rerunOf: record.rerunOf, priority: record.priority, stages: stages)
            run.scheduledFor = record.scheduledFor
            run.startedAt = record.startedAt
            if record.startedAt != nil { run.state = .running }
            run.total = record.total
            for stage in stages {
                if stage.isPartitioned {
                    let counts: TaskCounts
                    do {
                        counts = try store.taskCounts(run: record.id, in: stage.record.range)
                    } catch {
                        storeFailure = storeFailure ?? "cannot read run \(record.id): \(error)"
                        return problems
                    }
                    stage.counts = counts
                    stage.cursor = stage.record.range.lowerBound
                    for state in TaskState.allCases { run.counts[state] += counts[state] }
                    if stage.isReduce { stage.inputPath = files.directory(of: run.id) + "/\(stage.name).input.jsonl" }
                }
                if stage.record.state.isFinal { stage.phase = .finished }
            }
            if run.usesRunDirectory { _ = try? files.create(run: run.id) }
            activate(run)
            emit("run.recovered", run, at: now, ["counts": run.counts.json])
            var interrupted: [(EngineStage, [QueuedTask])] = []
            do {
                for stage in stages where stage.isPartitioned && stage.phase != .finished {
                    if stage.counts.queued > 0 {
                        for (task, due) in try store.waitingRetries(run: run.id, in: stage.record.range) {
                            let wait = UInt64(max(0, (due - now.wall) * 1000))
                            stage.waitingRetries += 1
                            retries.push(
                                WaitingRetry(
                                    due: now.monotonic + wait, sequence: 0, run: run, stage: stage,
                                    generation: stage.retryGeneration, task: task))
                        }
                    }
                    if stage.counts.running > 0 {
                        interrupted.append((stage, try store.interruptedTasks(run: run.id, in: stage.record.range)))
                    }
                }
            } catch {
                storeFailure = storeFailure ?? "cannot read run \(record.id): \(error)"
                return problems
            }
            if record.cancelRequested {
                // Cancelled before the crash: what was running stays
                // cancelled instead of running again.
                run.cancelRequested = true
                for stage in run.stages where stage.phase != .finished {
                    cancelQueued(of: stage, in: run, reason: "run cancelled", at: now)
                }
            }
            // What was running died with the daemon's worker: each such
            // attempt is lost, and retried only as its stage's policy says.
            for (stage, tasks) in interrupted {
                for task in tasks {
                    stage.counts.running -= 1
                    run.counts.running -= 1
                    let completion =
                        run.cancelRequested
                        ? TaskCompletion(state: .cancelled, reason: "run cancelled", finishedAt: now.wall)
                        : TaskCompletion(
                            state: .failed, reason: "lost: tesserad stopped while it ran", finishedAt: now.wall,
                            failure: .lost)
                    conclude(task, of: stage, in: run, completion, at: now)
                }
            }
            advance(run, at: now)
        }
        return problems
    }

    // MARK: Dispatch

    /// Starts queued microtasks while slots, job concurrency and the shell allow.
    public func dispatch(at now: Instant) {
        promoteDueRetries(at: now)
        if !queuedFires.isEmpty { startQueuedFires(at: now) }
        guard !paused, storeFailure == nil, pressureGate.pause == nil else { return }
        lastDispatch = now
        while storeFailure == nil {
            var joining: UInt64?
            var next = lanes.count < settings.slots ? nextRunnable() : nil
            if next == nil, let ahead = nextAhead() {
                next = (ahead.run, ahead.stage)
                joining = ahead.lane
            }
            guard let (run, stage) = next else { return }
            guard let task = takeNext(of: stage, in: run) else { continue }
            start(task, of: stage, in: run, joining: joining, at: now)
        }
    }

    /// A lane of the stage with room for one more microtask.
    private func laneWithRoom(in stage: EngineStage) -> UInt64? {
        let depth = stage.depth
        guard depth > 1 else { return nil }
        return stage.laneIDs.first { (lanes[$0]?.count ?? depth) < depth }
    }

    /// With every slot in use: a pooled stage whose lane has room for the
    /// next microtask, in the order runs take turns, unless a microtask of
    /// some other stage waits for a slot. Then none: the lanes empty, and
    /// the slots go out by priority and in turn as microtasks end.
    private func nextAhead() -> (run: EngineRun, stage: EngineStage, lane: UInt64)? {
        let count = order.count
        guard count > 0, !lanes.isEmpty else { return nil }
        var found: (step: Int, run: EngineRun, stage: EngineStage, lane: UInt64)?
        for step in 0..<count {
            let run = order[(roundRobin + step) % count]
            if run.cancelRequested { continue }
            if let limit = run.job.concurrency, (runningPerJob[run.job.name] ?? 0) >= limit { continue }
            for stage in run.stages where stage.phase == .ready && stage.startable > 0 {
                if let cap = stage.definition.concurrency, stage.counts.running >= cap { continue }
                guard let lane = laneWithRoom(in: stage) else { return nil }
                if found == nil { found = (step, run, stage, lane) }
            }
        }
        guard let found else { return nil }
        guard delegate?.engine(self, canStart: found.run) ?? true else { return nil }
        roundRobin = (roundRobin + found.step + 1) % count
        return (found.run, found.stage, found.lane)
    }

    /// The next (run, stage) with a queued microtask whose job and stage
    /// have room: from the runs of the highest priority that have one, and
    /// among those the next in turn, so that one large run does not starve
    /// others of its priority.
    private func nextRunnable() -> (EngineRun, EngineStage)? {
        let count = order.count
        guard count > 0 else { return nil }
        // A stage whose request has not fitted for reservationAfter is
        // reserved for: nothing else starts until it has started one, so
        // the microtasks that finish make room for it.
        let now = lastDispatch.monotonic
        let patience = settings.reservationAfter
        blocked.removeAll { $0.blockedSince == nil || $0.phase == .finished }
        let reserved = blocked.filter { stage in
            stage.phase == .ready && stage.startable > 0
                && stage.blockedSince.map { now >= $0 + patience } == true
        }.min { ($0.blockedSince ?? 0) < ($1.blockedSince ?? 0) }
        var best: (step: Int, run: EngineRun, stage: EngineStage)?
        for step in 0..<count {
            let run = order[(roundRobin + step) % count]
            if let best, run.priority <= best.run.priority { continue }
            if run.cancelRequested { continue }
            if let limit = run.job.concurrency, (runningPerJob[run.job.name] ?? 0) >= limit { continue }
            var chosen: EngineStage?
            for stage in run.stages where stage.phase == .ready && stage.startable > 0 {
                if let cap = stage.definition.concurrency, stage.counts.running >= cap { continue }
                if let reserved, reserved !== stage { continue }
                guard fits(cpu: stage.definition.requests.cpu, memory: memoryRequest(of: stage, in: run)) else {
                    if stage.blockedSince == nil {
                        stage.blockedSince = lastDispatch.monotonic
                        blocked.append(stage)
                    }
                    continue
                }
                chosen = stage
                break
            }
            guard let stage = chosen else { continue }
            guard delegate?.engine(self, canStart: run) ?? true else { continue }
            best = (step, run, stage)
        }
        guard let best else { return nil }
        roundRobin = (roundRobin + best.step + 1) % count
        best.stage.blockedSince = nil
        return (best.run, best.stage)
    }

    /// Whether a microtask with these requests fits beside those running.
    private func fits(cpu: Double?, memory: UInt64?) -> Bool {
        guard let capacity = settings.capacity else { return true }
        if let cpu, cpuInUse + cpu > capacity.cpu + 1e-9 { return false }
        if let memory, memoryInUse + memory > capacity.memory { return false }
        return true
    }

    /// What a microtask of the stage is admitted with: its request, or for
    /// `memory: auto` the largest peak RSS seen of the job's stage so far
    /// (at most the whole capacity, so that it can always start alone).
    func memoryRequest(of stage: EngineStage, in run: EngineRun) -> UInt64? {
        let requests = stage.definition.requests
        guard requests.learnsMemory else { return requests.memory }
        guard let learned = learnedMemory[LearnedKey(job: run.job.name, stage: stage.name)] else { return nil }
        return min(learned, settings.capacity?.memory ?? learned)
    }

    /// The largest peak RSS seen of a `memory: auto` stage, by job and stage.
    public func learnedMemory(job: String, stage: String) -> UInt64? {
        learnedMemory[LearnedKey(job: job, stage: stage)]
    }

    /// The stage's next queued microtask, read ahead from the store in batches.
    private func takeNext(of stage: EngineStage, in run: EngineRun) -> QueuedTask? {
        if stage.duePosition < stage.dueRetries.count {
            defer {
                stage.duePosition += 1
                if stage.duePosition == stage.dueRetries.count {
                    stage.dueRetries.removeAll(keepingCapacity: true)
                    stage.duePosition = 0
                }
            }
            return stage.dueRetries[stage.duePosition]
        }
        if stage.bufferPosition >= stage.buffer.count {
            let range = stage.cursor..<stage.record.range.upperBound
            var batch: [QueuedTask] = []
            if !range.isEmpty {
                do {
                    batch = try store.queuedTasks(run: run.id, in: range, limit: 256)
                } catch {
                    storeFailure = storeFailure ?? "cannot read the queue of run \(run.id): \(error)"
                    return nil
                }
            }
            stage.buffer = batch
            stage.bufferPosition = 0
            guard let last = batch.last else {
                // The counts said more were queued than the store has:
                // believe the store.
                run.counts.queued -= stage.startable
                stage.counts.queued = stage.waitingRetries
                advance(run, at: lastDispatch)
                return nil
            }
            stage.cursor = last.index + 1
        }
        defer { stage.bufferPosition += 1 }
        return stage.buffer[stage.bufferPosition]
    }

    private func start(
        _ task: QueuedTask, of stage: EngineStage, in run: EngineRun, joining joined: UInt64?, at now: Instant
    ) {
        let lane: UInt64
        if let joined {
            lane = joined
            lanes[lane]?.count += 1
        } else {
            let cpu = stage.definition.requests.cpu ?? 0
            let memory = memoryRequest(of: stage, in: run) ?? 0
            nextLane += 1
            lane = nextLane
            lanes[lane] = Lane(stage: stage, count: 1, cpu: cpu, memory: memory)
            stage.laneIDs.append(lane)
            cpuInUse += cpu
            memoryInUse += memory
        }
        nextToken += 1
        let token = nextToken
        let attempt = task.attempts + 1
        running[token] = RunningMicrotask(
            token: token, run: run, stage: stage, index: task.index, item: task.item, attempt: attempt, lane: lane,
            startedAt: now.wall, wallDeadline: stage.limits.wall.map { now.monotonic + $0 })
        runningPerJob[run.job.name, default: 0] += 1
        stage.counts.queued -= 1
        stage.counts.running += 1
        run.counts.queued -= 1
        run.counts.running += 1
        if run.state == .queued {
            run.state = .running
            run.startedAt = now.wall
            write {
                try store.setRunState(run: run.id, state: .running, startedAt: now.wall, finishedAt: nil, reason: nil)
            }
            emit("run.started", run, at: now, ["total": .int(Int64(run.total))])
        }
        run.changed = true
        write { try store.markRunning(run: run.id, index: task.index, attempt: attempt, at: now.wall) }
        delegate?.engine(
            self,
            start: MicrotaskStart(
                token: token, run: run, stage: stage, index: task.index, item: task.item, attempt: attempt, lane: lane,
                ahead: joined != nil))
    }

    // MARK: Completion

    /// Records how a microtask ended and moves its run on. A microtask
    /// killed for its wall limit or cancelled is recorded as such,
    /// whatever its process did as it died.
    public func finished(token: UInt64, _ completion: TaskCompletion, at now: Instant) {
        guard let task = running.removeValue(forKey: token) else { return }
        var completion = completion
        if task.killedForWall {
            completion.state = .failed
            completion.failure = .timeout
            completion.reason = "wall time limit \(formatDuration(task.stage.limits.wall ?? 0)) exceeded"
        }
        if task.cancelled {
            completion.state = .cancelled
            completion.reason = "run cancelled"
        }
        let run = task.run
        let stage = task.stage
        runningPerJob[run.job.name, default: 1] -= 1
        leave(lane: task.lane)
        if stage.definition.requests.learnsMemory, let peak = completion.maxRSS, peak > 0 {
            let key = LearnedKey(job: run.job.name, stage: stage.name)
            learnedMemory[key] = max(learnedMemory[key] ?? 0, UInt64(peak))
        }
        stage.counts.running -= 1
        run.counts.running -= 1
        conclude(
            QueuedTask(index: task.index, item: task.item, attempts: task.attempt), of: stage, in: run, completion,
            at: now)
    }

    /// A microtask of the lane ended: the last one gives its slot back.
    private func leave(lane id: UInt64) {
        guard var lane = lanes[id] else { return }
        lane.count -= 1
        guard lane.count == 0 else {
            lanes[id] = lane
            return
        }
        lanes.removeValue(forKey: id)
        lane.stage.laneIDs.removeAll { $0 == id }
        cpuInUse = max(0, cpuInUse - lane.cpu)
        memoryInUse -= min(memoryInUse, lane.memory)
    }

    /// Records how an attempt ended: a failure the stage's policy retries
    /// goes back to the queue, due after its backoff; anything else is the
    /// microtask's end. The caller has taken it out of the running counts.
    private func conclude(
        _ task: QueuedTask, of stage: EngineStage, in run: EngineRun, _ completion: TaskCompletion, at now: Instant
    ) {
        var completion = completion
        let decision =
            run.cancelRequested
            ? .final(note: nil) : stage.definition.retry.decide(attempt: task.attempts, completion, random: random)
        switch decision {
        case .retry(let delay):
            attemptEnded?(run, stage, completion, true)
            write {
                try store.finishTask(run: run.id, index: task.index, completion)
                try store.retryLater(run: run.id, index: task.index, at: now.wall + Double(delay) / 1000)
            }
            stage.counts.queued += 1
            stage.waitingRetries += 1
            run.counts.queued += 1
            emit(
                completion.failure == .lost ? "task.lost" : "task.retrying", run, at: now,
                taskFields(task, stage, completion).adding("retryAt", .double(now.wall + Double(delay) / 1000)))
            retries.push(
                WaitingRetry(
                    due: now.monotonic + delay, sequence: 0, run: run, stage: stage,
                    generation: stage.retryGeneration, task: task))
        case .final(let note):
            if let note { completion.reason = (completion.reason ?? "failed") + " (\(note))" }
            attemptEnded?(run, stage, completion, false)
            write { try store.finishTask(run: run.id, index: task.index, completion) }
            stage.counts[completion.state] += 1
            run.counts[completion.state] += 1
            if completion.state == .failed {
                emit(
                    completion.failure == .lost ? "task.lost" : "task.failed", run, at: now,
                    taskFields(task, stage, completion))
            }
        }
        run.changed = true
        advance(run, at: now)
    }

    /// Moves the retries that are due into their stages' queues.
    private func promoteDueRetries(at now: Instant) {
        while let entry = retries.popDue(at: now.monotonic) {
            let stage = entry.stage
            guard entry.generation == stage.retryGeneration, stage.phase == .ready, !entry.run.cancelRequested
            else { continue }
            stage.waitingRetries -= 1
            stage.dueRetries.append(entry.task)
        }
    }

    /// Takes a pressure sample (percent by resource); returns what changed,
    /// for the log. Dispatch stops while admission is paused; the shell
    /// dispatches again when this says it resumed.
    @discardableResult
    public func observePressure(_ samples: [String: Double], at now: Instant) -> String? {
        guard let change = pressureGate.observe(samples, thresholds: settings.pressure, at: now.wall) else {
            return nil
        }
        emit(pressureGate.pause == nil ? "admission.resumed" : "admission.paused", at: now, ["reason": .string(change)])
        return change
    }

    // MARK: Cancellation and limits

    /// Cancels a run: queued microtasks at once, running ones get SIGTERM
    /// and, after the grace period, SIGKILL.
    public func cancel(_ run: EngineRun, at now: Instant) {
        guard !run.cancelRequested, !run.state.isFinal else { return }
        run.cancelRequested = true
        write { try store.recordCancel(run: run.id) }
        emit("run.cancelling", run, at: now, ["running": .int(Int64(run.counts.running))])
        for stage in run.stages where stage.phase != .finished {
            cancelQueued(of: stage, in: run, reason: "run cancelled", at: now)
        }
        for (token, task) in running where task.run === run {
            running[token]?.cancelled = true
            running[token]?.killDeadline = now.monotonic + settings.killGrace
            delegate?.engine(self, signal: token, SIGTERM)
        }
        run.changed = true
        advance(run, at: now)
    }

    /// Whether any running microtask has a deadline (the shell then calls
    /// `tick` every few tens of milliseconds).
    public var hasDeadlines: Bool {
        running.values.contains { $0.killDeadline != nil || ($0.wallDeadline != nil && !$0.killedForWall) }
    }

    /// Enforces wall limits and the grace period of kills.
    public func tick(at now: Instant) {
        for (token, task) in running {
            if let killAt = task.killDeadline {
                if now.monotonic >= killAt {
                    delegate?.engine(self, signal: token, SIGKILL)
                    running[token]?.killDeadline = nil
                }
            } else if let wall = task.wallDeadline, !task.killedForWall, now.monotonic >= wall {
                running[token]?.killedForWall = true
                running[token]?.killDeadline = now.monotonic + settings.killGrace
                delegate?.engine(self, signal: token, SIGTERM)
            }
        }
    }

    /// Cancels the microtasks of a stage that have not started.
    private func cancelQueued(of stage: EngineStage, in run: EngineRun, reason: String, at now: Instant) {
        guard stage.isPartitioned, stage.counts.queued > 0 else { return }
        let range = stage.cursor..<stage.record.range.upperBound
        // Read-ahead entries below the cursor are still queued too, and
        // retries anywhere in the stage.
        let hasRetries = stage.waitingRetries > 0 || stage.duePosition < stage.dueRetries.count
        let from =
            hasRetries
            ? stage.record.range.lowerBound
            : stage.bufferPosition < stage.buffer.count ? stage.buffer[stage.bufferPosition].index : range.lowerBound
        if hasRetries {
            stage.retryGeneration += 1
            stage.waitingRetries = 0
            stage.dueRetries = []
            stage.duePosition = 0
            retries.removeAll { $0.stage === stage }
        }
        write { try store.cancelQueuedTasks(run: run.id, in: from..<range.upperBound, reason: reason, at: now.wall) }
        stage.buffer = []
        stage.bufferPosition = 0
        stage.cursor = range.upperBound
        let count = stage.counts.queued
        stage.counts.queued = 0
        stage.counts.cancelled += count
        run.counts.queued -= count
        run.counts.cancelled += count
    }

    // MARK: Stages and runs

    /// Moves a run's stages on after a change, and ends the run when every
    /// stage has finished.
    private func advance(_ run: EngineRun, at now: Instant) {
        guard storeFailure == nil else { return }
        var progressed = true
        while progressed {
            progressed = false
            for stage in run.stages {
                switch stage.phase {
                case .ready where stage.counts.queued == 0 && stage.counts.running == 0:
                    settle(stage, of: run, at: now)
                    progressed = true
                case .waiting:
                    let dependencies = stage.dependencies.map { run.stages[$0] }
                    if run.cancelRequested {
                        skip(stage, of: run, because: "run cancelled", at: now)
                        progressed = true
                    } else if let failed = dependencies.first(where: {
                        $0.phase == .finished && $0.record.state != .succeeded
                    }) {
                        skip(stage, of: run, because: "not run: stage \(failed.name) failed", at: now)
                        progressed = true
                    } else if dependencies.allSatisfy({ $0.phase == .finished }) {
                        if !stage.isPartitioned {
                            do {
                                try partition(stage, of: run)
                                try store.setRunTotal(run: run.id, total: run.total)
                            } catch {
                                storeFailure = storeFailure ?? "cannot partition stage \(stage.name): \(error)"
                                return
                            }
                        }
                        if stage.phase != .finished {
                            stage.phase = .ready
                            stage.readyAt = now.wall
                            stage.record.state = .ready
                            write { try store.updateStage(run: run.id, stage.record) }
                        }
                        run.changed = true
                        progressed = true
                    }
                default:
                    break
                }
            }
        }
        if run.isComplete { end(run, at: now) }
    }

    /// A stage whose microtasks have all ended: it succeeds while its
    /// failures stay within `max_failures`.
    private func settle(_ stage: EngineStage, of run: EngineRun, at now: Instant) {
        let total = stage.record.count ?? 0
        let unsuccessful = stage.counts.failed + stage.counts.cancelled
        let allowed = stage.definition.maxFailures.allowed(of: total)
        if run.cancelRequested && stage.counts.cancelled > 0 {
            stage.record.state = .cancelled
            stage.record.reason = "run cancelled"
        } else if unsuccessful > allowed {
            stage.record.state = .failed
            stage.record.reason =
                "\(unsuccessful) of \(total) microtask(s) did not succeed"
                + (allowed > 0 ? " (max_failures allows \(allowed))" : "")
        } else {
            stage.record.state = .succeeded
            if unsuccessful > 0 {
                stage.record.reason =
                    "\(unsuccessful) of \(total) microtask(s) did not succeed, within max_failures (\(allowed))"
            }
        }
        stage.phase = .finished
        write { try store.updateStage(run: run.id, stage.record) }
        emitStageFinished(stage, of: run, at: now)
        delegate?.engine(self, finished: stage, of: run)
    }

    /// Marks a stage that will never run as finished, its microtasks cancelled.
    private func skip(_ stage: EngineStage, of run: EngineRun, because reason: String, at now: Instant) {
        cancelQueued(of: stage, in: run, reason: reason == "run cancelled" ? reason : reason, at: now)
        stage.phase = .finished
        stage.record.state = .cancelled
        stage.record.reason = reason
        write { try store.updateStage(run: run.id, stage.record) }
        emitStageFinished(stage, of: run, at: now)
        run.changed = true
        delegate?.engine(self, finished: stage, of: run)
    }

    private func end(_ run: EngineRun, at now: Instant) {
        guard !run.state.isFinal else { return }
        let failed = run.stages.first { $0.record.state != .succeeded }
        let final: RunState = run.cancelRequested ? .cancelled : (failed != nil ? .failed : .succeeded)
        run.state = final
        run.finishedAt = now.wall
        if run.cancelRequested {
            run.reason = "cancelled"
        } else if let failed {
            run.reason = "stage \(failed.name): \(failed.record.reason ?? "failed")"
        } else if let tolerated = run.stages.first(where: { $0.record.reason != nil }) {
            run.reason = "stage \(tolerated.name): \(tolerated.record.reason!)"
        }
        write {
            try store.setRunState(
                run: run.id, state: final, startedAt: run.startedAt ?? now.wall, finishedAt: now.wall,
                reason: run.reason)
        }
        emit(
            "run.finished", run, at: now,
            ["state": .string(final.rawValue), "reason": .optional(run.reason, JSON.string), "counts": run.counts.json])
        endedSinceCommit.append(run.id)
        runs.removeValue(forKey: run.id)
        order.removeAll { $0 === run }
        if run.scheduledFor != nil, scheduled[run.job.name]?.queued != nil { queuedFires.append(run.job.name) }
        if roundRobin >= order.count { roundRobin = 0 }
        run.changed = true
        delegate?.engine(self, ended: run)
    }

    private func taskFields(_ task: QueuedTask, _ stage: EngineStage, _ completion: TaskCompletion) -> JSON {
        [
            "index": .int(Int64(task.index)), "stage": .string(stage.name), "attempt": .int(Int64(task.attempts)),
            "reason": .optional(completion.reason, JSON.string),
        ]
    }

    private func emitStageFinished(_ stage: EngineStage, of run: EngineRun, at now: Instant) {
        emit(
            "stage.finished", run, at: now,
            [
                "stage": .string(stage.name), "state": .string(stage.record.state.rawValue),
                "reason": .optional(stage.record.reason, JSON.string), "counts": stage.counts.json,
            ])
    }

    /// Runs a store write; the first failure is kept and stops the engine.
    func write(_ body: () throws -> Void) {
        guard storeFailure == nil else { return }
        do {
            try body()
        } catch {
            storeFailure = "cannot write state: \(error)"
        }
    }
}

/// A job's stage, for what is learned of it across runs.
struct LearnedKey: Hashable {
    let job: String
    let stage: String
}

/// Refuses a source that yields more items than a stage may have.
struct CappedStream: ItemStream {
    var inner: any ItemStream
    let what: String
    let limit: Int
    var count = 0

    mutating func next() throws(PartitionFailure) -> String? {
        guard let item = try inner.next() else { return nil }
        count += 1
        if count > limit {
            throw PartitionFailure("\(what): more than \(limit) items, the most a stage may have")
        }
        return item
    }
}
