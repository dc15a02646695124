// tessera watch, wait and events: following what happens in the daemon
// from any terminal, not only the one that started a run.

import ArgumentParser
import TesseraConfig
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow a run's progress until it ends.",
        discussion: "The same progress as run --wait (a bar on a terminal, lines otherwise), for any run. "
            + "Exits 0 when the run succeeded, 1 when it failed or was cancelled.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run's id.", transform: parseRunID)
    var id: Int64

    func run() throws {
        try printOutcome(try follow(id, options: options), options: options)
    }
}

struct Wait: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Wait for a run to end, and exit with its outcome.",
        discussion: "Prints one line when it ends. Exits 0 when the run succeeded, 1 when it failed or was "
            + "cancelled.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run's id.", transform: parseRunID)
    var id: Int64

    func run() throws {
        try printOutcome(try follow(id, options: options, quiet: true), options: options)
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the daemon's event log, and follow it.",
        discussion: "Runs created, started and finished; microtasks failed, retried and lost; reloads, admission, "
            + "workers. Without --since, the last -n events. With --follow, then every event as it happens; "
            + "after a restart of tesserad it goes on from the last event it printed.")
    @OptionGroup var options: GlobalOptions

    @Flag(name: .shortAndLong, help: "Go on printing events as they happen.")
    var follow = false

    @Option(
        help: ArgumentHelp(
            "Events from this event id on, or from this long ago (90s, 10m, 1h, 2d, 1w).", valueName: "id|duration"))
    var since: String?

    @Option(
        name: .customShort("n"), help: ArgumentHelp("Without --since, how many of the last events.", valueName: "n"))
    var lines = 50

    @Option(help: ArgumentHelp("Only the events of this job.", valueName: "job"))
    var job: String?

    @Option(
        name: .customLong("run"),
        help: ArgumentHelp("Only the events of this run; --follow ends with the run.", valueName: "id"))
    var runID: Int64?

    func validate() throws {
        if let since { _ = try EventStart(since) }
        if lines < 0 { throw ValidationError("-n must be 0 or more, found \(lines)") }
    }

    func run() throws {
        var filter: [(String, JSON)] = []
        if let job { filter.append(("job", .string(job))) }
        if let runID { filter.append(("run", .int(runID))) }
        var after: Int64?
        var tail: Int?
        switch try since.map(EventStart.init) {
        case .id(let id)?: after = id - 1
        case .ago(let seconds)?: filter.append(("since", .double(wallClock() - seconds)))
        case nil: tail = lines
        }
        let printer = EventPrinter(json: options.json)
        if !follow {
            // Pages of 1000 until the history is read.
            let client = try options.connect()
            while true {
                var parameters = filter
                if let tail {
                    parameters.append(("tail", .int(Int64(tail))))
                } else {
                    parameters += [("after", .int(after ?? 0)), ("limit", 1000)]
                }
                let events: [JSON]
                do {
                    events =
                        try client.call("io.tessera.Manager.ListEvents", .object(parameters))["events"]?
                        .arrayValue ?? []
                } catch {
                    throw CLIError(error.description)
                }
                events.forEach(printer.print)
                guard tail == nil, events.count == 1000, let last = events.last?["id"]?.intValue else { return }
                after = last
            }
        }
        try withReconnect(options) { client in
            var parameters = filter
            if let after {
                parameters.append(("after", .int(after)))
            } else if let tail {
                parameters.append(("tail", .int(Int64(tail))))
            }
            try client.stream("io.tessera.Manager.ListEvents", .object(parameters)) { reply in
                for event in reply["events"]?.arrayValue ?? [] {
                    printer.print(event)
                    if let id = event["id"]?.intValue { after = id }
                }
                // After a reconnect, the events after the last one printed
                // (or, if none was, from the start of the log on).
                if after == nil { after = 0 }
                return true
            }
        }
    }
}

/// Where `--since` starts.
enum EventStart {
    case id(Int64)
    case ago(Double)

    init(_ text: String) throws {
        if let id = Int64(text) {
            guard id > 0 else { throw ValidationError("--since: an event id is 1 or more, found \(text)") }
            self = .id(id)
            return
        }
        guard let seconds = parseDuration(text) else {
            throw ValidationError(
                "--since takes an event id or a duration such as 90s, 10m, 1h, 2d or 1w, found \"\(text)\"")
        }
        self = .ago(seconds)
    }
}

/// "90s", "10m", "1h30m", "2d", "1w" as seconds: the durations of job
/// files (QuantityParser), so the CLI and tessera.yaml read them alike.
func parseDuration(_ text: String) -> Double? {
    (try? QuantityParser.parseDuration(text)).map { Double($0) / 1000 }
}

/// Prints events: a line each for people, JSON Lines for programs.
struct EventPrinter {
    let json: Bool

    func print(_ event: JSON) {
        if json {
            writeStandardOutput(event.serialized() + "\n")
            return
        }
        var line = formatTime(event["time"]?.doubleValue) + "  #\(event["id"]?.intValue ?? 0)"
        line += "  " + (event["kind"]?.stringValue ?? "?")
        if let job = event["job"]?.stringValue { line += "  job=" + job }
        if let run = event["run"]?.intValue { line += " run=\(run)" }
        for (key, value) in event["fields"]?.objectValue ?? [] {
            guard let text = EventPrinter.render(key, value) else { continue }
            line += " \(key)=\(text)"
        }
        writeStandardOutput(escaped(Array(line.utf8)) + "\n")
    }

    /// A field's value as text; nil for one not worth a column (null,
    /// empty lists).
    static func render(_ key: String, _ value: JSON) -> String? {
        switch value {
        case .null: return nil
        case .string(let text):
            return text.contains(" ") || text.isEmpty || text.contains("\"") ? quoted(text) : text
        case .double(let seconds) where key == "for" || key.hasSuffix("At") || key == "scheduledFor":
            return formatTime(seconds).replacingSpaces
        case .array(let items):
            guard !items.isEmpty else { return nil }
            return items.map { render(key, $0) ?? "" }.joined(separator: ",")
        case .object(let members):
            // Counts and the like: the members that are not zero.
            let shown = members.filter { $0.1 != .int(0) }.map { "\($0.0):\(render($0.0, $0.1) ?? "")" }
            return shown.isEmpty ? nil : shown.joined(separator: ",")
        default: return value.serialized()
        }
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for character in text {
            if character == "\"" || character == "\\" { out.append("\\") }
            out.append(character)
        }
        return out + "\""
    }
}

extension String {
    fileprivate var replacingSpaces: String { String(map { $0 == " " ? "T" : $0 }) }
}
