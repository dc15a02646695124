// tessera results / rerun: a run's results, streamed in index order as
// JSON Lines, CSV or TSV; and a new run of what an earlier one did.

import ArgumentParser
import TesseraProtocol

struct Results: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a run's results in index order.",
        discussion: "Streams: a run of any size is printed as the daemon reads it. jsonl prints one object a "
            + "line (stage, index, item, state, result; items and results that are JSON are embedded as JSON); "
            + "csv and tsv print a header and the same columns, results as text.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run id.")
    var runID: String

    @Option(help: "Only the microtasks of this stage.")
    var stage: String?

    @Option(help: "jsonl, csv or tsv.")
    var format = "jsonl"

    func validate() throws {
        guard ["jsonl", "csv", "tsv"].contains(format) else {
            throw ValidationError("--format must be jsonl, csv or tsv; found \"\(format)\"")
        }
    }

    func run() throws {
        let id = try parseRunID(runID)
        let client = try options.connect()
        var parameters: [(String, JSON)] = [("run", .int(id))]
        if let stage { parameters.append(("stage", .string(stage))) }
        let output = BufferedOutput()
        switch format {
        case "csv": output.write(csvLine(["stage", "index", "item", "state", "result"]))
        case "tsv": output.write(tsvLine(["stage", "index", "item", "state", "result"]))
        default: break
        }
        do {
            try client.stream("io.tessera.Manager.ListResults", .object(parameters)) { reply in
                for json in reply["tasks"]?.arrayValue ?? [] {
                    guard let task = TaskInfo(json: json) else { continue }
                    output.write(line(for: task))
                }
                return true
            }
        } catch let error as VarlinkClientError {
            output.flush()
            throw CLIError(error.description)
        }
        output.flush()
    }

    private func line(for task: TaskInfo) -> String {
        let result = task.resultBytes
        switch format {
        case "csv", "tsv":
            let cells = [
                task.stage, String(task.index), task.item, task.state.rawValue,
                result.map { String(decoding: $0, as: UTF8.self) } ?? "",
            ]
            return format == "csv" ? csvLine(cells) : tsvLine(cells)
        default:
            let object: JSON = [
                "stage": .string(task.stage), "index": .int(Int64(task.index)), "item": embedded(task.item),
                "state": .string(task.state.rawValue), "result": result.map(embeddedResult) ?? .null,
            ]
            return object.serialized() + "\n"
        }
    }

    /// An item as JSON: objects and arrays embedded, anything else a string.
    private func embedded(_ item: String) -> JSON {
        if let first = item.first, first == "{" || first == "[", let parsed = try? JSON.parse(item) { return parsed }
        return .string(item)
    }

    /// A result embedded when it is JSON, else a string.
    private func embeddedResult(_ bytes: [UInt8]) -> JSON {
        (try? JSON.parse(bytes)) ?? .string(String(decoding: bytes, as: UTF8.self))
    }
}

/// RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled.
func csvLine(_ cells: [String]) -> String {
    cells.map { cell in
        // By scalar: "\r\n" is one Character, equal to neither "\r" nor "\n".
        guard cell.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else {
            return cell
        }
        return "\"" + cell.replacingAll("\"", with: "\"\"") + "\""
    }.joined(separator: ",") + "\r\n"
}

/// Tab-separated, with tabs, line breaks and backslashes escaped as \t, \n, \r, \\.
func tsvLine(_ cells: [String]) -> String {
    cells.map { cell in
        var out = ""
        for scalar in cell.unicodeScalars {
            switch scalar {
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\\": out += "\\\\"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }.joined(separator: "\t") + "\n"
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for scalar in unicodeScalars {
            if Character(scalar) == target { out += replacement } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }
}

/// Standard output in blocks, not a write per line.
final class BufferedOutput {
    private var buffer: [UInt8] = []

    func write(_ text: String) {
        buffer += text.utf8
        if buffer.count >= 1 << 16 { flush() }
    }

    func flush() {
        writeOutput(1, buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}

struct Rerun: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an earlier run's job again.",
        discussion: "With --failed, every stage runs only the items that did not succeed (failed or cancelled) "
            + "in that run; a reduce stage runs again over this run's results. Items that came from the caller "
            + "are taken again from the earlier run.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run to run again.")
    var runID: String

    @Flag(help: "Only the items that did not succeed.")
    var failed = false

    @Flag(help: "Wait for the new run to end, showing its progress.")
    var wait = false

    func run() throws {
        let id = try parseRunID(runID)
        let reply = try options.call("RerunRun", ["id": .int(id), "failedOnly": .bool(failed)])
        guard let newID = reply["id"]?.intValue else { throw CLIError("the daemon sent no run id") }
        try reportStarted(newID, what: "rerun of run \(id)", wait: wait, options: options)
    }
}
