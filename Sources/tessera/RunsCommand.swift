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

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be positive, found \(limit)") }
    }

    func run() throws {
        let runs = try options.call("ListRuns", ["limit": .int(Int64(limit))])["runs"]?.arrayValue ?? []
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
    static let configuration = CommandConfiguration(abstract: "Show one run.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run id.")
    var runID: String

    func run() throws {
        let id = try parseRunID(runID)
        let json = try options.call("GetRun", ["id": .int(id)])["run"] ?? .null
        if options.json { return printJSON(json) }
        guard let info = RunInfo(json: json) else { throw CLIError("the daemon sent a malformed run") }
        print("run \(info.id) of \(info.job): \(info.state.rawValue)")
        print("created:  \(formatTime(info.createdAt))")
        print("started:  \(formatTime(info.startedAt))")
        print("finished: \(formatTime(info.finishedAt))")
        let c = info.counts
        print(
            "tasks:    \(info.total) total, \(c.queued) queued, \(c.running) running, \(c.succeeded) succeeded, "
                + "\(c.failed) failed, \(c.cancelled) cancelled")
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
