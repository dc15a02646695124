// The SQLite store on a real file: attempts and waiting retries as the
// engine writes them, and a database of the previous schema migrated.

import TesseraEngine
import TesseraProtocol
import Testing

@testable import TesseraStore

#if canImport(Glibc)
    import Glibc
#endif

func makeDirectory() -> String {
    var template = Array("/tmp/tessera-store-XXXXXX".utf8CString)
    guard let path = mkdtemp(&template) else { fatalError("mkdtemp") }
    return String(cString: path)
}

/// A run of `count` microtasks in one stage, written as the engine writes it.
func makeRun(_ store: Store, count: Int) throws -> Int64 {
    try store.inTransaction {
        let run = try store.insertRun(
            NewRun(job: "j", params: "{}", definition: "/jobs/j.yaml", createdAt: 1, startedBy: "t", rerunOf: nil))
        try store.insertStage(
            run: run, StageRecord(position: 0, name: "a", source: "items", firstIndex: 0, count: count))
        try store.insertTasks(run: run, firstIndex: 0, stage: "a", items: (0..<count).map(String.init))
        try store.setRunTotal(run: run, total: count)
        return run
    }
}

@Suite("SQLite store")
struct StoreTests {
    @Test("every attempt is kept; a waiting retry is left out of the queue until it runs again")
    func attemptsAndRetries() throws {
        let store = try Store(directory: makeDirectory())
        let run = try makeRun(store, count: 2)
        try store.markRunning(run: run, index: 0, attempt: 1, at: 10)
        try store.finishTask(
            run: run, index: 0,
            TaskCompletion(state: .failed, exitCode: 1, reason: "exited with code 1", finishedAt: 11))
        try store.retryLater(run: run, index: 0, at: 20)
        try store.commit()
        #expect(try store.queuedTasks(run: run, in: 0..<2, limit: 10).map(\.index) == [1])
        let waiting = try store.waitingRetries(run: run, in: 0..<2)
        #expect(waiting.map(\.task.index) == [0] && waiting.map(\.due) == [20] && waiting[0].task.attempts == 1)
        let shown = try store.tasks(run: run, state: nil, offset: 0, limit: 10)
        #expect(shown[0].state == .queued && shown[0].retryAt == 20 && shown[0].reason == "exited with code 1")

        try store.markRunning(run: run, index: 0, attempt: 2, at: 21)
        #expect(try store.interruptedTasks(run: run, in: 0..<2).map(\.attempts) == [2])
        let running = try store.tasks(run: run, state: nil, offset: 0, limit: 10)[0]
        #expect(running.retryAt == nil && running.reason == nil && running.exitCode == nil, "the last attempt's end")
        try store.finishTask(run: run, index: 0, TaskCompletion(state: .succeeded, exitCode: 0, finishedAt: 22))
        try store.commit()
        let attempts = try store.attempts(run: run, index: 0)
        #expect(attempts.map(\.attempt) == [1, 2])
        #expect(attempts.map(\.state) == [.failed, .succeeded])
        #expect(attempts.map(\.startedAt) == [10, 21] && attempts.map(\.finishedAt) == [11, 22])
        #expect(attempts[0].exitCode == 1 && attempts[0].reason == "exited with code 1")
    }

    @Test("a first attempt's start is written with its end, or before a read or a commit that comes first")
    func heldStartsAreNeverLost() throws {
        let directory = makeDirectory()
        let store = try Store(directory: directory)
        let run = try makeRun(store, count: 3)
        try store.commit()
        // Started and ended between two commits: one row, start and end.
        try store.markRunning(run: run, index: 0, attempt: 1, at: 10)
        try store.finishTask(run: run, index: 0, TaskCompletion(state: .succeeded, exitCode: 0, finishedAt: 11))
        // Started, and read before its end: running.
        try store.markRunning(run: run, index: 1, attempt: 1, at: 12)
        let shown = try store.tasks(run: run, state: nil, offset: 0, limit: 10)
        #expect(shown.map(\.state) == [.succeeded, .running, .queued])
        #expect(shown[0].startedAt == 10 && shown[0].finishedAt == 11 && shown[0].attempt == 1)
        #expect(shown[1].startedAt == 12 && shown[1].attempt == 1)
        // Started, and committed before its end: running on disk.
        try store.markRunning(run: run, index: 2, attempt: 1, at: 13)
        try store.commit()
        let other = try Store(directory: directory)
        let onDisk = try other.tasks(run: run, state: nil, offset: 0, limit: 10)
        #expect(onDisk.map(\.state) == [.succeeded, .running, .running])
        #expect(onDisk[2].startedAt == 13 && onDisk[2].attempt == 1)
        #expect(try other.interruptedTasks(run: run, in: 0..<3).map(\.index) == [1, 2])
    }

    @Test("inTransaction undoes its own writes when it throws, and only those; neither commits")
    func atomicWithinTheIteration() throws {
        struct Refused: Error {}
        let directory = makeDirectory()
        let store = try Store(directory: directory)
        let kept = try makeRun(store, count: 1)
        try store.markRunning(run: kept, index: 0, attempt: 1, at: 10)
        #expect(throws: Refused.self) {
            try store.inTransaction {
                _ = try store.insertRun(
                    NewRun(
                        job: "j", params: "{}", definition: "/jobs/j.yaml", createdAt: 2, startedBy: "t", rerunOf: nil))
                throw Refused()
            }
        }
        #expect(store.hasUncommittedChanges, "nothing is committed until the caller commits")
        // Another connection sees nothing yet.
        let other = try Store(directory: directory)
        #expect(try other.run(id: kept) == nil)
        try store.commit()
        #expect(try other.run(id: kept) != nil)
        #expect(try other.run(id: kept + 1) == nil, "the run whose creation threw is gone")
        #expect(try other.tasks(run: kept, state: nil, offset: 0, limit: 10).first?.state == .running)
    }

    @Test("a schema 2 database is migrated: its last attempts are kept and retries can wait")
    func migratesFromSchema2() throws {
        let directory = makeDirectory()
        var run: Int64 = 0
        do {
            let store = try Store(directory: directory)
            run = try makeRun(store, count: 2)
            try store.markRunning(run: run, index: 0, attempt: 1, at: 10)
            try store.finishTask(run: run, index: 0, TaskCompletion(state: .succeeded, exitCode: 0, finishedAt: 11))
            try store.commit()
        }
        // Back to what schema 2 had.
        do {
            let db = try Database(path: directory + "/tessera.db")
            try db.execute(
                """
                DROP TABLE attempts;
                ALTER TABLE tasks DROP COLUMN retry_at;
                ALTER TABLE runs DROP COLUMN scheduled_for;
                DROP TABLE schedules;
                DROP TABLE events;
                DROP INDEX runs_finished;
                ALTER TABLE runs DROP COLUMN deleting;
                UPDATE meta SET value = '2' WHERE key = 'schema_version';
                """)
        }
        let store = try Store(directory: directory)
        #expect(try store.attempts(run: run, index: 0).map(\.state) == [.succeeded])
        #expect(try store.attempts(run: run, index: 1).isEmpty, "it never ran")
        try store.markRunning(run: run, index: 1, attempt: 1, at: 12)
        try store.finishTask(run: run, index: 1, TaskCompletion(state: .failed, exitCode: 1, finishedAt: 13))
        try store.retryLater(run: run, index: 1, at: 30)
        try store.commit()
        #expect(try store.waitingRetries(run: run, in: 0..<2).map(\.due) == [30])
        try store.recordFire(job: "j", schedule: "every 1m", at: 40)
        try store.commit()
        #expect(try store.savedSchedules()["j"]?.lastFire == 40)
        // Schema 4: the event log, and deletion.
        try store.appendEvent(EventRecord(time: 50, kind: "run.created", job: "j", run: run, fields: ["a": 1]))
        try store.commit()
        let logged = try store.events(after: 0, matching: EventFilter(run: run), limit: 10)
        #expect(
            logged.map(\.kind) == ["run.created"] && logged[0].fields["a"] == 1 && logged[0].id == store.lastEventID)
        try store.setRunState(run: run, state: .succeeded, startedAt: 10, finishedAt: 60, reason: nil)
        try store.markForDeletion(run: run)
        #expect(try store.run(id: run) == nil, "hidden at once")
        #expect(try store.deleteSome(run: run, limit: 1) == false, "one of its two microtasks")
        #expect(try store.deleteSome(run: run, limit: 1) == false, "the other")
        #expect(try store.deleteSome(run: run, limit: 1) == true, "none left: the run goes")
        try store.commit()
        #expect(try store.nextDeletion() == nil)
        #expect(try store.events(after: 0, matching: EventFilter(), limit: 10).isEmpty)
        #expect(try store.attempts(run: run, index: 0).isEmpty)
    }
}
