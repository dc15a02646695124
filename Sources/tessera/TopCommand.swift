// tessera top: a full-screen view of the daemon, redrawn every second (or
// --interval): slots in use, the admission state, a sparkline of the
// microtasks that ended per second, the runs in progress with bars, and
// the running microtasks with their elapsed time, CPU and resident memory.
// q (or Ctrl-C) quits. With --once it prints one frame and exits, for a
// terminal that is not one or a script.

import ArgumentParser
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the daemon's activity live, full screen.",
        discussion: "Slots, admission, microtasks/s, runs in progress and running microtasks; q quits.")
    @OptionGroup var options: GlobalOptions

    @Option(help: ArgumentHelp("Seconds between redraws.", valueName: "seconds"))
    var interval: Double = 1

    @Flag(help: "Print one frame and exit.")
    var once = false

    func validate() throws {
        guard interval >= 0.1, interval <= 60 else {
            throw ValidationError("--interval must be from 0.1 to 60 seconds, found \(interval)")
        }
    }

    func run() throws {
        let client = try options.connect()
        var view = TopView(socket: options.socketPath)
        if once || !isTerminal(1) || !isTerminal(0) {
            try view.sample(client)
            let size = terminalSize() ?? (80, 24)
            var lines = view.frame(width: size.width, height: size.height)
            // One frame: no keys, and no blank lines to fill a screen.
            lines.removeLast()
            while lines.last?.isEmpty == true { lines.removeLast() }
            writeStandardOutput(lines.joined(separator: "\n") + "\n")
            return
        }
        let terminal = RawTerminal()
        defer { terminal.restore() }
        while true {
            do {
                try view.sample(client)
            } catch {
                terminal.restore()
                throw CLIError("\(error)")
            }
            let size = terminalSize() ?? (80, 24)
            let lines = view.frame(width: size.width, height: size.height)
            // Home, each line cleared to its end, the rest of the screen cleared.
            writeStandardOutput(
                "\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\r\n") + "\u{1B}[J")
            // q, or Ctrl-C (ISIG is off, so it arrives as a byte).
            if let key = terminal.waitForKey(seconds: interval), key == UInt8(ascii: "q") || key == 3 { return }
        }
    }
}

/// What top shows, and its history for the sparkline.
struct TopView {
    let socket: String
    var status: JSON = .null
    var runs: [RunInfo] = []
    var running: [JSON] = []
    /// (seconds, attempts ended) samples, for the rate.
    var samples: [(Double, Int64)] = []
    var rates: [Double] = []

    init(socket: String) { self.socket = socket }

    mutating func sample(_ client: VarlinkClient) throws {
        status = try client.call("io.tessera.Manager.GetStatus")["status"] ?? .null
        runs =
            (try client.call("io.tessera.Manager.ListRuns", ["limit": 20, "state": "running"])["runs"]?.arrayValue
            ?? []).compactMap(RunInfo.init(json:))
        runs +=
            (try client.call("io.tessera.Manager.ListRuns", ["limit": 20, "state": "queued"])["runs"]?.arrayValue
            ?? []).compactMap(RunInfo.init(json:))
        running = try client.call("io.tessera.Manager.ListRunning")["tasks"]?.arrayValue ?? []
        let now = monotonicSeconds()
        let ended = status["attemptsEnded"]?.intValue ?? 0
        if let (then, before) = samples.last, now > then {
            rates.append(Double(max(0, ended - before)) / (now - then))
            if rates.count > 120 { rates.removeFirst(rates.count - 120) }
        }
        samples = [(now, ended)]
    }

    func frame(width: Int, height: Int) -> [String] {
        let width = max(width, 40)
        var lines: [String] = []
        let slots = Int(status["slots"]?.intValue ?? 0)
        let busy = Int(status["runningTasks"]?.intValue ?? 0)
        let clock = formatTime(wallClock()).split(separator: " ").last.map(String.init) ?? ""
        lines.append(
            spread(
                "tessera top · tesserad \(status["version"]?.stringValue ?? "?") on \(socket)", clock, width: width))
        lines.append(
            "slots  " + bar(fraction: slots == 0 ? 0 : Double(busy) / Double(slots), width: 20)
                + " \(busy)/\(slots)   queued \(status["queuedTasks"]?.intValue ?? 0)   runs \(status["activeRuns"]?.intValue ?? 0) active"
        )
        let admission = status["admissionPaused"]?.stringValue.map { "paused: \($0)" } ?? "open"
        lines.append(
            spread(
                "admission " + admission,
                "store " + formatBytes(status["databaseBytes"]?.intValue ?? 0), width: width))
        let spark = sparkline(Array(rates.suffix(max(10, width - 30))))
        lines.append("microtasks/s " + spark + "  " + (rates.last.map { String(Int($0.rounded())) } ?? "-") + "/s")
        lines.append("")
        var body: [[String]] = []
        // Runs in progress with bars.
        let runRows = runs.map { run -> [String] in
            let fraction = run.total == 0 ? 0 : Double(run.counts.finished) / Double(run.total)
            return [
                String(run.id), run.job, bar(fraction: fraction, width: 20) + " \(Int(fraction * 100))%",
                "\(run.counts.finished)/\(run.total)", String(run.counts.failed),
            ]
        }
        body.append(["RUNS"])
        body += table(
            ["ID", "JOB", "PROGRESS", "DONE", "FAILED"], runRows.isEmpty ? [["-", "", "", "", ""]] : runRows)
        body.append([""])
        let now = wallClock()
        let taskRows = running.map { task -> [String] in
            [
                String(task["run"]?.intValue ?? 0), task["job"]?.stringValue ?? "", task["stage"]?.stringValue ?? "",
                String(task["index"]?.intValue ?? 0), String(task["attempt"]?.intValue ?? 0),
                formatSeconds(task["startedAt"]?.doubleValue.map { now - $0 }),
                formatSeconds(task["cpuSeconds"]?.doubleValue), formatBytes(task["rss"]?.intValue),
            ]
        }
        body.append(["RUNNING"])
        body += table(
            ["RUN", "JOB", "STAGE", "INDEX", "TRY", "ELAPSED", "CPU", "RSS"],
            taskRows.isEmpty ? [["-", "", "", "", "", "", "", ""]] : taskRows)
        let room = max(0, height - lines.count - 1)
        lines += body.prefix(room).map { $0.joined() }
        while lines.count < height - 1 { lines.append("") }
        lines.append("q quit")
        return lines.map { clip($0, width) }
    }

    private func table(_ header: [String], _ rows: [[String]]) -> [[String]] {
        let all = [header] + rows.map { $0.map { escaped(Array($0.utf8)) } }
        var widths = header.map(\.count)
        for row in all {
            for (i, cell) in row.enumerated() { widths[i] = min(max(widths[i], cell.count), 30) }
        }
        return all.map { row in
            [
                "  "
                    + row.enumerated().map { i, cell in
                        let cut = String(cell.prefix(widths[i]))
                        return cut + String(repeating: " ", count: widths[i] - cut.count)
                    }.joined(separator: "  ")
            ]
        }
    }
}

private func spread(_ left: String, _ right: String, width: Int) -> String {
    let gap = width - left.count - right.count
    return gap >= 1 ? left + String(repeating: " ", count: gap) + right : left
}

private func clip(_ line: String, _ width: Int) -> String {
    line.count <= width ? line : String(line.prefix(width))
}

func bar(fraction: Double, width: Int) -> String {
    let filled = max(0, min(width, Int((fraction * Double(width)).rounded(.down))))
    return "[" + String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled) + "]"
}

/// Values as a row of block characters, scaled to the largest.
func sparkline(_ values: [Double]) -> String {
    let blocks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
    guard let top = values.max(), top > 0 else { return String(repeating: "▁", count: max(values.count, 1)) }
    return String(values.map { blocks[min(7, Int(($0 / top) * 7.999))] })
}

func terminalSize() -> (width: Int, height: Int)? {
    var size = winsize()
    guard ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0, size.ws_row > 0 else { return nil }
    return (Int(size.ws_col), Int(size.ws_row))
}

/// The terminal in raw mode on the alternate screen, cursor hidden, until
/// `restore`.
final class RawTerminal {
    private var saved = termios()
    private var restored = false

    init() {
        tcgetattr(0, &saved)
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        tcsetattr(0, TCSANOW, &raw)
        writeStandardOutput("\u{1B}[?1049h\u{1B}[?25l\u{1B}[H\u{1B}[2J")
    }

    /// A key pressed within `seconds`, if any.
    func waitForKey(seconds: Double) -> UInt8? {
        var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, Int32(seconds * 1000)) > 0 else { return nil }
        var byte: UInt8 = 0
        return read(0, &byte, 1) == 1 ? byte : nil
    }

    func restore() {
        guard !restored else { return }
        restored = true
        writeStandardOutput("\u{1B}[?25h\u{1B}[?1049l")
        tcsetattr(0, TCSANOW, &saved)
    }

    deinit { restore() }
}
