// tessera tasks / output: the microtasks of a run and what they printed.

import ArgumentParser
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

struct Tasks: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the microtasks of a run.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run id.")
    var runID: String

    @Option(help: "Only tasks in this state: queued, running, succeeded, failed or cancelled.")
    var state: String?

    // .unconditional: "-1" is the value, to be refused as such, not a
    // missing one.
    @Option(parsing: .unconditional, help: "How many tasks to show.")
    var limit = 1000

    @Option(parsing: .unconditional, help: "Skip this many tasks first.")
    var offset = 0

    func validate() throws {
        if let state, TaskState(rawValue: state) == nil {
            throw ValidationError("--state must be queued, running, succeeded, failed or cancelled; found \"\(state)\"")
        }
        guard limit > 0 else { throw ValidationError("--limit must be positive, found \(limit)") }
        guard offset >= 0 else { throw ValidationError("--offset must not be negative, found \(offset)") }
    }

    func run() throws {
        let id = try parseRunID(runID)
        var parameters: [(String, JSON)] = [
            ("run", .int(id)), ("limit", .int(Int64(limit))), ("offset", .int(Int64(offset))),
        ]
        if let state { parameters.append(("state", .string(state))) }
        let tasks = try options.call("ListTasks", .object(parameters))["tasks"]?.arrayValue ?? []
        if options.json { return printJSON(.array(tasks)) }
        let now = wallClock()
        let rows = tasks.compactMap(TaskInfo.init(json:)).map { t in
            // A running microtask's time is how long it has been running.
            let time = t.state == .running ? t.startedAt.map { max(0, now - $0) } : t.durationSeconds
            // Why it failed matters more than what it printed on the way.
            let result = t.resultBytes.map { escaped($0) }
            var said =
                (t.state == .failed || t.state == .cancelled ? t.reason ?? result : result ?? t.reason)
                ?? (t.progress.map { "\(Int($0 * 100))%" } ?? "")
            // A waiting retry: when it is due, and why the last attempt failed.
            if t.state == .queued, let due = t.retryAt {
                said = "retry in \(formatSeconds(max(0, due - now)))" + (t.reason.map { " after: \($0)" } ?? "")
            }
            return [
                String(t.index), t.stage, t.item, t.state.rawValue, String(t.attempt),
                t.exitCode.map(String.init) ?? t.signal ?? "-", formatSeconds(time),
                t.cpuSeconds.map { formatSeconds($0) } ?? "-", formatBytes(t.maxRSS), said,
            ]
        }
        printTable(
            ["INDEX", "STAGE", "ITEM", "STATE", "TRIES", "EXIT", "TIME", "CPU", "MAXRSS", "RESULT/REASON"], rows,
            rightAligned: [0, 4, 6, 7, 8])
        // Say so when this is a part of the run.
        if tasks.count == limit || offset > 0 {
            let run = RunInfo(json: try options.call("GetRun", ["id": .int(id)])["run"] ?? .null)
            let total = state.flatMap(TaskState.init(rawValue:)).map { run?.counts[$0] ?? 0 } ?? run?.total ?? 0
            if tasks.count < total {
                let shown = tasks.isEmpty ? "none" : "\(offset + 1)-\(offset + tasks.count)"
                writeStandardError(
                    "showing \(shown) of \(total)\(state.map { " \($0)" } ?? ""); --limit/--offset for more\n")
            }
        }
    }
}

struct Output: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print what a microtask wrote to stdout and stderr.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run id.")
    var runID: String

    @Argument(help: "The task index.")
    var index: Int

    func run() throws {
        let id = try parseRunID(runID)
        let json = try options.call("GetTaskOutput", ["run": .int(id), "index": .int(Int64(index))])["output"] ?? .null
        if options.json { return printJSON(json) }
        guard let output = TaskOutput(json: json) else { throw CLIError("the daemon sent malformed output") }
        writeOutput(1, output.stdoutBytes)
        if output.stdoutTruncated { writeStandardOutput("\n[stdout truncated at the output limit]\n") }
        writeOutput(2, output.stderrBytes)
        if output.stderrTruncated { writeStandardError("\n[stderr truncated at the output limit]\n") }
    }
}

struct Attempts: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List every attempt at one microtask.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run id.")
    var runID: String

    @Argument(help: "The task index.")
    var index: Int

    func run() throws {
        let id = try parseRunID(runID)
        let attempts =
            try options.call("ListAttempts", ["run": .int(id), "index": .int(Int64(index))])["attempts"]?.arrayValue
            ?? []
        if options.json { return printJSON(.array(attempts)) }
        let rows = attempts.compactMap(AttemptInfo.init(json:)).map { a in
            [
                String(a.attempt), a.state.rawValue, formatTime(a.startedAt), formatTime(a.finishedAt),
                a.exitCode.map(String.init) ?? a.signal ?? "-", a.cpuSeconds.map { formatSeconds($0) } ?? "-",
                formatBytes(a.maxRSS), a.reason ?? "",
            ]
        }
        printTable(
            ["ATTEMPT", "STATE", "STARTED", "FINISHED", "EXIT", "CPU", "MAXRSS", "REASON"], rows,
            rightAligned: [0, 5, 6])
    }
}
