// tessera status: the daemon's state in a few lines.

import ArgumentParser
import TesseraProtocol

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's status.")
    @OptionGroup var options: GlobalOptions

    func run() throws {
        let status = try options.call("GetStatus")["status"] ?? .null
        if options.json { return printJSON(status) }
        let value = { (key: String) in status[key]?.intValue.map(String.init) ?? "-" }
        print(
            "tesserad \(status["version"]?.stringValue ?? "?") (pid \(value("pid"))), up \(formatSeconds(status["uptimeSeconds"]?.doubleValue))"
        )
        print("socket:  \(options.socketPath)")
        print("tasks:   \(value("runningTasks")) running of \(value("slots")) slots, \(value("queuedTasks")) queued")
        print("runs:    \(value("activeRuns")) active")
        print("jobs:    \(value("jobs")), plugins: \(value("plugins")), workers: \(value("workers"))")
        if let bytes = status["databaseBytes"]?.intValue {
            let free = status["databaseFreeBytes"]?.intValue ?? 0
            print("store:   \(formatBytes(bytes))" + (free > 0 ? " (\(formatBytes(free)) free, being given back)" : ""))
        }
        if let paused = status["admissionPaused"]?.stringValue {
            print("admission: paused: \(paused)")
        }
        // The schedules due within the hour.
        let due = status["schedulesDue"]?.arrayValue ?? []
        for (position, schedule) in due.enumerated() {
            let next = schedule["next"]?.doubleValue ?? 0
            print(
                (position == 0 ? "due:     " : "         ")
                    + "\(schedule["job"]?.stringValue ?? "") at \(formatTime(next)) "
                    + "(in \(formatSeconds(max(0, next - wallClock())))), \(schedule["schedule"]?.stringValue ?? "")")
        }
        if status["shuttingDown"]?.boolValue == true {
            print("state:   shutting down: the running microtasks may finish; no new runs")
        }
    }
}
