// Metrics in the Prometheus text exposition format (version 0.0.4): what
// GetMetrics returns and `GET /metrics` serves when `metrics: {listen: ...}`
// is set. Counters and histograms are kept in memory from the daemon's
// start (Prometheus takes a restart as a counter reset); gauges are read
// when scraped. Labels are the jobs' and stages' names, which the
// configuration bounds; a job's is `tessera_job`, since Prometheus gives
// `job` to the scrape target and would rename ours to `exported_job`.

import TesseraConfig
import TesseraEngine
import TesseraProtocol
import TesseraStore

#if canImport(Glibc)
    import Glibc
#endif

/// A histogram: each observation counts in the first bucket whose bound
/// it does not exceed (or in none, past the last); `cumulative` gives the
/// counts Prometheus wants.
struct Histogram {
    let bounds: [Double]
    private var counts: [UInt64]
    var sum = 0.0
    var count: UInt64 = 0

    init(bounds: [Double]) {
        self.bounds = bounds
        counts = Array(repeating: 0, count: bounds.count)
    }

    mutating func observe(_ value: Double) {
        if let i = bounds.firstIndex(where: { value <= $0 }) { counts[i] += 1 }
        sum += value
        count += 1
    }

    /// Observations at or below each bound.
    var cumulative: [UInt64] {
        var total: UInt64 = 0
        return counts.map { count in
            total += count
            return total
        }
    }
}

/// Seconds, for microtask durations and queue waits: 1 ms to an hour.
private let taskBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600]
/// Seconds, for store commits: 0.5 ms to a second.
private let commitBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

struct JobStage: Hashable {
    let job: String
    let stage: String
}

struct JobState: Hashable {
    let job: String
    let state: String
}

/// What the daemon counts.
final class MetricsRegistry {
    /// A stage's counters, by job and stage name.
    final class StageCounters {
        /// Attempts ended, by outcome: `outcomeNames` in order.
        var ended = [UInt64](repeating: 0, count: MetricsRegistry.outcomeNames.count)
        var durations: Histogram?
        var queueWaits: Histogram?
    }

    static let outcomeNames = TaskState.allCases.map(\.rawValue) + ["retried"]
    private static let retried = outcomeNames.count - 1

    private(set) var stages: [JobStage: StageCounters] = [:]
    /// The last stage counted: a microtask's start and end, and the next
    /// microtask's, are mostly of one stage, and two string compares are
    /// cheaper than hashing both names each time.
    private var last: (job: String, stage: String, counters: StageCounters)?
    var runs: [JobState: UInt64] = [:]
    var forks: UInt64 = 0
    var commits = Histogram(bounds: commitBuckets)

    private func counters(job: String, stage: String) -> StageCounters {
        if let last, last.job == job, last.stage == stage { return last.counters }
        let key = JobStage(job: job, stage: stage)
        let counters: StageCounters
        if let known = stages[key] {
            counters = known
        } else {
            counters = StageCounters()
            stages[key] = counters
        }
        last = (job, stage, counters)
        return counters
    }

    /// Attempts ended, all told.
    var attemptsEnded: UInt64 { stages.values.reduce(0) { $0 + $1.ended.reduce(0, +) } }

    /// An attempt ended; `retried` when it goes back to the queue.
    func attemptEnded(job: String, stage: String, _ completion: TaskCompletion, retried: Bool) {
        let counters = counters(job: job, stage: stage)
        let outcome = retried ? MetricsRegistry.retried : TaskState.allCases.firstIndex(of: completion.state)!
        counters.ended[outcome] += 1
        if let seconds = completion.duration {
            if counters.durations == nil { counters.durations = Histogram(bounds: taskBuckets) }
            counters.durations!.observe(seconds)
        }
    }

    /// A microtask's first attempt started `wait` seconds after its stage
    /// became ready.
    func started(job: String, stage: String, waited wait: Double?) {
        forks += 1
        if let wait {
            let counters = counters(job: job, stage: stage)
            if counters.queueWaits == nil { counters.queueWaits = Histogram(bounds: taskBuckets) }
            counters.queueWaits!.observe(max(0, wait))
        }
    }
}

/// Builds the exposition text.
struct Exposition {
    private(set) var text = ""

    mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ value: Double) { sample(name, [], value) }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        text += name + Exposition.labels(labels) + " " + Exposition.number(value) + "\n"
    }

    mutating func histogram(_ name: String, _ labels: [(String, String)], _ h: Histogram) {
        for (bound, count) in zip(h.bounds, h.cumulative) {
            sample(name + "_bucket", labels + [("le", Exposition.number(bound))], Double(count))
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], Double(h.count))
        sample(name + "_sum", labels, h.sum)
        sample(name + "_count", labels, Double(h.count))
    }

    static func labels(_ labels: [(String, String)]) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
    }

    /// A label value: backslash, double quote and line feed escaped.
    static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}

extension Daemon {
    /// Every metric, as Prometheus text.
    func metricsText() -> String {
        var out = Exposition()
        let m = metrics
        out.family(
            "tessera_microtasks_total", "counter",
            "Microtask attempts ended, by job, stage and outcome (succeeded, failed, cancelled, or retried: failed and queued again)."
        )
        // By job and stage; a stage's outcomes in TaskState's order, then
        // retried, and only those that happened.
        let stages = m.stages.sorted { ($0.key.job, $0.key.stage) < ($1.key.job, $1.key.stage) }
        for (key, counters) in stages {
            for (i, count) in counters.ended.enumerated() where count > 0 {
                out.sample(
                    "tessera_microtasks_total",
                    [("tessera_job", key.job), ("stage", key.stage), ("outcome", MetricsRegistry.outcomeNames[i])],
                    Double(count))
            }
        }
        out.family("tessera_microtask_duration_seconds", "histogram", "Wall-clock time of microtask attempts.")
        for (key, counters) in stages {
            guard let durations = counters.durations else { continue }
            out.histogram(
                "tessera_microtask_duration_seconds", [("tessera_job", key.job), ("stage", key.stage)], durations)
        }
        out.family(
            "tessera_microtask_queue_wait_seconds", "histogram",
            "Time from a stage becoming ready to its microtasks' first attempts starting.")
        for (key, counters) in stages {
            guard let waits = counters.queueWaits else { continue }
            out.histogram(
                "tessera_microtask_queue_wait_seconds", [("tessera_job", key.job), ("stage", key.stage)], waits)
        }
        out.family("tessera_runs_total", "counter", "Runs ended, by job and state.")
        for key in m.runs.keys.sorted(by: { ($0.job, $0.state) < ($1.job, $1.state) }) {
            out.sample("tessera_runs_total", [("tessera_job", key.job), ("state", key.state)], Double(m.runs[key]!))
        }
        out.family(
            "tessera_zygote_forks_total", "counter", "Microtask processes the worker zygotes were asked to fork.")
        out.sample("tessera_zygote_forks_total", Double(m.forks))
        out.family(
            "tessera_store_commit_seconds", "histogram", "Time to commit a loop iteration's changes (with fsync).")
        out.histogram("tessera_store_commit_seconds", [], m.commits)
        out.family("tessera_slots", "gauge", "Microtasks that may run at once.")
        out.sample("tessera_slots", Double(config.slots))
        out.family(
            "tessera_slots_in_use", "gauge", "Slots in use (a pooled process with its next microtask holds one).")
        out.sample("tessera_slots_in_use", Double(engine.slotsInUse))
        out.family("tessera_queued_microtasks", "gauge", "Microtasks queued (waiting retries included).")
        out.sample("tessera_queued_microtasks", Double(engine.queuedCount))
        out.family("tessera_active_runs", "gauge", "Runs queued or running.")
        out.sample("tessera_active_runs", Double(engine.runs.count))
        out.family("tessera_admission_paused", "gauge", "1 while pressure: holds new microtasks back, else 0.")
        out.sample("tessera_admission_paused", engine.pressureGate.pause == nil ? 0 : 1)
        out.family("tessera_workers", "gauge", "Worker zygotes ready.")
        out.sample("tessera_workers", Double(workers.filter(\.ready).count))
        let size = store.size()
        out.family("tessera_database_bytes", "gauge", "Size of the state database (the write-ahead log not counted).")
        out.sample("tessera_database_bytes", Double(size.bytes))
        out.family("tessera_database_free_bytes", "gauge", "Free pages of the state database not yet given back.")
        out.sample("tessera_database_free_bytes", Double(size.free))
        out.family("tessera_uptime_seconds", "gauge", "Seconds since tesserad started.")
        out.sample("tessera_uptime_seconds", Double(monotonicMilliseconds() - startedMonotonic) / 1000)
        out.family("tessera_build_info", "gauge", "Always 1; the version as a label.")
        out.sample("tessera_build_info", [("version", tesseraVersion)], 1)
        return out.text
    }
}

extension Daemon {
    /// The running microtasks, the longest running first, with the CPU
    /// time and resident memory of each one's process read from /proc.
    func runningJSON() -> [JSON] {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Int64(sysconf(Int32(_SC_PAGESIZE)))
        return engine.running.values.sorted { ($0.startedAt, $0.token) < ($1.startedAt, $1.token) }.map { task in
            var cpu: Double?
            var rss: Int64?
            if let pid = taskPIDs[task.token], let stat = readText("/proc/\(pid)/stat"),
                let close = stat.lastIndex(of: ")")
            {
                // After "pid (comm) ": state is field 3; utime 14, stime 15, rss 24.
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                if fields.count > 22, let user = Double(fields[11]), let system = Double(fields[12]),
                    let pages = Int64(fields[21])
                {
                    cpu = (user + system) / ticks
                    rss = pages * page
                }
            }
            return [
                "run": .int(task.run.id), "job": .string(task.run.job.name), "stage": .string(task.stage.name),
                "index": .int(Int64(task.index)), "attempt": .int(Int64(task.attempt)),
                "startedAt": .double(task.startedAt), "cpuSeconds": .optional(cpu, JSON.double),
                "rss": .optional(rss, JSON.int), "progress": .optional(taskProgress[task.token], JSON.double),
            ]
        }
    }
}
