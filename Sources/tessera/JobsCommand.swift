// tessera jobs: the jobs the daemon has loaded.

import ArgumentParser
import TesseraProtocol

struct Jobs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the loaded jobs.")
    @OptionGroup var options: GlobalOptions

    func run() throws {
        let jobs = try options.call("ListJobs")["jobs"]?.arrayValue ?? []
        if options.json { return printJSON(.array(jobs)) }
        let rows = jobs.map { job -> [String] in
            let stages = job["stages"]?.arrayValue ?? []
            // Sources read when a run starts (glob, lines, ...) have no count yet.
            let counts = stages.map { $0["tasks"]?.intValue }
            let tasks = counts.contains(nil) ? "-" : String(counts.reduce(Int64(0)) { $0 + ($1 ?? 0) })
            // The next time its schedule fires, in this machine's local time.
            let next = job["nextRun"]?.doubleValue.map { formatTime($0) } ?? "-"
            return [
                job["name"]?.stringValue ?? "", String(stages.count), tasks,
                stages.compactMap { $0["executor"]?.stringValue }.reduce(into: [String]()) { names, name in
                    if !names.contains(name) { names.append(name) }
                }.joined(separator: ","),
                next, job["schedule"]?.stringValue ?? "-", job["description"]?.stringValue ?? "",
            ]
        }
        printTable(
            ["JOB", "STAGES", "TASKS", "EXECUTORS", "NEXT RUN", "SCHEDULE", "DESCRIPTION"], rows, rightAligned: [1, 2])
    }
}
