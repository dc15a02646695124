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

    @Option(help: "How many tasks to show.")
    var limit = 1000

    @Option(help: "Skip this many tasks first.")
    var offset = 0

    func validate() throws {
        if let state, TaskState(rawValue: state) == nil {
            throw ValidationError("--state must be queued, running, succeeded, failed or cancelled; found \"\(state)\"")
        }
        guard limit > 0, offset >= 0 else {
            throw ValidationError("--limit must be positive and --offset not negative")
        }
    }

    func run() throws {
        let id = try parseRunID(runID)
        var parameters: [(String, JSON)] = [
            ("run", .int(id)), ("limit", .int(Int64(limit))), ("offset", .int(Int64(offset))),
        ]
        if let state { parameters.append(("state", .string(state))) }
        let tasks = try options.call("ListTasks", .object(parameters))["tasks"]?.arrayValue ?? []
        if options.json { return printJSON(.array(tasks)) }
        let rows = tasks.compactMap(TaskInfo.init(json:)).map { t in
            [
                String(t.index), t.stage, t.item, t.state.rawValue,
                t.exitCode.map(String.init) ?? t.signal ?? "-", formatSeconds(t.durationSeconds),
                t.cpuSeconds.map { formatSeconds($0) } ?? "-", formatBytes(t.maxRSS),
                t.result ?? t.reason ?? (t.progress.map { "\(Int($0 * 100))%" } ?? ""),
            ]
        }
        printTable(
            ["INDEX", "STAGE", "ITEM", "STATE", "EXIT", "TIME", "CPU", "MAXRSS", "RESULT/REASON"], rows,
            rightAligned: [0, 5, 6, 7])
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
        writeStandardOutput(output.stdout)
        if output.stdoutTruncated { writeStandardOutput("\n[stdout truncated at the output limit]\n") }
        writeStandardError(output.stderr)
        if output.stderrTruncated { writeStandardError("\n[stderr truncated at the output limit]\n") }
    }
}
