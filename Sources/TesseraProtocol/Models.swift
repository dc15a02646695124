// The records of io.tessera.Manager as Swift values, with their JSON form.
// The daemon encodes them, the CLI and the tests decode them; both sides
// use these definitions so the wire form is written down once, beside the
// interface file it must match.

public enum RunState: String, Sendable, CaseIterable {
    case queued, running, succeeded, failed, cancelled

    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

public enum TaskState: String, Sendable, CaseIterable {
    case queued, running, succeeded, failed, cancelled

    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// The names of the errors io.tessera.Manager replies with.
public enum ManagerError {
    public static let jobNotFound = "io.tessera.Manager.JobNotFound"
    public static let runNotFound = "io.tessera.Manager.RunNotFound"
    public static let taskNotFound = "io.tessera.Manager.TaskNotFound"
    public static let invalidParameter = "io.tessera.Manager.InvalidParameter"
    public static let reloadFailed = "io.tessera.Manager.ReloadFailed"
    public static let runFinished = "io.tessera.Manager.RunFinished"
    public static let shuttingDown = "io.tessera.Manager.ShuttingDown"
    public static let stageNotFound = "io.tessera.Manager.StageNotFound"
}

public enum ServiceError {
    public static let interfaceNotFound = "org.varlink.service.InterfaceNotFound"
    public static let methodNotFound = "org.varlink.service.MethodNotFound"
    public static let invalidParameter = "org.varlink.service.InvalidParameter"
    public static let permissionDenied = "org.varlink.service.PermissionDenied"
    public static let expectedMore = "org.varlink.service.ExpectedMore"
}

public struct TaskCounts: Sendable, Equatable {
    public var queued = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0

    public init() {}

    public subscript(state: TaskState) -> Int {
        get {
            switch state {
            case .queued: return queued
            case .running: return running
            case .succeeded: return succeeded
            case .failed: return failed
            case .cancelled: return cancelled
            }
        }
        set {
            switch state {
            case .queued: queued = newValue
            case .running: running = newValue
            case .succeeded: succeeded = newValue
            case .failed: failed = newValue
            case .cancelled: cancelled = newValue
            }
        }
    }

    public var finished: Int { succeeded + failed + cancelled }

    public var json: JSON {
        [
            "queued": .int(Int64(queued)), "running": .int(Int64(running)), "succeeded": .int(Int64(succeeded)),
            "failed": .int(Int64(failed)), "cancelled": .int(Int64(cancelled)),
        ]
    }

    public init(json: JSON) {
        for state in TaskState.allCases {
            self[state] = Int(json[state.rawValue]?.intValue ?? 0)
        }
    }
}

public struct RunInfo: Sendable, Equatable {
    public var id: Int64
    public var job: String
    public var state: RunState
    public var createdAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
    public var total: Int
    public var counts: TaskCounts
    /// Why a run failed, or what it tolerated (`stage map: 2 of 100
    /// microtasks failed`); nil when there is nothing to say.
    public var reason: String?
    /// 0-100; a run of higher priority has its microtasks started first.
    public var priority: Int
    /// The schedule's time it is for, when the job's schedule started it.
    public var scheduledFor: Double?

    public init(
        id: Int64, job: String, state: RunState, createdAt: Double, startedAt: Double?,
        finishedAt: Double?, total: Int, counts: TaskCounts, reason: String? = nil, priority: Int = 50
    ) {
        self.priority = priority
        self.id = id
        self.job = job
        self.state = state
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.total = total
        self.counts = counts
        self.reason = reason
    }

    public var json: JSON {
        [
            "id": .int(id), "job": .string(job), "state": .string(state.rawValue), "createdAt": .double(createdAt),
            "startedAt": .optional(startedAt, JSON.double), "finishedAt": .optional(finishedAt, JSON.double),
            "total": .int(Int64(total)), "counts": counts.json, "reason": .optional(reason, JSON.string),
            "priority": .int(Int64(priority)), "scheduledFor": .optional(scheduledFor, JSON.double),
        ]
    }

    public init?(json: JSON) {
        guard let id = json["id"]?.intValue, let job = json["job"]?.stringValue,
            let state = json["state"]?.stringValue.flatMap(RunState.init(rawValue:))
        else { return nil }
        self.init(
            id: id, job: job, state: state, createdAt: json["createdAt"]?.doubleValue ?? 0,
            startedAt: json["startedAt"]?.doubleValue, finishedAt: json["finishedAt"]?.doubleValue,
            total: Int(json["total"]?.intValue ?? 0), counts: TaskCounts(json: json["counts"] ?? .null),
            reason: json["reason"]?.stringValue, priority: Int(json["priority"]?.intValue ?? 50))
        scheduledFor = json["scheduledFor"]?.doubleValue
    }
}

/// Bytes as JSON: `text` always (UTF-8, with U+FFFD for bytes that are not),
/// and, only when the bytes are not valid UTF-8, `base64` with them exactly.
public func bytesJSON(_ bytes: [UInt8]?) -> (text: JSON, base64: JSON) {
    guard let bytes else { return (.null, .null) }
    if let text = String(validating: bytes, as: UTF8.self) { return (.string(text), .null) }
    return (.string(String(decoding: bytes, as: UTF8.self)), .string(Base64.encode(bytes)))
}

/// The bytes of a field written by bytesJSON: the base64 ones when present.
public func bytes(text: JSON?, base64: JSON?) -> [UInt8]? {
    if let encoded = base64?.stringValue, let bytes = Base64.decode(encoded) { return bytes }
    return text?.stringValue.map { Array($0.utf8) }
}

public struct TaskInfo: Sendable, Equatable {
    public var index: Int
    public var stage: String
    public var item: String
    public var state: TaskState
    public var exitCode: Int?
    public var signal: String?
    public var reason: String?
    /// The result exactly as the executor set it: any bytes.
    public var resultBytes: [UInt8]?
    public var cpuSeconds: Double?
    public var maxRSS: Int64?
    public var durationSeconds: Double?
    /// When it last started and ended (seconds since the epoch).
    public var startedAt: Double?
    public var finishedAt: Double?
    /// What the executor last reported, 0 to 1, while the task runs.
    public var progress: Double?
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    /// Attempts made so far (0 for one that never ran); ListAttempts has each.
    public var attempt: Int = 0
    /// A queued microtask whose last attempt failed starts again no earlier
    /// than this (wall clock): a waiting retry. Its reason says why the
    /// last attempt failed.
    public var retryAt: Double?

    /// The result as text; bytes that are not UTF-8 become U+FFFD.
    public var result: String? { resultBytes.map { String(decoding: $0, as: UTF8.self) } }

    public init(
        index: Int, stage: String, item: String, state: TaskState, exitCode: Int? = nil,
        signal: String? = nil, reason: String? = nil, resultBytes: [UInt8]? = nil, cpuSeconds: Double? = nil,
        maxRSS: Int64? = nil, durationSeconds: Double? = nil, startedAt: Double? = nil, finishedAt: Double? = nil,
        stdoutTruncated: Bool = false, stderrTruncated: Bool = false
    ) {
        self.index = index
        self.stage = stage
        self.item = item
        self.state = state
        self.exitCode = exitCode
        self.signal = signal
        self.reason = reason
        self.resultBytes = resultBytes
        self.cpuSeconds = cpuSeconds
        self.maxRSS = maxRSS
        self.durationSeconds = durationSeconds
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
    }

    public var json: JSON {
        let result = bytesJSON(resultBytes)
        return [
            "index": .int(Int64(index)), "stage": .string(stage), "item": .string(item),
            "state": .string(state.rawValue),
            "exitCode": .optional(exitCode) { .int(Int64($0)) }, "signal": .optional(signal, JSON.string),
            "reason": .optional(reason, JSON.string), "result": result.text, "resultBase64": result.base64,
            "cpuSeconds": .optional(cpuSeconds, JSON.double), "maxRSS": .optional(maxRSS, JSON.int),
            "durationSeconds": .optional(durationSeconds, JSON.double),
            "startedAt": .optional(startedAt, JSON.double), "finishedAt": .optional(finishedAt, JSON.double),
            "progress": .optional(progress, JSON.double),
            "stdoutTruncated": .bool(stdoutTruncated), "stderrTruncated": .bool(stderrTruncated),
            "attempt": .int(Int64(attempt)), "retryAt": .optional(retryAt, JSON.double),
        ]
    }

    public init?(json: JSON) {
        guard let index = json["index"]?.intValue,
            let state = json["state"]?.stringValue.flatMap(TaskState.init(rawValue:))
        else { return nil }
        self.init(
            index: Int(index), stage: json["stage"]?.stringValue ?? "", item: json["item"]?.stringValue ?? "",
            state: state, exitCode: json["exitCode"]?.intValue.map { Int($0) }, signal: json["signal"]?.stringValue,
            reason: json["reason"]?.stringValue,
            resultBytes: bytes(text: json["result"], base64: json["resultBase64"]),
            cpuSeconds: json["cpuSeconds"]?.doubleValue, maxRSS: json["maxRSS"]?.intValue,
            durationSeconds: json["durationSeconds"]?.doubleValue, startedAt: json["startedAt"]?.doubleValue,
            finishedAt: json["finishedAt"]?.doubleValue,
            stdoutTruncated: json["stdoutTruncated"]?.boolValue ?? false,
            stderrTruncated: json["stderrTruncated"]?.boolValue ?? false)
        progress = json["progress"]?.doubleValue
        attempt = Int(json["attempt"]?.intValue ?? 0)
        retryAt = json["retryAt"]?.doubleValue
    }
}

public struct TaskOutput: Sendable, Equatable {
    public var index: Int
    /// What the microtask wrote, exactly.
    public var stdoutBytes: [UInt8]
    public var stderrBytes: [UInt8]
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool

    /// The output as text; bytes that are not UTF-8 become U+FFFD.
    public var stdout: String { String(decoding: stdoutBytes, as: UTF8.self) }
    public var stderr: String { String(decoding: stderrBytes, as: UTF8.self) }

    public init(
        index: Int, stdoutBytes: [UInt8], stderrBytes: [UInt8], stdoutTruncated: Bool, stderrTruncated: Bool
    ) {
        self.index = index
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
    }

    public var json: JSON {
        let out = bytesJSON(stdoutBytes)
        let err = bytesJSON(stderrBytes)
        return [
            "index": .int(Int64(index)), "stdout": out.text, "stdoutBase64": out.base64, "stderr": err.text,
            "stderrBase64": err.base64, "stdoutTruncated": .bool(stdoutTruncated),
            "stderrTruncated": .bool(stderrTruncated),
        ]
    }

    public init?(json: JSON) {
        guard let index = json["index"]?.intValue else { return nil }
        self.init(
            index: Int(index), stdoutBytes: bytes(text: json["stdout"], base64: json["stdoutBase64"]) ?? [],
            stderrBytes: bytes(text: json["stderr"], base64: json["stderrBase64"]) ?? [],
            stdoutTruncated: json["stdoutTruncated"]?.boolValue ?? false,
            stderrTruncated: json["stderrTruncated"]?.boolValue ?? false)
    }
}

/// One attempt at a microtask: every time it ran, as it ended.
public struct AttemptInfo: Sendable, Equatable {
    public var attempt: Int
    public var state: TaskState
    public var startedAt: Double?
    public var finishedAt: Double?
    public var exitCode: Int?
    public var signal: String?
    public var reason: String?
    public var cpuSeconds: Double?
    public var maxRSS: Int64?

    public init(
        attempt: Int, state: TaskState, startedAt: Double?, finishedAt: Double?, exitCode: Int?, signal: String?,
        reason: String?, cpuSeconds: Double?, maxRSS: Int64?
    ) {
        self.attempt = attempt
        self.state = state
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.exitCode = exitCode
        self.signal = signal
        self.reason = reason
        self.cpuSeconds = cpuSeconds
        self.maxRSS = maxRSS
    }

    public var json: JSON {
        [
            "attempt": .int(Int64(attempt)), "state": .string(state.rawValue),
            "startedAt": .optional(startedAt, JSON.double), "finishedAt": .optional(finishedAt, JSON.double),
            "exitCode": .optional(exitCode) { .int(Int64($0)) }, "signal": .optional(signal, JSON.string),
            "reason": .optional(reason, JSON.string), "cpuSeconds": .optional(cpuSeconds, JSON.double),
            "maxRSS": .optional(maxRSS, JSON.int),
        ]
    }

    public init?(json: JSON) {
        guard let attempt = json["attempt"]?.intValue,
            let state = json["state"]?.stringValue.flatMap(TaskState.init(rawValue:))
        else { return nil }
        self.init(
            attempt: Int(attempt), state: state, startedAt: json["startedAt"]?.doubleValue,
            finishedAt: json["finishedAt"]?.doubleValue, exitCode: json["exitCode"]?.intValue.map { Int($0) },
            signal: json["signal"]?.stringValue, reason: json["reason"]?.stringValue,
            cpuSeconds: json["cpuSeconds"]?.doubleValue, maxRSS: json["maxRSS"]?.intValue)
    }
}
