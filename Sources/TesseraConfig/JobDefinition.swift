// JobDefinition.swift
//
// Why this file exists: these are the typed, validated jobs the daemon
// schedules. A value of these types has passed every check of the job file
// and the executor catalogue, so the rest of Tessera never re-validates.

/// One stage of a job: an executor run over a set of items.
public struct StageDefinition: Sendable, Equatable {
    /// Unique within the job; "main" for a single-stage job written in the short form.
    public var name: String
    public var executor: String
    /// The parameters in the order written, then the executor's declared
    /// defaults for those not written, in the order declared.
    public var params: [Param]
    public var items: ItemSource
    /// The stage's own limits; overlay them on the server's defaults to run.
    public var limits: Limits
    /// The stage's own sandbox settings; overlay them on the server's defaults to run.
    public var sandbox: SandboxSettings
    /// The stages that must finish before this one starts, as written.
    public var after: [String]
    /// Consecutive items per microtask (the item is then a JSON array); nil: one.
    public var chunk: Int?
    /// How many of the stage's microtasks may run at once, in each run; nil: no cap of its own.
    public var concurrency: Int?
    /// What each microtask needs of the server's capacity.
    public var requests: ResourceRequests
    /// Where `requests` is written, for a request the server cannot hold.
    public var requestsMark: Mark?
    /// How many microtasks may fail while the stage still succeeds (default none).
    public var maxFailures: FailureTolerance
    /// How failed microtasks are tried again (default: once, nothing retried).
    public var retry: RetryPolicy = .none
    /// A process per microtask, or pooled processes (`isolation`).
    public var isolation: Isolation = .process
    /// Whether the result is what the executor sets or what it prints.
    public var result: ResultSource
    /// Whether the stage's microtasks get the run directory: when a
    /// parameter names it ({{run_dir}}, or {{input}}, which lies in it) or
    /// the stage is a reduce. Others are not given it: least privilege,
    /// and a bind mount less per microtask (about a tenth of a sandboxed
    /// microtask's cost here).
    public var usesRunDirectory: Bool {
        if case .reduce = items { return true }
        return params.contains { param in
            let texts: [String]
            switch param.value {
            case .string(let text): texts = [text]
            case .list(let list): texts = list
            case .map(let entries): texts = entries.map(\.value)
            default: texts = []
            }
            return texts.contains { text in
                templateUses(in: text).contains { $0.name == "run_dir" || $0.name == "input" }
            }
        }
    }

    /// Every stage this one waits for: `after`, and the stages its source
    /// reads results from.
    public var dependencies: [String] {
        after + items.upstream.filter { !after.contains($0) }
    }

    /// Where the stage is written, for later messages about it.
    public var mark: Mark

    public init(
        name: String, executor: String, params: [Param] = [], items: ItemSource = .none,
        limits: Limits = Limits(), sandbox: SandboxSettings = SandboxSettings(), after: [String] = [],
        chunk: Int? = nil, concurrency: Int? = nil, requests: ResourceRequests = ResourceRequests(),
        maxFailures: FailureTolerance = .count(0), result: ResultSource = .executor, mark: Mark
    ) {
        self.name = name
        self.executor = executor
        self.params = params
        self.items = items
        self.limits = limits
        self.sandbox = sandbox
        self.after = after
        self.chunk = chunk
        self.concurrency = concurrency
        self.requests = requests
        self.maxFailures = maxFailures
        self.result = result
        self.mark = mark
    }
}

/// A job, as defined by one job file.
public struct JobDefinition: Sendable, Equatable {
    /// `[a-z0-9][a-z0-9_-]*`, at most 64 characters; unique among loaded jobs.
    public var name: String
    /// Empty when the file gives none.
    public var description: String
    /// How many of the job's microtasks may run at once; nil for no limit of its own.
    public var concurrency: Int?
    /// 0 to 100: a queued microtask of a run of higher priority starts
    /// before any of a lower one. A run may be given its own.
    public var priority: Int
    public static let defaultPriority = 50
    /// In the order written; `after` orders their execution.
    public var stages: [StageDefinition]
    /// The file the job was read from, as the loader was given it.
    public var file: String
    /// Where the job's name is written, for later messages about the job.
    public var nameMark: Mark
    /// When the job starts runs by itself; nil: only when asked.
    public var schedule: ScheduleDefinition?
    /// The job's own `retention:` (unset keys: the server's).
    public var retention = Retention()

    public init(
        name: String, description: String = "", concurrency: Int? = nil, priority: Int = defaultPriority,
        stages: [StageDefinition],
        file: String, nameMark: Mark
    ) {
        self.name = name
        self.description = description
        self.concurrency = concurrency
        self.priority = priority
        self.stages = stages
        self.file = file
        self.nameMark = nameMark
    }
}
