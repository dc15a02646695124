// tessera run: start a run of a job (with items from a file or standard
// input, sent over the socket), and with --wait follow it to the end with a
// progress bar (on a terminal) or progress lines (otherwise).

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

    @Option(
        help: ArgumentHelp(
            "Items for the job's first stage, one a line, from a file or - for standard input; "
                + "STAGE=FILE for another stage.", valueName: "file"))
    var items: String?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("This run's priority, 0 to 100, in place of the job's.", valueName: "n"))
    var priority: Int?

    @Flag(help: "Wait for the run to end, showing its progress.")
    var wait = false

    func validate() throws {
        if let priority, !(0...100).contains(priority) {
            throw ValidationError("--priority must be from 0 to 100, found \(priority)")
        }
        for param in params where !param.contains("=") || param.hasPrefix("=") {
            throw ValidationError("--param takes name=value, found \"\(param)\"")
        }
        if let items, items.isEmpty { throw ValidationError("--items needs a file, - or STAGE=FILE") }
    }

    func run() throws {
        var overrides: [(String, JSON)] = []
        for param in params {
            let split = param.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            overrides.append((String(split[0]), .string(split.count > 1 ? String(split[1]) : "")))
        }
        var parameters: [(String, JSON)] = [("job", .string(job))]
        if !overrides.isEmpty { parameters.append(("params", .object(overrides))) }
        if let priority { parameters.append(("priority", .int(Int64(priority)))) }
        let client = try options.connect()
        if let items {
            var stage: String?
            var path = items
            // STAGE=FILE, unless the whole text names a file that exists.
            if let equals = items.firstIndex(of: "="), access(items, F_OK) != 0 {
                stage = String(items[..<equals])
                path = String(items[items.index(after: equals)...])
            }
            let count = try upload(path, on: client)
            parameters.append(("items", ["stage": .optional(stage, JSON.string), "count": .int(Int64(count))]))
        }
        let reply: JSON
        do {
            reply = try client.call("io.tessera.Manager.StartRun", .object(parameters))
        } catch {
            throw CLIError(error.description)
        }
        guard let id = reply["id"]?.intValue else { throw CLIError("the daemon sent no run id") }
        try reportStarted(id, what: "run of \(job)", wait: wait, options: options)
    }

    /// Sends the items of a file (or standard input) with AddItems, in
    /// messages well under the daemon's 1 MiB; returns how many.
    private func upload(_ path: String, on client: VarlinkClient) throws -> Int {
        let fd = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError("\(path): \(String(cString: strerror(errno)))") }
        defer { if fd != 0 { close(fd) } }
        var pending: [JSON] = []
        var pendingBytes = 0
        var total = 0
        func send() throws {
            guard !pending.isEmpty else { return }
            do {
                _ = try client.call("io.tessera.Manager.AddItems", ["items": .array(pending)])
            } catch {
                throw CLIError(error.description)
            }
            total += pending.count
            pending.removeAll(keepingCapacity: true)
            pendingBytes = 0
        }
        var buffer: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 1 << 16)
        var line = 0
        func take(_ bytes: ArraySlice<UInt8>) throws {
            line += 1
            var bytes = bytes
            if bytes.last == 0x0D { bytes = bytes.dropLast() }
            guard !bytes.isEmpty else { return }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw CLIError("\(path):\(line): the line is not UTF-8; items are text")
            }
            // Its size in the message: a control character, a quote or a
            // backslash takes up to six bytes once escaped as JSON.
            let size = bytes.reduce(2) { $0 + ($1 < 0x20 ? 6 : ($1 == 0x22 || $1 == 0x5C ? 2 : 1)) }
            guard size <= 512 << 10 else {
                throw CLIError(
                    "\(path):\(line): an item of \(bytes.count) bytes (\(size) as JSON); an item may take at most "
                        + "512 KiB in a message")
            }
            if pendingBytes + size + 1 > 512 << 10 { try send() }
            pending.append(.string(text))
            pendingBytes += size + 1
        }
        while true {
            let n = block.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIError("\(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            buffer += block[0..<n]
            var start = 0
            while let newline = buffer[start...].firstIndex(of: 0x0A) {
                try take(buffer[start..<newline])
                start = newline + 1
            }
            buffer.removeSubrange(0..<start)
        }
        if !buffer.isEmpty { try take(buffer[...]) }
        try send()
        return total
    }
}

/// Prints that a run started (and why it already failed, if its items
/// could not be read), or follows it to its end with --wait.
func reportStarted(_ id: Int64, what: String, wait: Bool, options: GlobalOptions) throws {
    if !wait {
        let run = RunInfo(json: try options.call("GetRun", ["id": .int(id)])["run"] ?? .null)
        if options.json {
            printJSON(["id": .int(id)])
        } else if let run, run.state == .failed {
            print("run \(id) (\(what)) failed at once: \(run.reason ?? "see tessera show \(id)")")
        } else {
            print("run \(id) (\(what)) queued: \(run?.total ?? 0) microtask(s)")
        }
        if run?.state == .failed { throw ExitCode(1) }
        return
    }
    try printOutcome(try follow(id, options: options), options: options)
}

/// The end of a followed run: a summary line (or its record with --json);
/// exits 1 unless it succeeded.
func printOutcome(_ final: RunInfo, options: GlobalOptions) throws {
    let id = final.id
    if options.json {
        printJSON(final.json)
    } else {
        print(
            "run \(id) \(final.state.rawValue): \(final.counts.succeeded) succeeded, \(final.counts.failed) failed, "
                + "\(final.counts.cancelled) cancelled" + (final.reason.map { " (\($0))" } ?? ""))
        if final.counts.failed > 0 { print("see: tessera tasks \(id) --state failed") }
    }
    if final.state != .succeeded { throw ExitCode(1) }
}

/// Watches the run until it ends and returns its final record: a bar on
/// a terminal, progress lines otherwise, nothing with `quiet`. Survives a
/// restart of the daemon (see withReconnect).
func follow(_ id: Int64, options: GlobalOptions, quiet: Bool = false) throws -> RunInfo {
    let bar = !quiet && !options.json && isTerminal(1)
    var last: RunInfo?
    var lastLine = ""
    try withReconnect(options) { client in
        try client.stream("io.tessera.Manager.WatchRun", ["id": .int(id)]) { parameters in
            guard let run = RunInfo(json: parameters["run"] ?? .null) else { return false }
            last = run
            if bar {
                drawBar(run)
            } else if !options.json && !quiet {
                let line = progressLine(run)
                if line != lastLine {
                    // At once, not when stdio's buffer fills: a pipe or a
                    // log file sees progress as it happens.
                    writeStandardOutput(line + "\n")
                    lastLine = line
                }
            }
            return !run.state.isFinal
        }
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
