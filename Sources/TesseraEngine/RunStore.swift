// RunStore.swift
//
// Why this file exists: the engine decides, the store remembers. This is
// the store as the engine needs it, and nothing more: runs, their stages
// and microtasks, written as the engine changes them and read back in
// bounded batches (a stage's queue, the results a downstream stage is made
// from), so that no source and no result set is ever held whole. The
// SQLite store (TesseraStore) conforms to it; a second store (PostgreSQL)
// would too, without the engine changing. Writes are grouped by the caller
// (the daemon commits once per loop iteration, and hears nothing of it
// before that commit); `inTransaction` runs a body that must happen whole
// or not at all (a new run), within that grouping.

import TesseraConfig
import TesseraProtocol

/// A point in time as the shell that drives the engine sees it: the wall
/// clock for records, a monotonic clock in milliseconds for limits.
public struct Instant: Sendable, Equatable {
    public var wall: Double
    public var monotonic: UInt64

    public init(wall: Double, monotonic: UInt64) {
        self.wall = wall
        self.monotonic = monotonic
    }
}

/// What a finished microtask leaves behind.
public struct TaskCompletion: Sendable {
    public var state: TaskState
    public var exitCode: Int?
    public var signal: String?
    public var reason: String?
    public var result: [UInt8]?
    public var cpuSeconds: Double?
    public var maxRSS: Int64?
    public var finishedAt: Double
    public var duration: Double?
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    /// Why it failed, as a retry policy names it (nil: `failed`).
    public var failure: FailureKind?
    /// Its executor said the failure is permanent: not to be retried.
    public var permanent: Bool

    public init(
        state: TaskState, exitCode: Int? = nil, signal: String? = nil, reason: String? = nil,
        result: [UInt8]? = nil, cpuSeconds: Double? = nil, maxRSS: Int64? = nil, finishedAt: Double,
        duration: Double? = nil, stdout: [UInt8] = [], stderr: [UInt8] = [],
        stdoutTruncated: Bool = false, stderrTruncated: Bool = false, failure: FailureKind? = nil,
        permanent: Bool = false
    ) {
        self.failure = failure
        self.permanent = permanent
        self.state = state
        self.exitCode = exitCode
        self.signal = signal
        self.reason = reason
        self.result = result
        self.cpuSeconds = cpuSeconds
        self.maxRSS = maxRSS
        self.finishedAt = finishedAt
        self.duration = duration
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
    }
}

/// How a run was started, as it is recorded.
public struct NewRun: Sendable {
    public var job: String
    /// The run-time parameter overrides, as a JSON object of strings.
    public var params: String
    /// The job file the definition came from.
    public var definition: String
    public var createdAt: Double
    /// Who asked for it (a user name, or "uid 1000").
    public var startedBy: String
    /// The run this one reruns.
    public var rerunOf: Int64?
    public var priority: Int
    /// The schedule's time it is for, when a schedule started it.
    public var scheduledFor: Double?

    public init(
        job: String, params: String, definition: String, createdAt: Double, startedBy: String, rerunOf: Int64?,
        priority: Int = 50
    ) {
        self.priority = priority
        self.job = job
        self.params = params
        self.definition = definition
        self.createdAt = createdAt
        self.startedBy = startedBy
        self.rerunOf = rerunOf
    }
}

/// Where a stage of a run stands, as recorded.
public enum StageState: String, Sendable, CaseIterable {
    /// Waiting for the stages it depends on.
    case waiting
    /// Partitioned; its microtasks run.
    case ready
    case succeeded
    case failed
    /// Not run: the run was cancelled or a stage it depends on failed.
    case cancelled

    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// A stage of a run as recorded: its microtasks are the run-wide indices
/// `firstIndex ..< firstIndex + count`, known once it is partitioned.
public struct StageRecord: Sendable, Equatable {
    public var position: Int
    public var name: String
    /// Where its items came from, in words (ItemSource.summary, or
    /// "caller: 12 items", "rerun of run 4: …").
    public var source: String
    public var firstIndex: Int?
    public var count: Int?
    public var state: StageState
    public var reason: String?

    public init(
        position: Int, name: String, source: String, firstIndex: Int? = nil, count: Int? = nil,
        state: StageState = .waiting, reason: String? = nil
    ) {
        self.position = position
        self.name = name
        self.source = source
        self.firstIndex = firstIndex
        self.count = count
        self.state = state
        self.reason = reason
    }

    /// The run-wide indices of its microtasks (empty until partitioned).
    public var range: Range<Int> {
        guard let firstIndex, let count else { return 0..<0 }
        return firstIndex..<(firstIndex + count)
    }
}

/// A run as the store has it.
public struct SavedRun: Sendable {
    public var id: Int64
    public var job: String
    public var state: RunState
    public var params: String
    public var definition: String
    public var createdAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
    public var startedBy: String
    public var rerunOf: Int64?
    public var reason: String?
    public var total: Int
    public var stages: [StageRecord]
    /// A cancel was asked for (and acknowledged) before the run ended.
    public var cancelRequested: Bool
    public var priority: Int
    public var scheduledFor: Double?

    public init(
        id: Int64, job: String, state: RunState, params: String, definition: String, createdAt: Double,
        startedAt: Double?, finishedAt: Double?, startedBy: String, rerunOf: Int64?, reason: String?, total: Int,
        stages: [StageRecord], cancelRequested: Bool = false, priority: Int = 50, scheduledFor: Double? = nil
    ) {
        self.scheduledFor = scheduledFor
        self.cancelRequested = cancelRequested
        self.priority = priority
        self.id = id
        self.job = job
        self.state = state
        self.params = params
        self.definition = definition
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.startedBy = startedBy
        self.rerunOf = rerunOf
        self.reason = reason
        self.total = total
        self.stages = stages
    }
}

/// A queued microtask, read back for dispatch.
public struct QueuedTask: Sendable, Equatable {
    public var index: Int
    public var item: String
    /// Attempts made so far (0 for a microtask that never ran).
    public var attempts: Int

    public init(index: Int, item: String, attempts: Int) {
        self.index = index
        self.item = item
        self.attempts = attempts
    }
}

/// A succeeded microtask's result.
public struct ResultRow: Sendable {
    public var index: Int
    public var item: String
    public var result: [UInt8]

    public init(index: Int, item: String, result: [UInt8]) {
        self.index = index
        self.item = item
        self.result = result
    }
}

/// The store as the engine uses it. Every method may throw; the engine
/// then stops changing state and reports the failure (Engine.storeFailure),
/// and the shell stops rather than report what may not be durable.
public protocol RunStore: AnyObject {
    /// Runs `body` atomically: what it wrote is kept (for the caller's
    /// next commit) when it returns, and undone when it throws.
    func inTransaction<T>(_ body: () throws -> T) throws -> T

    func insertRun(_ run: NewRun) throws -> Int64
    func insertStage(run: Int64, _ stage: StageRecord) throws
    func updateStage(run: Int64, _ stage: StageRecord) throws
    /// Inserts queued microtasks numbered from `firstIndex`, in order.
    func insertTasks(run: Int64, firstIndex: Int, stage: String, items: [String]) throws
    /// Removes microtasks that never ran (a partition that failed half way).
    func deleteTasks(run: Int64, in range: Range<Int>) throws
    func setRunTotal(run: Int64, total: Int) throws
    func setRunState(run: Int64, state: RunState, startedAt: Double?, finishedAt: Double?, reason: String?) throws
    /// Records that the run is to be cancelled, so that a restart finishes
    /// the cancel instead of running what was cancelled.
    func recordCancel(run: Int64) throws

    /// The microtask's `attempt`-th attempt starts (1 for its first); the
    /// store keeps the one before it, if any, with the others.
    func markRunning(run: Int64, index: Int, attempt: Int, at time: Double) throws
    /// Records how an attempt ended (the microtask's state, and the attempt
    /// beside its others).
    func finishTask(run: Int64, index: Int, _ completion: TaskCompletion) throws
    /// Puts a microtask whose attempt was just finished back in the queue,
    /// to start again no earlier than `time` (wall clock): a waiting retry,
    /// which `queuedTasks` leaves out.
    func retryLater(run: Int64, index: Int, at time: Double) throws
    /// Cancels the queued microtasks among `range`; returns how many.
    @discardableResult
    func cancelQueuedTasks(run: Int64, in range: Range<Int>, reason: String, at time: Double) throws -> Int

    /// Queued microtasks among `range`, in index order, at most `limit`;
    /// not the waiting retries.
    func queuedTasks(run: Int64, in range: Range<Int>, limit: Int) throws -> [QueuedTask]
    /// The waiting retries among `range`, with when each is due (wall clock).
    func waitingRetries(run: Int64, in range: Range<Int>) throws -> [(task: QueuedTask, due: Double)]
    /// Microtasks among `range` recorded as running (by a daemon that
    /// stopped while they ran), with their attempt.
    func interruptedTasks(run: Int64, in range: Range<Int>) throws -> [QueuedTask]
    /// Results of the succeeded microtasks among `range`, in index order.
    func results(run: Int64, in range: Range<Int>, limit: Int) throws -> [ResultRow]
    /// Items among `range` in index order; only of microtasks that did not
    /// succeed when `unsuccessfulOnly`.
    func items(run: Int64, in range: Range<Int>, unsuccessfulOnly: Bool, limit: Int) throws -> [(
        index: Int, item: String
    )]
    func taskCounts(run: Int64, in range: Range<Int>) throws -> TaskCounts

    func savedRun(id: Int64) throws -> SavedRun?
    /// Records that `job`'s schedule (by its summary) handled the time
    /// `time`: fired or skipped it.
    func recordFire(job: String, schedule: String, at time: Double) throws
    /// The last time each job's schedule handled, with the schedule it was.
    func savedSchedules() throws -> [String: (schedule: String, lastFire: Double)]

    /// Runs left queued or running by an earlier daemon. Their microtasks
    /// that were running are left so (`interruptedTasks`): the engine
    /// decides what becomes of them.
    func unfinishedRuns() throws -> [SavedRun]

    /// Appends an event to the log, in the current transaction; it gets the
    /// next id.
    func appendEvent(_ event: EventRecord) throws
}
