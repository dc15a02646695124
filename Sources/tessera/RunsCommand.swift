// tessera runs / show / cancel: runs and their state.

import ArgumentParser
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List recent runs, newest first.")
    @OptionGroup var options: GlobalOptions

    // .unconditional: "-1" is the value, to be refused as such.
    @Option(parsing: .unconditional, help: "How many runs to show.")
    var limit = 20

    @Option(help: ArgumentHelp("Only the runs of this job.", valueName: "job"))
    var job: String?

    @Option(
        help: ArgumentHelp(
            "Only the runs in this state (queued, running, succeeded, failed, cancelled).", valueName: "state"))
    var state: String?

    @Option(
        help: ArgumentHelp(
            "Only the runs created this long ago or since (90s, 10m, 1h, 2d, 1w).", valueName: "duration"))
    var since: String?

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be positive, found \(limit)") }
        if let state, RunState(rawValue: state) == nil {
            throw ValidationError(
                "--state takes queued, running, succeeded, failed or cancelled, found \"\(state)\"")
        }
        if let since, parseDuration(since) == nil {
            throw ValidationError("--since takes a duration such as 90s, 10m, 1h, 2d or 1w, found \"\(since)\"")
        }
    }

    func run() throws {
        var parameters: [(String, JSON)] = [("limit", .int(Int64(limit)))]
        if let job { parameters.append(("job", .string(job))) }
        if let state { parameters.append(("state", .string(state))) }
        if let since = since.flatMap(parseDuration) { parameters.append(("since", .double(wallClock() - since))) }
        let runs = try options.call("ListRuns", .object(parameters))["runs"]?.arrayValue ?? []
        if options.json { return printJSON(.array(runs)) }
        let rows = runs.compactMap(RunInfo.init(json:)).map { run in
            [
                String(run.id), run.job, run.state.rawValue, "\(run.counts.finished)/\(run.total)",
                String(run.counts.failed), formatTime(run.createdAt),
                formatSeconds(run.startedAt.map { (run.finishedAt ?? wallClock()) - $0 }),
            ]
        }
        printTable(["ID", "JOB", "STATE", "DONE", "FAILED", "CREATED", "ELAPSED"], rows, rightAligned: [0, 3, 4])
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show one run: how it started and its stages.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run id.")
    var runID: String

    func run() throws {
        let id = try parseRunID(runID)
        let reply = try options.call("DescribeRun", ["id": .int(id)])
        if options.json { return printJSON(reply) }
        guard let info = RunInfo(json: reply["run"] ?? .null) else { throw CLIError("the daemon sent a malformed run") }
        print("run \(info.id) of \(info.job): \(info.state.rawValue)")
        if let reason = info.reason { print("reason:     \(escaped(Array(reason.utf8)))") }
        print(
            "started by: \(escaped(Array((reply["startedBy"]?.stringValue ?? "").utf8)))"
                + (info.scheduledFor.map { ", for \(formatTime($0))" } ?? ""))
        print("priority:   \(info.priority)")
        if let rerun = reply["rerunOf"]?.intValue { print("reruns:     run \(rerun)") }
        let params = reply["params"]?.objectValue ?? []
        if !params.isEmpty {
            let text = params.map { "\($0.0)=\($0.1.stringValue ?? $0.1.serialized())" }.joined(separator: " ")
            print("params:     \(escaped(Array(text.utf8)))")
        }
        print("created:    \(formatTime(info.createdAt))")
        print("started:    \(formatTime(info.startedAt))")
        print("finished:   \(formatTime(info.finishedAt))")
        let c = info.counts
        print(
            "tasks:      \(info.total) total, \(c.queued) queued, \(c.running) running, \(c.succeeded) succeeded, "
                + "\(c.failed) failed, \(c.cancelled) cancelled")
        let rows = (reply["stages"]?.arrayValue ?? []).map { stage -> [String] in
            let counts = TaskCounts(json: stage["counts"] ?? .null)
            let first = stage["firstIndex"]?.intValue
            let tasks = stage["tasks"]?.intValue
            let indices = first.flatMap { f in tasks.map { $0 == 0 ? "-" : "\(f)-\(f + $0 - 1)" } } ?? "-"
            return [
                stage["name"]?.stringValue ?? "", stage["state"]?.stringValue ?? "",
                tasks.map(String.init) ?? "-", indices, "\(counts.succeeded)/\(counts.failed)/\(counts.cancelled)",
                stage["source"]?.stringValue ?? "", stage["reason"]?.stringValue ?? "",
            ]
        }
        print("")
        printTable(
            ["STAGE", "STATE", "TASKS", "INDICES", "OK/FAILED/CANCELLED", "SOURCE", "REASON"], rows,
            rightAligned: [2])
    }
}

struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel a run: queued tasks are dropped, running ones killed.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run id.")
    var runID: String

    func run() throws {
        let id = try parseRunID(runID)
        let json = try options.call("CancelRun", ["id": .int(id)])["run"] ?? .null
        if options.json { return printJSON(json) }
        print("run \(id) is being cancelled")
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-read the configuration, plugins and job files.")
    @OptionGroup var options: GlobalOptions

    func run() throws {
        let reply = try options.call("Reload")
        let problems = reply["problems"]?.arrayValue?.compactMap(\.stringValue) ?? []
        if options.json {
            printJSON(reply)
        } else {
            print("reloaded: \(reply["jobs"]?.intValue ?? 0) job(s), \(reply["plugins"]?.intValue ?? 0) plugin(s)")
        }
        guard problems.isEmpty else {
            throw CLIError(
                "\(problems.count) plugin problem(s); the rest of the configuration took effect:\n"
                    + problems.joined(separator: "\n"))
        }
    }
}

func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete a run that has ended, with its microtasks, output and events.",
        discussion: "The run is gone from every listing at once; its rows are deleted in the background. "
            + "Runs past retention: in tessera.yaml are deleted the same way.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run's id.", transform: parseRunID)
    var id: Int64

    func run() throws {
        let reply = try options.call("DeleteRun", ["id": .int(id)])
        if options.json { return printJSON(reply["run"] ?? .null) }
        print("run \(id) deleted")
    }
}
