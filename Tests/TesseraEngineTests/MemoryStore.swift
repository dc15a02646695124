// A RunStore held in memory, so the engine's tests run without SQLite.
// It keeps rows the way the SQLite store does (tasks by run and index,
// stages by position) and answers the same bounded, ordered reads, so a
// test can also look at what the engine recorded.

import TesseraEngine
import TesseraProtocol

final class MemoryStore: RunStore {
    struct Task {
        var stage: String
        var item: String
        var state: TaskState = .queued
        var attempts = 0
        var reason: String?
        var result: [UInt8]?
        /// Set while it waits for a retry.
        var retryAt: Double?
        /// Every attempt as it ended.
        var history: [TaskCompletion] = []
    }

    var runs: [Int64: SavedRun] = [:]
    var tasks: [Int64: [Int: Task]] = [:]
    var nextID: Int64 = 0
    /// Set to make every write fail (a full disk).
    var failWrites = false

    struct Failure: Error {}

    private func check() throws { if failWrites { throw Failure() } }

    func inTransaction<T>(_ body: () throws -> T) throws -> T {
        let (savedRuns, savedTasks, savedID, savedEvents) = (runs, tasks, nextID, events)
        do {
            return try body()
        } catch {
            (runs, tasks, nextID, events) = (savedRuns, savedTasks, savedID, savedEvents)
            throw error
        }
    }

    func insertRun(_ run: NewRun) throws -> Int64 {
        try check()
        nextID += 1
        runs[nextID] = SavedRun(
            id: nextID, job: run.job, state: .queued, params: run.params, definition: run.definition,
            createdAt: run.createdAt, startedAt: nil, finishedAt: nil, startedBy: run.startedBy, rerunOf: run.rerunOf,
            reason: nil, total: 0, stages: [], priority: run.priority, scheduledFor: run.scheduledFor)
        tasks[nextID] = [:]
        return nextID
    }

    func insertStage(run: Int64, _ stage: StageRecord) throws {
        try check()
        runs[run]?.stages.append(stage)
    }

    func updateStage(run: Int64, _ stage: StageRecord) throws {
        try check()
        if let i = runs[run]?.stages.firstIndex(where: { $0.position == stage.position }) {
            runs[run]?.stages[i] = stage
        }
    }

    func insertTasks(run: Int64, firstIndex: Int, stage: String, items: [String]) throws {
        try check()
        for (offset, item) in items.enumerated() {
            precondition(tasks[run]?[firstIndex + offset] == nil, "index \(firstIndex + offset) inserted twice")
            tasks[run]?[firstIndex + offset] = Task(stage: stage, item: item)
        }
    }

    func deleteTasks(run: Int64, in range: Range<Int>) throws {
        for index in range { tasks[run]?[index] = nil }
    }

    func setRunTotal(run: Int64, total: Int) throws {
        try check()
        runs[run]?.total = total
    }

    func setRunState(run: Int64, state: RunState, startedAt: Double?, finishedAt: Double?, reason: String?) throws {
        try check()
        runs[run]?.state = state
        if runs[run]?.startedAt == nil { runs[run]?.startedAt = startedAt }
        runs[run]?.finishedAt = finishedAt
        if let reason { runs[run]?.reason = reason }
    }

    /// Each job's schedule and last fire, as recordFire left them.
    var schedules: [String: (schedule: String, lastFire: Double)] = [:]

    func recordFire(job: String, schedule: String, at time: Double) throws {
        try check()
        schedules[job] = (schedule, time)
    }

    func savedSchedules() throws -> [String: (schedule: String, lastFire: Double)] { schedules }

    func recordCancel(run: Int64) throws {
        try check()
        runs[run]?.cancelRequested = true
    }

    func markRunning(run: Int64, index: Int, attempt: Int, at time: Double) throws {
        try check()
        tasks[run]?[index]?.state = .running
        tasks[run]?[index]?.attempts += 1
        tasks[run]?[index]?.retryAt = nil
    }

    func finishTask(run: Int64, index: Int, _ completion: TaskCompletion) throws {
        try check()
        tasks[run]?[index]?.state = completion.state
        tasks[run]?[index]?.reason = completion.reason
        tasks[run]?[index]?.result = completion.result
        tasks[run]?[index]?.history.append(completion)
    }

    func retryLater(run: Int64, index: Int, at time: Double) throws {
        try check()
        tasks[run]?[index]?.state = .queued
        tasks[run]?[index]?.retryAt = time
    }

    func cancelQueuedTasks(run: Int64, in range: Range<Int>, reason: String, at time: Double) throws -> Int {
        try check()
        var count = 0
        for index in range where tasks[run]?[index]?.state == .queued {
            tasks[run]?[index]?.state = .cancelled
            tasks[run]?[index]?.reason = reason
            tasks[run]?[index]?.retryAt = nil
            count += 1
        }
        return count
    }

    private func sorted(_ run: Int64, _ range: Range<Int>) -> [(Int, Task)] {
        (tasks[run] ?? [:]).filter { range.contains($0.key) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    func queuedTasks(run: Int64, in range: Range<Int>, limit: Int) throws -> [QueuedTask] {
        sorted(run, range).filter { $0.1.state == .queued && $0.1.retryAt == nil }.prefix(limit).map {
            QueuedTask(index: $0.0, item: $0.1.item, attempts: $0.1.attempts)
        }
    }

    func waitingRetries(run: Int64, in range: Range<Int>) throws -> [(task: QueuedTask, due: Double)] {
        sorted(run, range).compactMap { index, task in
            guard task.state == .queued, let due = task.retryAt else { return nil }
            return (QueuedTask(index: index, item: task.item, attempts: task.attempts), due)
        }
    }

    func interruptedTasks(run: Int64, in range: Range<Int>) throws -> [QueuedTask] {
        sorted(run, range).filter { $0.1.state == .running }.map {
            QueuedTask(index: $0.0, item: $0.1.item, attempts: $0.1.attempts)
        }
    }

    func results(run: Int64, in range: Range<Int>, limit: Int) throws -> [ResultRow] {
        sorted(run, range).filter { $0.1.state == .succeeded }.prefix(limit).map {
            ResultRow(index: $0.0, item: $0.1.item, result: $0.1.result ?? [])
        }
    }

    func items(run: Int64, in range: Range<Int>, unsuccessfulOnly: Bool, limit: Int) throws -> [(
        index: Int, item: String
    )] {
        sorted(run, range).filter { !unsuccessfulOnly || $0.1.state != .succeeded }.prefix(limit).map {
            (index: $0.0, item: $0.1.item)
        }
    }

    func taskCounts(run: Int64, in range: Range<Int>) throws -> TaskCounts {
        var counts = TaskCounts()
        for (_, task) in sorted(run, range) { counts[task.state] += 1 }
        return counts
    }

    func savedRun(id: Int64) throws -> SavedRun? { runs[id] }

    func unfinishedRuns() throws -> [SavedRun] {
        return runs.values.filter { !$0.state.isFinal }.sorted { $0.id < $1.id }
    }

    var events: [EventRecord] = []

    func appendEvent(_ event: EventRecord) throws {
        try check()
        var event = event
        event.id = Int64(events.count + 1)
        events.append(event)
    }

    /// The kinds of the events recorded, in order.
    var eventKinds: [String] { events.map(\.kind) }

    /// The items of a run's stage, in index order.
    func items(of run: Int64, stage: String) -> [String] {
        sorted(run, 0..<Int.max).filter { $0.1.stage == stage }.map(\.1.item)
    }
}

/// Records what the engine asks of its shell.
final class RecordingShell: EngineDelegate {
    var started: [MicrotaskStart] = []
    var signals: [(UInt64, Int32)] = []
    var finishedStages: [String] = []
    var ended: [EngineRun] = []
    var canStart = true

    func engine(_ engine: Engine, canStart run: EngineRun) -> Bool { canStart }
    func engine(_ engine: Engine, start task: MicrotaskStart) { started.append(task) }
    func engine(_ engine: Engine, signal token: UInt64, _ signal: Int32) { signals.append((token, signal)) }
    func engine(_ engine: Engine, finished stage: EngineStage, of run: EngineRun) {
        finishedStages.append(stage.name)
    }
    func engine(_ engine: Engine, ended run: EngineRun) { ended.append(run) }
}
