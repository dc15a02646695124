// The durable state of runs, their stages and microtasks, in SQLite (WAL)
// in the state directory: TesseraEngine's RunStore, and the reads the
// control socket serves.
//
// Writes are grouped: the daemon opens a transaction on the first change of
// a loop iteration and commits it once at the end of that iteration, before
// any client hears of the change (see Daemon.flush). One fsync then covers
// every state change of the iteration, which keeps durability affordable at
// thousands of microtasks a second. Every read the engine makes is a
// bounded batch over an index range (a stage's microtasks are the run-wide
// indices firstIndex ..< firstIndex + count), so no read holds a stage.
// Those reads walk the primary key (run, index) from where the last one
// stopped; an index on the state would cost every insert and every state
// change more than it saves (a million-item partition took half again as
// long with one).

import TesseraConfig
import TesseraEngine
import TesseraProtocol

public final class Store: RunStore {
    /// Version 1: runs, tasks, task_outputs. Version 2: stages; runs record
    /// who started them, what they rerun and why they ended as they did.
    /// Version 3: attempts, waiting retries, schedules. Version 4: the event
    /// log, and incremental vacuum.
    public static let schemaVersion = 4

    private let db: Database
    private var statements: [String: Statement] = [:]

    public init(directory: String) throws(StoreError) {
        db = try Database(path: directory + "/tessera.db")
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("PRAGMA synchronous=FULL")
        try db.execute("PRAGMA foreign_keys=ON")
        try Store.migrate(db)
    }

    /// First attempts started in the open transaction and not written yet
    /// (markRunning), with their start times. Most microtasks of a busy
    /// daemon start and end between two commits: their end then writes the
    /// row once, start and end, instead of twice. Whatever is still held is
    /// written before the commit and before any other statement, so that
    /// every commit, and every read, sees them running as before.
    private var heldStarts: [TaskKey: Double] = [:]

    private struct TaskKey: Hashable {
        let run: Int64
        let index: Int
    }

    private func writeHeldStarts() throws(StoreError) {
        guard !heldStarts.isEmpty else { return }
        for (key, time) in heldStarts {
            try hot("UPDATE tasks SET state = 'running', attempt = 1, started_at = ? WHERE run_id = ? AND idx = ?")
                .run([.double(time), .int(key.run), .int(Int64(key.index))])
        }
        heldStarts.removeAll(keepingCapacity: true)
    }

    /// The statements of the writes made for every microtask, found by the
    /// address of their text (hashing the text itself, each time, was a
    /// few per cent of the daemon's time under load).
    private var hotStatements: [UnsafeRawPointer: Statement] = [:]

    private func hot(_ sql: StaticString) throws(StoreError) -> Statement {
        let key = UnsafeRawPointer(sql.utf8Start)
        if let prepared = hotStatements[key] { return prepared }
        let prepared = try db.prepare(sql.description)
        hotStatements[key] = prepared
        return prepared
    }

    /// A prepared statement, kept for the life of the store. Any statement
    /// but the hot ones may read or write a tasks row: the starts held back
    /// are written first.
    private func statement(_ sql: String) throws(StoreError) -> Statement {
        try writeHeldStarts()
        if let prepared = statements[sql] { return prepared }
        let prepared = try db.prepare(sql)
        statements[sql] = prepared
        return prepared
    }

    private static func migrate(_ db: Database) throws(StoreError) {
        try db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        var version = 0
        try db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").query { row in
            version = Int(row.text(0)) ?? 0
        }
        if version == 0 {
            // Pages freed by deleting old runs go back to the file system
            // bit by bit (Store.reclaim), never in one long VACUUM. It must
            // be set before the first table exists.
            try db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        }
        if version > schemaVersion {
            throw StoreError(
                message: "\(db.path): schema version \(version) is newer than this tesserad (\(schemaVersion)); "
                    + "refusing to touch it")
        }
        if version < 1 {
            try db.execute(
                """
                BEGIN;
                CREATE TABLE runs(
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  job TEXT NOT NULL,
                  state TEXT NOT NULL,
                  params TEXT NOT NULL,
                  definition TEXT NOT NULL,
                  total INTEGER NOT NULL,
                  created_at REAL NOT NULL,
                  started_at REAL,
                  finished_at REAL
                );
                CREATE INDEX runs_state ON runs(state);
                CREATE TABLE tasks(
                  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                  idx INTEGER NOT NULL,
                  stage TEXT NOT NULL,
                  item TEXT NOT NULL,
                  state TEXT NOT NULL,
                  attempt INTEGER NOT NULL DEFAULT 0,
                  exit_code INTEGER,
                  signal TEXT,
                  reason TEXT,
                  result BLOB,
                  cpu_seconds REAL,
                  max_rss INTEGER,
                  started_at REAL,
                  finished_at REAL,
                  duration REAL,
                  stdout_truncated INTEGER NOT NULL DEFAULT 0,
                  stderr_truncated INTEGER NOT NULL DEFAULT 0,
                  PRIMARY KEY(run_id, idx)
                ) WITHOUT ROWID;
                CREATE TABLE task_outputs(
                  run_id INTEGER NOT NULL,
                  idx INTEGER NOT NULL,
                  stdout BLOB NOT NULL,
                  stderr BLOB NOT NULL,
                  PRIMARY KEY(run_id, idx),
                  FOREIGN KEY(run_id, idx) REFERENCES tasks(run_id, idx) ON DELETE CASCADE
                ) WITHOUT ROWID;
                INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '1');
                COMMIT;
                """)
        }
        if version < 2 {
            // Stages of runs made by version 1 are recovered from their
            // microtasks, which were numbered stage by stage.
            try db.execute(
                """
                BEGIN;
                ALTER TABLE runs ADD COLUMN started_by TEXT NOT NULL DEFAULT '';
                ALTER TABLE runs ADD COLUMN rerun_of INTEGER;
                ALTER TABLE runs ADD COLUMN reason TEXT;
                ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 50;
                CREATE TABLE stages(
                  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                  position INTEGER NOT NULL,
                  name TEXT NOT NULL,
                  source TEXT NOT NULL,
                  first_idx INTEGER,
                  count INTEGER,
                  state TEXT NOT NULL,
                  reason TEXT,
                  PRIMARY KEY(run_id, position)
                ) WITHOUT ROWID;
                INSERT INTO stages(run_id, position, name, source, first_idx, count, state)
                  SELECT run_id, row_number() OVER (PARTITION BY run_id ORDER BY min(idx)) - 1, stage,
                    'items', min(idx), count(*), 'waiting'
                  FROM tasks GROUP BY run_id, stage;
                INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '2');
                COMMIT;
                """)
        }
        if version < 3 {
            // Attempts of runs made before version 3 were not kept; their
            // last attempt is all there is.
            try db.execute(
                """
                BEGIN;
                CREATE TABLE attempts(
                  run_id INTEGER NOT NULL,
                  idx INTEGER NOT NULL,
                  attempt INTEGER NOT NULL,
                  state TEXT NOT NULL,
                  started_at REAL,
                  finished_at REAL,
                  exit_code INTEGER,
                  signal TEXT,
                  reason TEXT,
                  cpu_seconds REAL,
                  max_rss INTEGER,
                  PRIMARY KEY(run_id, idx, attempt),
                  FOREIGN KEY(run_id, idx) REFERENCES tasks(run_id, idx) ON DELETE CASCADE
                ) WITHOUT ROWID;
                INSERT INTO attempts(run_id, idx, attempt, state, started_at, finished_at, exit_code, signal,
                  reason, cpu_seconds, max_rss)
                  SELECT run_id, idx, attempt, state, started_at, finished_at, exit_code, signal, reason, cpu_seconds,
                    max_rss
                  FROM tasks WHERE attempt > 0 AND state IN ('succeeded', 'failed', 'cancelled');
                ALTER TABLE tasks ADD COLUMN retry_at REAL;
                ALTER TABLE runs ADD COLUMN scheduled_for REAL;
                CREATE TABLE schedules(
                  job TEXT PRIMARY KEY,
                  schedule TEXT NOT NULL,
                  last_fire REAL NOT NULL
                ) WITHOUT ROWID;
                INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '3');
                COMMIT;
                """)
        }
        if version < 4 {
            try db.execute(
                """
                BEGIN;
                CREATE TABLE events(
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  time REAL NOT NULL,
                  kind TEXT NOT NULL,
                  job TEXT,
                  run_id INTEGER,
                  fields TEXT NOT NULL
                );
                CREATE INDEX events_run ON events(run_id) WHERE run_id IS NOT NULL;
                CREATE INDEX runs_finished ON runs(finished_at) WHERE finished_at IS NOT NULL;
                ALTER TABLE runs ADD COLUMN deleting INTEGER NOT NULL DEFAULT 0;
                INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '4');
                COMMIT;
                """)
            var autoVacuum: Int64 = 0
            try db.prepare("PRAGMA auto_vacuum").query { row in autoVacuum = row.int(0) }
            if autoVacuum != 2 {
                // A database made before version 4: switching to incremental
                // vacuum takes one full VACUUM, once.
                try db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                try db.execute("VACUUM")
            }
        }
    }

    // MARK: Transactions

    /// Opens the iteration's transaction if none is open.
    public func beginIfNeeded() throws(StoreError) {
        if !db.isInTransaction { try hot("BEGIN IMMEDIATE").run() }
    }

    /// Changes are waiting for commit().
    public var hasUncommittedChanges: Bool { db.isInTransaction }

    /// Commits the open transaction, if any. Returns whether one was open.
    @discardableResult
    public func commit() throws(StoreError) -> Bool {
        guard db.isInTransaction else { return false }
        try writeHeldStarts()
        try hot("COMMIT").run()
        return true
    }

    /// A savepoint in the iteration's transaction: the body's writes are
    /// committed with the rest of the iteration (and the daemon replies
    /// after that commit), or undone alone when it throws.
    public func inTransaction<T>(_ body: () throws -> T) throws -> T {
        try beginIfNeeded()
        try writeHeldStarts()
        // Prepared once: sqlite3_exec parses its text at each call.
        try hot("SAVEPOINT atomic").run()
        do {
            let value = try body()
            try hot("RELEASE atomic").run()
            return value
        } catch {
            try? db.execute("ROLLBACK TO atomic")
            try? db.execute("RELEASE atomic")
            // Starts held in the body were undone with it.
            heldStarts.removeAll()
            // Events it appended are gone, and their ids will be given again.
            lastEventID = Store.maxEventID(db)
            throw error
        }
    }

    // MARK: Writes

    public func insertRun(_ run: NewRun) throws -> Int64 {
        try beginIfNeeded()
        try statement(
            """
            INSERT INTO runs(job, state, params, definition, total, created_at, started_by, rerun_of, priority,
              scheduled_for)
            VALUES(?, 'queued', ?, ?, 0, ?, ?, ?, ?, ?)
            """
        ).run([
            .text(run.job), .text(run.params), .text(run.definition), .double(run.createdAt), .text(run.startedBy),
            run.rerunOf.map { .int($0) } ?? .null, .int(Int64(run.priority)),
            run.scheduledFor.map { .double($0) } ?? .null,
        ])
        return db.lastInsertRowID
    }

    public func insertStage(run: Int64, _ stage: StageRecord) throws {
        try beginIfNeeded()
        try statement(
            """
            INSERT INTO stages(run_id, position, name, source, first_idx, count, state, reason)
            VALUES(?, ?, ?, ?, ?, ?, ?, ?)
            """
        ).run(stageValues(run: run, stage))
    }

    public func updateStage(run: Int64, _ stage: StageRecord) throws {
        try beginIfNeeded()
        try statement(
            """
            INSERT OR REPLACE INTO stages(run_id, position, name, source, first_idx, count, state, reason)
            VALUES(?, ?, ?, ?, ?, ?, ?, ?)
            """
        ).run(stageValues(run: run, stage))
    }

    private func stageValues(run: Int64, _ stage: StageRecord) -> [Statement.Value] {
        [
            .int(run), .int(Int64(stage.position)), .text(stage.name), .text(stage.source),
            stage.firstIndex.map { .int(Int64($0)) } ?? .null, stage.count.map { .int(Int64($0)) } ?? .null,
            .text(stage.state.rawValue), stage.reason.map { .text($0) } ?? .null,
        ]
    }

    public func insertTasks(run: Int64, firstIndex: Int, stage: String, items: [String]) throws {
        guard !items.isEmpty else { return }
        try beginIfNeeded()
        // The run and the stage are bound once (?1, ?2), each row's index
        // and item after them.
        var values: [Statement.Value] = [.int(run), .text(stage)]
        values.reserveCapacity(2 + items.count * 2)
        for (offset, item) in items.enumerated() {
            values.append(.int(Int64(firstIndex + offset)))
            values.append(.text(item))
        }
        // Full batches share one prepared statement; a last, short one is
        // prepared for the occasion.
        if items.count == Engine.insertBatch {
            try statement(Store.insertTasksSQL(Engine.insertBatch)).run(values)
        } else {
            try writeHeldStarts()
            try db.prepare(Store.insertTasksSQL(items.count)).run(values)
        }
    }

    private static let fullBatchSQL = batchSQL(Engine.insertBatch)

    private static func insertTasksSQL(_ count: Int) -> String {
        count == Engine.insertBatch ? fullBatchSQL : batchSQL(count)
    }

    private static func batchSQL(_ count: Int) -> String {
        "INSERT INTO tasks(run_id, idx, stage, item, state) VALUES"
            + (0..<count).map { "(?1, ?\(3 + 2 * $0), ?2, ?\(4 + 2 * $0), 'queued')" }.joined(separator: ", ")
    }

    public func deleteTasks(run: Int64, in range: Range<Int>) throws {
        try beginIfNeeded()
        try statement("DELETE FROM tasks WHERE run_id = ? AND idx >= ? AND idx < ?").run([
            .int(run), .int(Int64(range.lowerBound)), .int(Int64(range.upperBound)),
        ])
    }

    public func setRunTotal(run: Int64, total: Int) throws {
        try beginIfNeeded()
        try statement("UPDATE runs SET total = ? WHERE id = ?").run([.int(Int64(total)), .int(run)])
    }

    public func setRunState(run: Int64, state: RunState, startedAt: Double?, finishedAt: Double?, reason: String?)
        throws
    {
        try beginIfNeeded()
        try statement(
            """
            UPDATE runs SET state = ?, started_at = coalesce(started_at, ?), finished_at = ?,
              reason = coalesce(?, reason)
            WHERE id = ?
            """
        ).run([
            .text(state.rawValue), startedAt.map { .double($0) } ?? .null, finishedAt.map { .double($0) } ?? .null,
            reason.map { .text($0) } ?? .null, .int(run),
        ])
    }

    public func recordCancel(run: Int64) throws {
        try beginIfNeeded()
        try statement("UPDATE runs SET cancel_requested = 1 WHERE id = ?").run([.int(run)])
    }

    public func markRunning(run: Int64, index: Int, attempt: Int, at time: Double) throws {
        try beginIfNeeded()
        // The tasks row holds the last attempt; the ones before it are kept
        // in attempts, copied here just before the row is taken over.
        guard attempt > 1 else {
            // A first attempt: the row has nothing of an earlier one to
            // clear, and is written with its end or before the commit.
            heldStarts[TaskKey(run: run, index: index)] = time
            return
        }
        try writeHeldStarts()
        try recordAttempt(run: run, index: index)
        try hot(
            """
            UPDATE tasks SET state = 'running', attempt = attempt + 1, started_at = ?, retry_at = NULL,
              exit_code = NULL, signal = NULL, reason = NULL, result = NULL, cpu_seconds = NULL, max_rss = NULL,
              finished_at = NULL, duration = NULL
            WHERE run_id = ? AND idx = ?
            """
        ).run([.double(time), .int(run), .int(Int64(index))])
    }

    public func finishTask(run: Int64, index: Int, _ c: TaskCompletion) throws {
        try beginIfNeeded()
        var values: [Statement.Value] = [
            .text(c.state.rawValue), c.exitCode.map { .int(Int64($0)) } ?? .null, c.signal.map { .text($0) } ?? .null,
            c.reason.map { .text($0) } ?? .null, c.result.map { .blob($0) } ?? .null,
            c.cpuSeconds.map { .double($0) } ?? .null, c.maxRSS.map { .int($0) } ?? .null, .double(c.finishedAt),
            c.duration.map { .double($0) } ?? .null, .int(c.stdoutTruncated ? 1 : 0), .int(c.stderrTruncated ? 1 : 0),
        ]
        if let started = heldStarts.removeValue(forKey: TaskKey(run: run, index: index)) {
            // Its start was held: one write for both.
            values += [.double(started), .int(run), .int(Int64(index))]
            try hot(
                """
                UPDATE tasks SET state = ?, exit_code = ?, signal = ?, reason = ?, result = ?, cpu_seconds = ?,
                  max_rss = ?, finished_at = ?, duration = ?, stdout_truncated = ?, stderr_truncated = ?,
                  attempt = 1, started_at = ?
                WHERE run_id = ? AND idx = ?
                """
            ).run(values)
        } else {
            values += [.int(run), .int(Int64(index))]
            try hot(
                """
                UPDATE tasks SET state = ?, exit_code = ?, signal = ?, reason = ?, result = ?, cpu_seconds = ?,
                  max_rss = ?, finished_at = ?, duration = ?, stdout_truncated = ?, stderr_truncated = ?
                WHERE run_id = ? AND idx = ?
                """
            ).run(values)
        }
        if !c.stdout.isEmpty || !c.stderr.isEmpty {
            try hot("INSERT OR REPLACE INTO task_outputs(run_id, idx, stdout, stderr) VALUES(?, ?, ?, ?)").run(
                [.int(run), .int(Int64(index)), .blob(c.stdout), .blob(c.stderr)])
        }
    }

    public func retryLater(run: Int64, index: Int, at time: Double) throws {
        try beginIfNeeded()
        try statement("UPDATE tasks SET state = 'queued', retry_at = ? WHERE run_id = ? AND idx = ?").run([
            .double(time), .int(run), .int(Int64(index)),
        ])
    }

    /// Keeps the microtask's last attempt, as it ended, beside the others.
    /// A microtask waiting for its retry is queued, but the attempt it
    /// waits after failed.
    private func recordAttempt(run: Int64, index: Int) throws {
        try hot(
            """
            INSERT OR REPLACE INTO attempts(run_id, idx, attempt, state, started_at, finished_at, exit_code, signal,
              reason, cpu_seconds, max_rss)
            SELECT run_id, idx, attempt, CASE WHEN state IN ('queued', 'running') THEN 'failed' ELSE state END,
              started_at, finished_at, exit_code, signal, reason, cpu_seconds, max_rss
            FROM tasks WHERE run_id = ? AND idx = ? AND attempt > 0
            """
        ).run([.int(run), .int(Int64(index))])
    }

    /// Every attempt at a microtask that ended, the first first: those in
    /// attempts, then the tasks row's (the last; a database from before
    /// schema 5 has it in attempts too), unless it is still running.
    public func attempts(run: Int64, index: Int) throws(StoreError) -> [AttemptInfo] {
        var attempts: [AttemptInfo] = []
        try statement(
            """
            SELECT a.attempt, a.state, a.started_at, a.finished_at, a.exit_code, a.signal, a.reason, a.cpu_seconds,
              a.max_rss
            FROM attempts a JOIN tasks t ON t.run_id = a.run_id AND t.idx = a.idx
            WHERE a.run_id = ? AND a.idx = ? AND a.attempt < t.attempt
            UNION ALL
            SELECT attempt, CASE WHEN state = 'queued' THEN 'failed' ELSE state END, started_at, finished_at,
              exit_code, signal, reason, cpu_seconds, max_rss
            FROM tasks WHERE run_id = ? AND idx = ? AND attempt > 0 AND state != 'running'
            ORDER BY 1
            """
        ).query([.int(run), .int(Int64(index)), .int(run), .int(Int64(index))]) { row in
            attempts.append(
                AttemptInfo(
                    attempt: Int(row.int(0)), state: TaskState(rawValue: row.text(1)) ?? .failed,
                    startedAt: row.optionalDouble(2), finishedAt: row.optionalDouble(3),
                    exitCode: row.optionalInt(4).map { Int($0) }, signal: row.optionalText(5),
                    reason: row.optionalText(6), cpuSeconds: row.optionalDouble(7), maxRSS: row.optionalInt(8)))
        }
        return attempts
    }

    @discardableResult
    public func cancelQueuedTasks(run: Int64, in range: Range<Int>, reason: String, at time: Double) throws -> Int {
        try beginIfNeeded()
        try statement(
            """
            UPDATE tasks SET state = 'cancelled', reason = ?, finished_at = ?, retry_at = NULL
            WHERE run_id = ? AND state = 'queued' AND idx >= ? AND idx < ?
            """
        ).run([.text(reason), .double(time), .int(run), .int(Int64(range.lowerBound)), .int(Int64(range.upperBound))])
        return db.changes
    }

    // MARK: Reads for the engine

    public func queuedTasks(run: Int64, in range: Range<Int>, limit: Int) throws -> [QueuedTask] {
        var tasks: [QueuedTask] = []
        try statement(
            """
            SELECT idx, item, attempt FROM tasks
            WHERE run_id = ? AND state = 'queued' AND retry_at IS NULL AND idx >= ? AND idx < ? ORDER BY idx LIMIT ?
            """
        ).query(rangeValues(run, range, limit)) { row in
            tasks.append(QueuedTask(index: Int(row.int(0)), item: row.text(1), attempts: Int(row.int(2))))
        }
        return tasks
    }

    public func waitingRetries(run: Int64, in range: Range<Int>) throws -> [(task: QueuedTask, due: Double)] {
        var tasks: [(task: QueuedTask, due: Double)] = []
        try statement(
            """
            SELECT idx, item, attempt, retry_at FROM tasks
            WHERE run_id = ? AND state = 'queued' AND retry_at IS NOT NULL AND idx >= ? AND idx < ? ORDER BY idx
            """
        ).query([.int(run), .int(Int64(range.lowerBound)), .int(Int64(range.upperBound))]) { row in
            tasks.append(
                (QueuedTask(index: Int(row.int(0)), item: row.text(1), attempts: Int(row.int(2))), row.double(3)))
        }
        return tasks
    }

    public func interruptedTasks(run: Int64, in range: Range<Int>) throws -> [QueuedTask] {
        var tasks: [QueuedTask] = []
        try statement(
            """
            SELECT idx, item, attempt FROM tasks
            WHERE run_id = ? AND state = 'running' AND idx >= ? AND idx < ? ORDER BY idx
            """
        ).query([.int(run), .int(Int64(range.lowerBound)), .int(Int64(range.upperBound))]) { row in
            tasks.append(QueuedTask(index: Int(row.int(0)), item: row.text(1), attempts: Int(row.int(2))))
        }
        return tasks
    }

    public func results(run: Int64, in range: Range<Int>, limit: Int) throws -> [ResultRow] {
        var rows: [ResultRow] = []
        try statement(
            """
            SELECT idx, item, result FROM tasks
            WHERE run_id = ? AND idx >= ? AND idx < ? AND state = 'succeeded' ORDER BY idx LIMIT ?
            """
        ).query(rangeValues(run, range, limit)) { row in
            rows.append(
                ResultRow(index: Int(row.int(0)), item: row.text(1), result: row.isNull(2) ? [] : row.blob(2)))
        }
        return rows
    }

    public func items(run: Int64, in range: Range<Int>, unsuccessfulOnly: Bool, limit: Int) throws -> [(
        index: Int, item: String
    )] {
        var items: [(index: Int, item: String)] = []
        let sql =
            unsuccessfulOnly
            ? """
            SELECT idx, item FROM tasks WHERE run_id = ? AND idx >= ? AND idx < ? AND state != 'succeeded'
            ORDER BY idx LIMIT ?
            """
            : "SELECT idx, item FROM tasks WHERE run_id = ? AND idx >= ? AND idx < ? ORDER BY idx LIMIT ?"
        try statement(sql).query(rangeValues(run, range, limit)) { row in
            items.append((Int(row.int(0)), row.text(1)))
        }
        return items
    }

    public func taskCounts(run: Int64, in range: Range<Int>) throws -> TaskCounts {
        var counts = TaskCounts()
        try statement(
            "SELECT state, count(*) FROM tasks WHERE run_id = ? AND idx >= ? AND idx < ? GROUP BY state"
        ).query([.int(run), .int(Int64(range.lowerBound)), .int(Int64(range.upperBound))]) { row in
            if let state = TaskState(rawValue: row.text(0)) { counts[state] = Int(row.int(1)) }
        }
        return counts
    }

    private func rangeValues(_ run: Int64, _ range: Range<Int>, _ limit: Int) -> [Statement.Value] {
        [.int(run), .int(Int64(range.lowerBound)), .int(Int64(range.upperBound)), .int(Int64(limit))]
    }

    public func savedRun(id: Int64) throws -> SavedRun? {
        var found: SavedRun?
        try statement(
            """
            SELECT id, job, state, params, definition, created_at, started_at, finished_at, started_by, rerun_of,
              reason, total, cancel_requested, priority, scheduled_for
            FROM runs WHERE id = ? AND deleting = 0
            """
        ).query([.int(id)]) { row in found = savedRun(row) }
        guard var run = found else { return nil }
        run.stages = try stages(run: id)
        return run
    }

    private func savedRun(_ row: Row) -> SavedRun {
        SavedRun(
            id: row.int(0), job: row.text(1), state: RunState(rawValue: row.text(2)) ?? .failed,
            params: row.text(3), definition: row.text(4), createdAt: row.double(5),
            startedAt: row.optionalDouble(6), finishedAt: row.optionalDouble(7), startedBy: row.text(8),
            rerunOf: row.optionalInt(9), reason: row.optionalText(10), total: Int(row.int(11)), stages: [],
            cancelRequested: row.int(12) != 0, priority: Int(row.int(13)), scheduledFor: row.optionalDouble(14))
    }

    /// The stages of a run, in the order of its job.
    public func stages(run: Int64) throws(StoreError) -> [StageRecord] {
        var stages: [StageRecord] = []
        try statement(
            """
            SELECT position, name, source, first_idx, count, state, reason FROM stages
            WHERE run_id = ? ORDER BY position
            """
        ).query([.int(run)]) { row in
            stages.append(
                StageRecord(
                    position: Int(row.int(0)), name: row.text(1), source: row.text(2),
                    firstIndex: row.optionalInt(3).map { Int($0) }, count: row.optionalInt(4).map { Int($0) },
                    state: StageState(rawValue: row.text(5)) ?? .waiting, reason: row.optionalText(6)))
        }
        return stages
    }

    public func recordFire(job: String, schedule: String, at time: Double) throws {
        try beginIfNeeded()
        try statement("INSERT OR REPLACE INTO schedules(job, schedule, last_fire) VALUES(?, ?, ?)").run([
            .text(job), .text(schedule), .double(time),
        ])
    }

    public func savedSchedules() throws -> [String: (schedule: String, lastFire: Double)] {
        var saved: [String: (schedule: String, lastFire: Double)] = [:]
        try statement("SELECT job, schedule, last_fire FROM schedules").query { row in
            saved[row.text(0)] = (row.text(1), row.double(2))
        }
        return saved
    }

    public func unfinishedRuns() throws -> [SavedRun] {
        try commit()
        var runs: [SavedRun] = []
        try statement(
            """
            SELECT id, job, state, params, definition, created_at, started_at, finished_at, started_by, rerun_of,
              reason, total, cancel_requested, priority, scheduled_for
            FROM runs WHERE state IN ('queued', 'running') ORDER BY id
            """
        ).query { row in runs.append(savedRun(row)) }
        for i in runs.indices { runs[i].stages = try stages(run: runs[i].id) }
        return runs
    }

    // MARK: Events

    public func appendEvent(_ event: EventRecord) throws {
        try beginIfNeeded()
        try statement("INSERT INTO events(time, kind, job, run_id, fields) VALUES(?, ?, ?, ?, ?)").run([
            .double(event.time), .text(event.kind), event.job.map { .text($0) } ?? .null,
            event.run.map { .int($0) } ?? .null, .text(event.fields.serialized()),
        ])
        lastEventID = db.lastInsertRowID
    }

    /// The id of the newest event written (committed or not), 0 when none.
    public private(set) lazy var lastEventID: Int64 = Store.maxEventID(db)

    private static func maxEventID(_ db: Database) -> Int64 {
        var id: Int64 = 0
        try? db.prepare("SELECT coalesce(max(id), 0) FROM events").query { row in id = row.int(0) }
        return id
    }

    private func eventWhere(_ filter: EventFilter, after: Int64?) -> (String, [Statement.Value]) {
        var clauses: [String] = []
        var values: [Statement.Value] = []
        if let after {
            clauses.append("id > ?")
            values.append(.int(after))
        }
        if let run = filter.run {
            clauses.append("run_id = ?")
            values.append(.int(run))
        }
        if let job = filter.job {
            clauses.append("job = ?")
            values.append(.text(job))
        }
        if let since = filter.since {
            clauses.append("time >= ?")
            values.append(.double(since))
        }
        return (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND "), values)
    }

    private static let eventColumns = "SELECT id, time, kind, job, run_id, fields FROM events"

    private func eventRecord(_ row: Row) -> EventRecord {
        EventRecord(
            id: row.int(0), time: row.double(1), kind: row.text(2), job: row.optionalText(3),
            run: row.optionalInt(4), fields: (try? JSON.parse(row.text(5))) ?? .object([]))
    }

    /// Events after the id `after` that match, oldest first, at most `limit`.
    public func events(after: Int64, matching filter: EventFilter, limit: Int) throws(StoreError) -> [EventRecord] {
        let (clause, values) = eventWhere(filter, after: after)
        var events: [EventRecord] = []
        try statement(Store.eventColumns + clause + " ORDER BY id LIMIT ?").query(values + [.int(Int64(limit))]) {
            row in events.append(eventRecord(row))
        }
        return events
    }

    /// The newest `count` events that match, oldest first.
    public func lastEvents(matching filter: EventFilter, count: Int) throws(StoreError) -> [EventRecord] {
        let (clause, values) = eventWhere(filter, after: nil)
        var events: [EventRecord] = []
        try statement(Store.eventColumns + clause + " ORDER BY id DESC LIMIT ?").query(values + [.int(Int64(count))]) {
            row in events.append(eventRecord(row))
        }
        return events.reversed()
    }

    // MARK: Reads for clients

    private func runInfo(_ row: Row) -> RunInfo {
        var info = RunInfo(
            id: row.int(0), job: row.text(1), state: RunState(rawValue: row.text(2)) ?? .failed,
            createdAt: row.double(3), startedAt: row.optionalDouble(4), finishedAt: row.optionalDouble(5),
            total: Int(row.int(6)), counts: TaskCounts(), reason: row.optionalText(7), priority: Int(row.int(8)))
        info.scheduledFor = row.optionalDouble(9)
        return info
    }

    private func counts(run: Int64) throws(StoreError) -> TaskCounts {
        var counts = TaskCounts()
        try statement("SELECT state, count(*) FROM tasks WHERE run_id = ? GROUP BY state").query([.int(run)]) { row in
            if let state = TaskState(rawValue: row.text(0)) { counts[state] = Int(row.int(1)) }
        }
        return counts
    }

    public func run(id: Int64) throws(StoreError) -> RunInfo? {
        var found: RunInfo?
        try statement(
            "SELECT id, job, state, created_at, started_at, finished_at, total, reason, priority, scheduled_for FROM runs WHERE id = ? AND deleting = 0"
        ).query([.int(id)]) { row in found = runInfo(row) }
        guard var run = found else { return nil }
        run.counts = try counts(run: id)
        return run
    }

    /// The most recent runs first, of `job` and in `state` when given, and
    /// created at or after `since`. Counts are filled in by the caller for
    /// runs it holds in memory, and from the database otherwise.
    public func runs(
        limit: Int, job: String? = nil, state: RunState? = nil, since: Double? = nil,
        counts countsFor: (Int64) -> TaskCounts?
    ) throws(StoreError) -> [RunInfo] {
        var sql =
            "SELECT id, job, state, created_at, started_at, finished_at, total, reason, priority, scheduled_for FROM runs"
            + " WHERE deleting = 0"
        var values: [Statement.Value] = []
        if let job {
            sql += " AND job = ?"
            values.append(.text(job))
        }
        if let state {
            sql += " AND state = ?"
            values.append(.text(state.rawValue))
        }
        if let since {
            sql += " AND created_at >= ?"
            values.append(.double(since))
        }
        var runs: [RunInfo] = []
        try statement(sql + " ORDER BY id DESC LIMIT ?").query(values + [.int(Int64(limit))]) { row in
            runs.append(runInfo(row))
        }
        for i in runs.indices {
            if let known = countsFor(runs[i].id) {
                runs[i].counts = known
            } else {
                runs[i].counts = try counts(run: runs[i].id)
            }
        }
        return runs
    }

    // MARK: Retention

    /// Marks finished runs past their retention for deletion (at most 1000
    /// a call); returns how many. `retention` gives a job's, with the
    /// server's filled in; `server` is the server's own, whose max_runs
    /// counts every job's runs.
    public func markExpiredRuns(now: Double, server: Retention, retention: (String) -> Retention) throws(StoreError)
        -> Int
    {
        var doomed: [Int64] = []
        // Too old: walk the oldest finished runs while some job could want
        // them gone.
        var byJob: [String: Retention] = [:]
        func of(_ job: String) -> Retention {
            if let known = byJob[job] { return known }
            let value = retention(job)
            byJob[job] = value
            return value
        }
        try statement(
            """
            SELECT id, job, finished_at FROM runs WHERE deleting = 0 AND finished_at IS NOT NULL
              AND state IN ('succeeded', 'failed', 'cancelled')
            ORDER BY finished_at LIMIT 1000
            """
        ).query { row in
            if let age = of(row.text(1)).maxAge, row.double(2) < now - Double(age) / 1000 { doomed.append(row.int(0)) }
        }
        // Too many: the oldest past each job's max_runs, and past the
        // server's over all jobs.
        var perJob: [(String, Int)] = []
        try statement(
            "SELECT job, count(*) FROM runs WHERE deleting = 0 AND finished_at IS NOT NULL GROUP BY job"
        ).query { row in perJob.append((row.text(0), Int(row.int(1)))) }
        for (job, count) in perJob {
            guard let most = of(job).maxRuns, count > most else { continue }
            try statement(
                "SELECT id FROM runs WHERE deleting = 0 AND finished_at IS NOT NULL AND job = ? ORDER BY id LIMIT ?"
            ).query([.text(job), .int(Int64(min(count - most, 1000)))]) { row in doomed.append(row.int(0)) }
        }
        // What the jobs' own limits leave, against the server's.
        var doomedSet = Set(doomed)
        let total = perJob.reduce(0) { $0 + $1.1 }
        if let most = server.maxRuns, total - doomedSet.count > most {
            var excess = min(total - doomedSet.count - most, 1000)
            try statement("SELECT id FROM runs WHERE deleting = 0 AND finished_at IS NOT NULL ORDER BY id LIMIT ?")
                .query([.int(Int64(excess + doomedSet.count))]) { row in
                    guard excess > 0, doomedSet.insert(row.int(0)).inserted else { return }
                    excess -= 1
                }
        }
        var marked = 0
        for id in doomedSet {
            try markForDeletion(run: id)
            marked += db.changes
        }
        // Events of no run (reloads, workers, the daemon) by the server's age.
        if let age = server.maxAge {
            try statement(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE run_id IS NULL AND time < ? LIMIT 1000)"
            ).run([.double(now - Double(age) / 1000)])
        }
        return marked
    }

    /// Hides a finished run from every read; its rows go in batches
    /// (`deleteSome`).
    public func markForDeletion(run: Int64) throws(StoreError) {
        try beginIfNeeded()
        try statement("UPDATE runs SET deleting = 1 WHERE id = ? AND deleting = 0").run([.int(run)])
    }

    /// A run marked for deletion, if any.
    public func nextDeletion() throws(StoreError) -> Int64? {
        var id: Int64?
        try statement("SELECT id FROM runs WHERE deleting = 1 LIMIT 1").query { row in id = row.int(0) }
        return id
    }

    /// Deletes up to `limit` microtasks of a run marked for deletion (with
    /// their attempts and output), and the run itself with its stages and
    /// events once none is left. Returns whether the run is gone.
    public func deleteSome(run: Int64, limit: Int) throws(StoreError) -> Bool {
        try beginIfNeeded()
        try statement(
            "DELETE FROM tasks WHERE run_id = ? AND idx IN (SELECT idx FROM tasks WHERE run_id = ? ORDER BY idx LIMIT ?)"
        ).run([.int(run), .int(run), .int(Int64(limit))])
        guard db.changes < limit else { return false }
        try statement("DELETE FROM events WHERE run_id = ?").run([.int(run)])
        try statement("DELETE FROM runs WHERE id = ?").run([.int(run)])
        return true
    }

    /// Gives up to `pages` free pages back to the file system; returns how
    /// many free pages are left.
    @discardableResult
    public func reclaim(pages: Int) throws(StoreError) -> Int {
        try db.execute("PRAGMA incremental_vacuum(\(pages))")
        return Int(pragma("freelist_count"))
    }

    /// The database file's size and its free part, in bytes (the WAL file
    /// not counted).
    public func size() -> (bytes: Int64, free: Int64) {
        let page = pragma("page_size")
        return (pragma("page_count") * page, pragma("freelist_count") * page)
    }

    private func pragma(_ name: String) -> Int64 {
        var value: Int64 = 0
        try? statement("PRAGMA \(name)").query { row in value = row.int(0) }
        return value
    }

    private static let taskColumns = """
        SELECT idx, stage, item, state, exit_code, signal, reason, result, cpu_seconds, max_rss, duration,
          stdout_truncated, stderr_truncated, started_at, finished_at, attempt, retry_at
        FROM tasks
        """

    private func taskInfo(_ row: Row) -> TaskInfo {
        var info = TaskInfo(
            index: Int(row.int(0)), stage: row.text(1), item: row.text(2),
            state: TaskState(rawValue: row.text(3)) ?? .failed, exitCode: row.optionalInt(4).map { Int($0) },
            signal: row.optionalText(5), reason: row.optionalText(6),
            resultBytes: row.isNull(7) ? nil : row.blob(7), cpuSeconds: row.optionalDouble(8),
            maxRSS: row.optionalInt(9), durationSeconds: row.optionalDouble(10),
            startedAt: row.optionalDouble(13), finishedAt: row.optionalDouble(14),
            stdoutTruncated: row.int(11) != 0, stderrTruncated: row.int(12) != 0)
        info.attempt = Int(row.int(15))
        info.retryAt = row.optionalDouble(16)
        return info
    }

    public func tasks(run: Int64, state: TaskState?, offset: Int, limit: Int) throws(StoreError) -> [TaskInfo] {
        var sql = Store.taskColumns + " WHERE run_id = ?"
        var values: [Statement.Value] = [.int(run)]
        if let state {
            sql += " AND state = ?"
            values.append(.text(state.rawValue))
        }
        sql += " ORDER BY idx LIMIT ? OFFSET ?"
        values += [.int(Int64(limit)), .int(Int64(offset))]
        var tasks: [TaskInfo] = []
        try statement(sql).query(values) { row in tasks.append(taskInfo(row)) }
        return tasks
    }

    /// Microtasks with an index of `after` or more, in index order, for
    /// streaming results a batch at a time (keyset pagination).
    public func tasks(run: Int64, stage: String?, from index: Int, limit: Int) throws(StoreError) -> [TaskInfo] {
        var tasks: [TaskInfo] = []
        if let stage {
            try statement(Store.taskColumns + " WHERE run_id = ? AND idx >= ? AND stage = ? ORDER BY idx LIMIT ?")
                .query([.int(run), .int(Int64(index)), .text(stage), .int(Int64(limit))]) { row in
                    tasks.append(taskInfo(row))
                }
        } else {
            try statement(Store.taskColumns + " WHERE run_id = ? AND idx >= ? ORDER BY idx LIMIT ?")
                .query([.int(run), .int(Int64(index)), .int(Int64(limit))]) { row in tasks.append(taskInfo(row)) }
        }
        return tasks
    }

    public func output(run: Int64, index: Int) throws(StoreError) -> TaskOutput? {
        var found: TaskOutput?
        try statement(
            """
            SELECT o.stdout, o.stderr, t.stdout_truncated, t.stderr_truncated
            FROM tasks t LEFT JOIN task_outputs o ON o.run_id = t.run_id AND o.idx = t.idx
            WHERE t.run_id = ? AND t.idx = ?
            """
        ).query([.int(run), .int(Int64(index))]) { row in
            found = TaskOutput(
                index: index, stdoutBytes: row.blob(0), stderrBytes: row.blob(1), stdoutTruncated: row.int(2) != 0,
                stderrTruncated: row.int(3) != 0)
        }
        return found
    }
}
