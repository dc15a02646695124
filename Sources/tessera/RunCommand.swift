// tessera run: start a run of a job, and with --wait follow it to the end
// with a progress bar (on a terminal) or progress lines (otherwise).

import ArgumentParser
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a run of a job.",
        discussion: "Exits 0 once the run is queued; with --wait, when it has succeeded, and 1 when it failed "
            + "or was cancelled.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The job to run.")
    var job: String

    @Option(
        name: .customLong("param"), help: ArgumentHelp("Override a parameter for this run.", valueName: "name=value"))
    var params: [String] = []

    @Flag(help: "Wait for the run to end, showing its progress.")
    var wait = false

    func validate() throws {
        for param in params where !param.contains("=") || param.hasPrefix("=") {
            throw ValidationError("--param takes name=value, found \"\(param)\"")
        }
    }

    func run() throws {
        var overrides: [(String, JSON)] = []
        for param in params {
            let split = param.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            overrides.append((String(split[0]), .string(split.count > 1 ? String(split[1]) : "")))
        }
        var parameters: [(String, JSON)] = [("job", .string(job))]
        if !overrides.isEmpty { parameters.append(("params", .object(overrides))) }
        let reply = try options.call("StartRun", .object(parameters))
        guard let id = reply["id"]?.intValue else { throw CLIError("the daemon sent no run id") }
        if !wait {
            if options.json { printJSON(["id": .int(id)]) } else { print("run \(id) of \(job) queued") }
            return
        }
        let final = try follow(id)
        if options.json {
            printJSON(final.json)
        } else {
            print(
                "run \(id) \(final.state.rawValue): \(final.counts.succeeded) succeeded, \(final.counts.failed) failed, "
                    + "\(final.counts.cancelled) cancelled")
            if final.counts.failed > 0 { print("see: tessera tasks \(id) --state failed") }
        }
        if final.state != .succeeded { throw ExitCode(1) }
    }

    /// Watches the run until it ends and returns its final record.
    private func follow(_ id: Int64) throws -> RunInfo {
        let client = try options.connect()
        let bar = !options.json && isTerminal(1)
        var last: RunInfo?
        var lastLine = ""
        do {
            try client.stream("io.tessera.Manager.WatchRun", ["id": .int(id)]) { parameters in
                guard let run = RunInfo(json: parameters["run"] ?? .null) else { return false }
                last = run
                if bar {
                    drawBar(run)
                } else if !options.json {
                    let line = progressLine(run)
                    if line != lastLine { print(line); lastLine = line }
                }
                return !run.state.isFinal
            }
        } catch let error as VarlinkClientError {
            throw CLIError(error.description)
        }
        if bar { print("") }
        guard let last, last.state.isFinal else { throw CLIError("the daemon stopped sending updates for run \(id)") }
        return last
    }

    private func progressLine(_ run: RunInfo) -> String {
        "run \(run.id): \(run.state.rawValue), \(run.counts.finished)/\(run.total) done, \(run.counts.running) running, "
            + "\(run.counts.failed) failed"
    }

    private func drawBar(_ run: RunInfo) {
        let width = 30
        let fraction = run.total == 0 ? 1.0 : Double(run.counts.finished) / Double(run.total)
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let percent = Int((fraction * 100).rounded(.down))
        var text = "\r\u{1B}[2K\(run.job) [\(bar)] \(percent)% \(run.counts.finished)/\(run.total)"
        text += "  running \(run.counts.running)"
        if run.counts.failed > 0 { text += "  \u{1B}[31mfailed \(run.counts.failed)\u{1B}[0m" }
        writeStandardOutput(text)
    }
}
