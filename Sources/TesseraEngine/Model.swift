// Model.swift
//
// Why this file exists: these are the runs, stages and microtasks the
// engine is working on, as it keeps them in memory between events. The
// store holds the durable truth (every field here that matters after a
// crash is written through RunStore as it changes); this is what the
// scheduler consults on every dispatch, so it is small and needs no
// queries: counts, a cursor into each stage's queue and a short buffer of
// the next queued microtasks read from the store.

import TesseraConfig
import TesseraProtocol

/// One stage of a run.
public final class EngineStage {
    public enum Phase: Sendable { case waiting, ready, finished }

    public let definition: StageDefinition
    public let position: Int
    /// The stage's limits over the server's defaults, fixed when the run starts.
    public let limits: Limits
    /// How many microtasks one lane holds: for a pooled stage the one its
    /// process runs and the next three, 1 otherwise. (With no-op
    /// microtasks 2 gave 30,000-33,000/s, 4 gave 40,000-48,000, 8 no more
    /// than 4: three ahead cover the round trip through the daemon.) A
    /// pooled stage with a wall limit holds 1, so that its wall time
    /// counts from its own start.
    public var depth: Int { definition.isolation.isPooled && limits.wall == nil ? Lane.pooledDepth : 1 }
    public internal(set) var phase: Phase = .waiting
    /// When it became ready (wall clock), in this daemon's life.
    public internal(set) var readyAt: Double?
    /// What is recorded: source, index range once partitioned, state, reason.
    public internal(set) var record: StageRecord
    /// Where the items come from in this run.
    var plan: SourcePlan
    /// Stage positions that must finish (and succeed) before this one starts.
    public internal(set) var dependencies: [Int] = []
    public internal(set) var counts = TaskCounts()
    /// The next run-wide index whose queue entry has not been read.
    var cursor = 0
    var buffer: [QueuedTask] = []
    var bufferPosition = 0
    /// The input file of a reduce stage, once written.
    public internal(set) var inputPath: String?
    /// Since when (monotonic ms) its next microtask's request has not
    /// fitted beside those running; nil while it fits or has nothing queued.
    var blockedSince: UInt64?
    /// The lanes (slots) its running microtasks hold.
    var laneIDs: [UInt64] = []
    /// Failed microtasks waiting for their retry's due time (counted in
    /// `counts.queued` too), and those due, to be started first.
    var waitingRetries = 0
    var dueRetries: [QueuedTask] = []
    var duePosition = 0
    /// Bumped when the stage's retries are cancelled; older entries of the
    /// engine's retry queue are then ignored.
    var retryGeneration = 0

    /// Queued microtasks that may start now: not those waiting for a retry.
    var startable: Int { counts.queued - waitingRetries }

    init(definition: StageDefinition, position: Int, limits: Limits, plan: SourcePlan, source: String) {
        self.definition = definition
        self.position = position
        self.limits = limits
        self.plan = plan
        record = StageRecord(position: position, name: definition.name, source: source)
    }

    public var name: String { definition.name }
    public var isPartitioned: Bool { record.count != nil }
    public var isReduce: Bool {
        if case .reduce = definition.items { return true }
        return false
    }
}

/// Where a stage's items come from in one run.
enum SourcePlan {
    /// As the job file says.
    case definition
    /// Sent by whoever started the run.
    case caller(any ItemStream)
    /// An earlier run's items of the same stage (a rerun).
    case stored(run: Int64, range: Range<Int>, unsuccessfulOnly: Bool)
}

/// A run the engine is working on.
public final class EngineRun {
    public let id: Int64
    public let job: JobDefinition
    public let createdAt: Double
    public let params: String
    public let startedBy: String
    public let rerunOf: Int64?
    /// 0-100; higher runs first (JobDefinition.priority).
    public let priority: Int
    public internal(set) var startedAt: Double?
    public internal(set) var finishedAt: Double?
    public internal(set) var state: RunState = .queued
    public internal(set) var reason: String?
    public internal(set) var counts = TaskCounts()
    /// Microtasks partitioned so far (dynamic stages add theirs later).
    public internal(set) var total = 0
    public let stages: [EngineStage]
    /// Whether a stage is given the run directory (StageDefinition
    /// .usesRunDirectory): only then does the run have one.
    public var usesRunDirectory: Bool { stages.contains { $0.definition.usesRunDirectory } }
    public internal(set) var cancelRequested = false
    /// The schedule's time it is for, when a schedule started it.
    public internal(set) var scheduledFor: Double?
    /// Set whenever something clients see changed; the shell clears it
    /// when it has told watchers.
    public var changed = false

    init(
        id: Int64, job: JobDefinition, createdAt: Double, params: String, startedBy: String, rerunOf: Int64?,
        priority: Int, stages: [EngineStage]
    ) {
        self.priority = priority
        self.id = id
        self.job = job
        self.createdAt = createdAt
        self.params = params
        self.startedBy = startedBy
        self.rerunOf = rerunOf
        self.stages = stages
        let byName = Dictionary(stages.map { ($0.name, $0.position) }, uniquingKeysWith: { first, _ in first })
        for stage in stages {
            stage.dependencies = stage.definition.dependencies.compactMap { byName[$0] }
        }
    }

    public var info: RunInfo {
        var info = RunInfo(
            id: id, job: job.name, state: state, createdAt: createdAt, startedAt: startedAt,
            finishedAt: finishedAt, total: total, counts: counts)
        info.reason = reason
        info.priority = priority
        info.scheduledFor = scheduledFor
        return info
    }

    public func stage(named name: String) -> EngineStage? { stages.first { $0.name == name } }

    var isComplete: Bool { stages.allSatisfy { $0.phase == .finished } }
}

/// A microtask the engine has started.
public struct RunningMicrotask {
    public let token: UInt64
    public let run: EngineRun
    public let stage: EngineStage
    public let index: Int
    public let item: String
    public let attempt: Int
    /// The lane (slot) it holds, with the microtask handed out beside it.
    public let lane: UInt64
    public let startedAt: Double
    /// When the wall limit expires (monotonic ms), if the stage has one.
    let wallDeadline: UInt64?
    /// When SIGKILL follows a SIGTERM sent for the wall limit or a cancel.
    var killDeadline: UInt64?
    var killedForWall = false
    public internal(set) var cancelled = false
}

/// What the engine asks the shell to start.
public struct MicrotaskStart {
    public let token: UInt64
    public let run: EngineRun
    public let stage: EngineStage
    public let index: Int
    public let item: String
    /// 1 for the first attempt.
    public let attempt: Int
    /// The lane (slot) it takes: one of its own, or for a pooled stage
    /// the lane of a microtask that runs already (`ahead`), whose pooled
    /// process runs this one next.
    public let lane: UInt64
    public let ahead: Bool
}

/// A slot in use. A microtask of a stage with `isolation: process` has a
/// lane of its own. A pooled stage's lane is a pooled process, which runs
/// its microtasks one after another: it holds the one running and, handed
/// out ahead, the next ones (`EngineStage.depth`), so that the process
/// finds the next ready the moment it has sent the last result, instead of
/// waiting for the round trip through the daemon. The requests are reserved once per
/// lane, for the one process that runs.
struct Lane {
    static let pooledDepth = 4
    let stage: EngineStage
    var count: Int
    let cpu: Double
    let memory: UInt64
}

/// What the engine asks of the shell that drives it.
public protocol EngineDelegate: AnyObject {
    /// Whether a microtask of `run` can start now (a worker for it is ready).
    func engine(_ engine: Engine, canStart run: EngineRun) -> Bool
    /// Start this microtask.
    func engine(_ engine: Engine, start task: MicrotaskStart)
    /// Send `signal` to a running microtask's process group.
    func engine(_ engine: Engine, signal token: UInt64, _ signal: Int32)
    /// A stage of a run will start no more microtasks.
    func engine(_ engine: Engine, finished stage: EngineStage, of run: EngineRun)
    /// A run ended; its final state is recorded (and durable at the next commit).
    func engine(_ engine: Engine, ended run: EngineRun)
}
