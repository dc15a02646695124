// The in-memory picture of the runs that are not finished: their stages,
// which microtasks are still queued, and the counts clients see. The store
// holds the durable truth; this is what the scheduler consults on every
// dispatch, so it is kept small and needs no queries.

import TesseraConfig
import TesseraProtocol

/// One stage of an active run.
final class StagePlan {
    enum Phase { case waiting, ready, finished }

    let definition: StageDefinition
    let position: Int
    /// Run-wide index of the stage's first microtask.
    let firstIndex: Int
    let count: Int
    /// Effective limits: the stage's own over the server's defaults.
    let limits: Limits
    /// Effective sandbox: the stage's settings over the server's defaults.
    let sandbox: ResolvedSandbox
    var phase: Phase = .waiting
    /// Microtasks not yet dispatched, as stage-relative positions. Fresh
    /// stages dispatch in order from `nextFresh`; recovered ones from
    /// `pendingList`.
    var nextFresh = 0
    var pendingList: [Int]?
    var unfinished: Int
    var failed = 0
    var cancelled = 0
    /// Stage positions that must succeed before this stage starts.
    var dependencies: [Int] = []

    init(definition: StageDefinition, position: Int, firstIndex: Int, limits: Limits, sandbox: ResolvedSandbox) {
        self.definition = definition
        self.position = position
        self.firstIndex = firstIndex
        count = definition.items.count
        self.limits = limits
        self.sandbox = sandbox
        unfinished = count
    }

    var hasQueued: Bool {
        if let pendingList { return nextFresh < pendingList.count }
        return nextFresh < count
    }

    /// Takes the next queued microtask's stage-relative position.
    func takeNext() -> Int? {
        guard hasQueued else { return nil }
        defer { nextFresh += 1 }
        return pendingList?[nextFresh] ?? nextFresh
    }

    /// Every queued microtask, removed from the queue (for cancellation).
    func takeAllQueued() -> [Int] {
        var taken: [Int] = []
        while let next = takeNext() { taken.append(next) }
        return taken
    }
}

/// A run the daemon is working on.
final class ActiveRun {
    let id: Int64
    let job: JobDefinition
    let createdAt: Double
    var startedAt: Double?
    var state: RunState = .queued
    var counts = TaskCounts()
    let total: Int
    let stages: [StagePlan]
    var cancelRequested = false
    /// The worker generation the run started with (see Daemon.worker(for:)).
    var worker: WorkerSlot?
    /// Clients watching this run.
    var watchers: [Watcher] = []
    /// Set when something changed that watchers have not been told.
    var changed = false

    init(id: Int64, job: JobDefinition, createdAt: Double, server: ServerConfig) {
        self.id = id
        self.job = job
        self.createdAt = createdAt
        var first = 0
        var plans: [StagePlan] = []
        let protected = server.protectedPaths
        for (position, stage) in job.stages.enumerated() {
            plans.append(
                StagePlan(
                    definition: stage, position: position, firstIndex: first,
                    limits: stage.limits.overlaid(on: server.defaults),
                    sandbox: ResolvedSandbox(stage.sandbox.overlaid(on: server.defaultSandbox), protected: protected)))
            first += stage.items.count
        }
        let byName = Dictionary(uniqueKeysWithValues: plans.map { ($0.definition.name, $0.position) })
        for plan in plans {
            plan.dependencies = plan.definition.after.compactMap { byName[$0] }
        }
        stages = plans
        total = first
        counts.queued = first
    }

    var info: RunInfo {
        RunInfo(
            id: id, job: job.name, state: state, createdAt: createdAt, startedAt: startedAt, finishedAt: nil,
            total: total, counts: counts)
    }

    var isComplete: Bool { stages.allSatisfy { $0.phase == .finished } }
}

/// A microtask handed to a worker.
struct RunningTask {
    let run: ActiveRun
    let stage: StagePlan
    let index: Int
    let startedAt: Double
    let startedMonotonic: UInt64
    /// When the wall limit expires (monotonic ms), if the stage has one.
    let wallDeadline: UInt64?
    /// When SIGKILL follows a SIGTERM sent for the wall limit or a cancel.
    var killDeadline: UInt64?
    var killedForWall = false
    var cancelled = false
    /// The uid lent to this microtask for `user: dynamic`.
    let dynamicUID: UInt32?
    let worker: WorkerSlot
}

/// A watcher of a run: a connection with a WatchRun call in progress.
final class Watcher {
    let connection: Connection
    init(connection: Connection) { self.connection = connection }
}
