// The durable state of runs and microtasks, in SQLite (WAL) in the state
// directory.
//
// Writes are grouped: the daemon opens a transaction on the first change of
// a loop iteration and commits it once at the end of that iteration, before
// any client hears of the change (see Daemon.flush). One fsync then covers
// every state change of the iteration, which keeps durability affordable at
// thousands of microtasks a second.
//
// The schema carries what crash recovery and retention need (the run's
// parameters, the job file it came from, per-task attempts, timestamps), so
// those features will not need a migration of existing data.

import TesseraProtocol

public final class Store {
    /// Version 1: runs, tasks, task_outputs.
    public static let schemaVersion = 1

    private let db: Database
    private let insertRun: Statement
    private let insertTask: Statement
    private let updateRunStateStatement: Statement
    private let markRunningStatement: Statement
    private let finishTaskStatement: Statement
    private let insertOutput: Statement
    private let cancelTaskStatement: Statement
    private let selectRun: Statement
    private let countTasks: Statement
    private let selectRuns: Statement
    private let selectOutput: Statement

    public init(directory: String) throws(StoreError) {
        db = try Database(path: directory + "/tessera.db")
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("PRAGMA synchronous=FULL")
        try db.execute("PRAGMA foreign_keys=ON")
        try Store.migrate(db)
        insertRun = try db.prepare(
            "INSERT INTO runs(job, state, params, definition, total, created_at) VALUES(?, 'queued', ?, ?, ?, ?)")
        insertTask = try db.prepare("INSERT INTO tasks(run_id, idx, stage, item, state) VALUES(?, ?, ?, ?, 'queued')")
        updateRunStateStatement = try db.prepare(
            "UPDATE runs SET state = ?, started_at = coalesce(started_at, ?), finished_at = ? WHERE id = ?")
        markRunningStatement = try db.prepare(
            "UPDATE tasks SET state = 'running', attempt = attempt + 1, started_at = ? WHERE run_id = ? AND idx = ?")
        finishTaskStatement = try db.prepare(
            """
            UPDATE tasks SET state = ?, exit_code = ?, signal = ?, reason = ?, result = ?, cpu_seconds = ?,
              max_rss = ?, finished_at = ?, duration = ?, stdout_truncated = ?, stderr_truncated = ?
            WHERE run_id = ? AND idx = ?
            """)
        cancelTaskStatement = try db.prepare(
            "UPDATE tasks SET state = 'cancelled', reason = ?, finished_at = ? WHERE run_id = ? AND idx = ? AND state = 'queued'"
        )
        insertOutput = try db.prepare(
            "INSERT OR REPLACE INTO task_outputs(run_id, idx, stdout, stderr) VALUES(?, ?, ?, ?)")
        selectRun = try db.prepare(
            "SELECT id, job, state, created_at, started_at, finished_at, total FROM runs WHERE id = ?")
        countTasks = try db.prepare("SELECT state, count(*) FROM tasks WHERE run_id = ? GROUP BY state")
        selectRuns = try db.prepare(
            "SELECT id, job, state, created_at, started_at, finished_at, total FROM runs ORDER BY id DESC LIMIT ?")
        selectOutput = try db.prepare(
            """
            SELECT o.stdout, o.stderr, t.stdout_truncated, t.stderr_truncated
            FROM tasks t LEFT JOIN task_outputs o ON o.run_id = t.run_id AND o.idx = t.idx
            WHERE t.run_id = ? AND t.idx = ?
            """)
    }

    private static func migrate(_ db: Database) throws(StoreError) {
        try db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        var version = 0
        try db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").query { row in
            version = Int(row.text(0)) ?? 0
        }
        if version > schemaVersion {
            throw StoreError(
                message: "\(db.path): schema version \(version) is newer than this tesserad (\(schemaVersion)); "
                    + "refusing to touch it")
        }
        guard version < 1 else { return }
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

    // MARK: Transactions

    /// Opens the iteration's transaction if none is open.
    public func beginIfNeeded() throws(StoreError) {
        if !db.isInTransaction { try db.execute("BEGIN IMMEDIATE") }
    }

    /// Commits the open transaction, if any. Returns whether one was open.
    @discardableResult
    public func commit() throws(StoreError) -> Bool {
        guard db.isInTransaction else { return false }
        try db.execute("COMMIT")
        return true
    }

    // MARK: Writes

    /// Creates a run and all its microtasks in one transaction of its own
    /// (so the id handed back is durable), returning the run's id.
    public func createRun(
        job: String, params: String, definition: String, createdAt: Double,
        tasks: some Sequence<(stage: String, item: String)>, total: Int
    ) throws(StoreError) -> Int64 {
        try commit()
        try db.execute("BEGIN IMMEDIATE")
        do {
            try insertRun.run([.text(job), .text(params), .text(definition), .int(Int64(total)), .double(createdAt)])
            let id = db.lastInsertRowID
            var index: Int64 = 0
            for task in tasks {
                try insertTask.run([.int(id), .int(index), .text(task.stage), .text(task.item)])
                index += 1
            }
            try db.execute("COMMIT")
            return id
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    public func setRunState(id: Int64, state: RunState, startedAt: Double?, finishedAt: Double?) throws(StoreError) {
        try beginIfNeeded()
        try updateRunStateStatement.run([
            .text(state.rawValue), startedAt.map { .double($0) } ?? .null, finishedAt.map { .double($0) } ?? .null,
            .int(id),
        ])
    }

    public func markRunning(run: Int64, index: Int, at time: Double) throws(StoreError) {
        try beginIfNeeded()
        try markRunningStatement.run([.double(time), .int(run), .int(Int64(index))])
    }

    /// What a finished microtask leaves behind.
    public struct Completion {
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

        public init(
            state: TaskState, exitCode: Int? = nil, signal: String? = nil, reason: String? = nil,
            result: [UInt8]? = nil, cpuSeconds: Double? = nil, maxRSS: Int64? = nil, finishedAt: Double,
            duration: Double? = nil, stdout: [UInt8] = [], stderr: [UInt8] = [],
            stdoutTruncated: Bool = false, stderrTruncated: Bool = false
        ) {
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

    public func finishTask(run: Int64, index: Int, _ c: Completion) throws(StoreError) {
        try beginIfNeeded()
        try finishTaskStatement.run([
            .text(c.state.rawValue), c.exitCode.map { .int(Int64($0)) } ?? .null, c.signal.map { .text($0) } ?? .null,
            c.reason.map { .text($0) } ?? .null, c.result.map { .blob($0) } ?? .null,
            c.cpuSeconds.map { .double($0) } ?? .null, c.maxRSS.map { .int($0) } ?? .null, .double(c.finishedAt),
            c.duration.map { .double($0) } ?? .null, .int(c.stdoutTruncated ? 1 : 0), .int(c.stderrTruncated ? 1 : 0),
            .int(run), .int(Int64(index)),
        ])
        if !c.stdout.isEmpty || !c.stderr.isEmpty {
            try insertOutput.run([.int(run), .int(Int64(index)), .blob(c.stdout), .blob(c.stderr)])
        }
    }

    /// Marks the given queued tasks of a run cancelled, with a reason.
    public func cancelQueuedTasks(run: Int64, indices: some Sequence<Int>, reason: String, at time: Double)
        throws(StoreError)
    {
        try beginIfNeeded()
        for index in indices {
            try cancelTaskStatement.run([.text(reason), .double(time), .int(run), .int(Int64(index))])
        }
    }

    // MARK: Reads

    private func runInfo(_ row: Row) -> RunInfo {
        RunInfo(
            id: row.int(0), job: row.text(1), state: RunState(rawValue: row.text(2)) ?? .failed,
            createdAt: row.double(3), startedAt: row.optionalDouble(4), finishedAt: row.optionalDouble(5),
            total: Int(row.int(6)), counts: TaskCounts())
    }

    private func counts(run: Int64) throws(StoreError) -> TaskCounts {
        var counts = TaskCounts()
        try countTasks.query([.int(run)]) { row in
            if let state = TaskState(rawValue: row.text(0)) { counts[state] = Int(row.int(1)) }
        }
        return counts
    }

    public func run(id: Int64) throws(StoreError) -> RunInfo? {
        var found: RunInfo?
        try selectRun.query([.int(id)]) { row in found = runInfo(row) }
        guard var run = found else { return nil }
        run.counts = try counts(run: id)
        return run
    }

    /// The most recent runs first. Counts are filled in by the caller for
    /// runs it holds in memory, and from the database otherwise.
    public func runs(limit: Int, counts countsFor: (Int64) -> TaskCounts?) throws(StoreError) -> [RunInfo] {
        var runs: [RunInfo] = []
        try selectRuns.query([.int(Int64(limit))]) { row in runs.append(runInfo(row)) }
        for i in runs.indices {
            if let known = countsFor(runs[i].id) {
                runs[i].counts = known
            } else {
                runs[i].counts = try counts(run: runs[i].id)
            }
        }
        return runs
    }

    public func tasks(run: Int64, state: TaskState?, offset: Int, limit: Int) throws(StoreError) -> [TaskInfo] {
        var sql = """
            SELECT idx, stage, item, state, exit_code, signal, reason, result, cpu_seconds, max_rss, duration,
              stdout_truncated, stderr_truncated, started_at, finished_at
            FROM tasks WHERE run_id = ?
            """
        var values: [Statement.Value] = [.int(run)]
        if let state {
            sql += " AND state = ?"
            values.append(.text(state.rawValue))
        }
        sql += " ORDER BY idx LIMIT ? OFFSET ?"
        values += [.int(Int64(limit)), .int(Int64(offset))]
        var tasks: [TaskInfo] = []
        try db.prepare(sql).query(values) { row in
            tasks.append(
                TaskInfo(
                    index: Int(row.int(0)), stage: row.text(1), item: row.text(2),
                    state: TaskState(rawValue: row.text(3)) ?? .failed, exitCode: row.optionalInt(4).map { Int($0) },
                    signal: row.optionalText(5), reason: row.optionalText(6),
                    resultBytes: row.isNull(7) ? nil : row.blob(7), cpuSeconds: row.optionalDouble(8),
                    maxRSS: row.optionalInt(9), durationSeconds: row.optionalDouble(10),
                    startedAt: row.optionalDouble(13), finishedAt: row.optionalDouble(14),
                    stdoutTruncated: row.int(11) != 0, stderrTruncated: row.int(12) != 0))
        }
        return tasks
    }

    public func output(run: Int64, index: Int) throws(StoreError) -> TaskOutput? {
        var found: TaskOutput?
        try selectOutput.query([.int(run), .int(Int64(index))]) { row in
            found = TaskOutput(
                index: index, stdoutBytes: row.blob(0), stderrBytes: row.blob(1), stdoutTruncated: row.int(2) != 0,
                stderrTruncated: row.int(3) != 0)
        }
        return found
    }

    /// A run the daemon did not finish before it stopped.
    public struct UnfinishedRun {
        public var id: Int64
        public var job: String
        public var params: String
        public var definition: String
        public var createdAt: Double
        public var startedAt: Double?
        /// Indices of the microtasks that had not finished.
        public var pending: [Int]
        /// Indices of the microtasks that failed or were cancelled.
        public var unsuccessful: [Int]
        public var counts: TaskCounts
    }

    /// Runs left queued or running by an earlier daemon, for recovery. Tasks
    /// that were running are put back in the queue first: their processes
    /// died with the daemon's workers, so they run again.
    public func unfinishedRuns() throws(StoreError) -> [UnfinishedRun] {
        try commit()
        try db.execute(
            """
            UPDATE tasks SET state = 'queued'
            WHERE state = 'running' AND run_id IN (SELECT id FROM runs WHERE state IN ('queued', 'running'))
            """)
        var runs: [UnfinishedRun] = []
        try db.prepare(
            """
            SELECT id, job, params, definition, created_at, started_at FROM runs
            WHERE state IN ('queued', 'running') ORDER BY id
            """
        ).query { row in
            runs.append(
                UnfinishedRun(
                    id: row.int(0), job: row.text(1), params: row.text(2), definition: row.text(3),
                    createdAt: row.double(4), startedAt: row.optionalDouble(5), pending: [], unsuccessful: [],
                    counts: TaskCounts()))
        }
        let pending = try db.prepare("SELECT idx FROM tasks WHERE run_id = ? AND state = 'queued' ORDER BY idx")
        let unsuccessful = try db.prepare(
            "SELECT idx FROM tasks WHERE run_id = ? AND state IN ('failed', 'cancelled') ORDER BY idx")
        for i in runs.indices {
            try pending.query([.int(runs[i].id)]) { row in runs[i].pending.append(Int(row.int(0))) }
            try unsuccessful.query([.int(runs[i].id)]) { row in runs[i].unsuccessful.append(Int(row.int(0))) }
            runs[i].counts = try counts(run: runs[i].id)
        }
        return runs
    }
}
