// tessera logs: what microtasks wrote, from the store for the ones that
// ended and as it is written for running ones; -f follows until the run
// (or the one microtask) ends, across a restart of the daemon.

import ArgumentParser
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what a run's microtasks wrote, and follow it.",
        discussion: "With an index, that microtask's standard output as it is; otherwise every microtask's "
            + "(or one stage's), each line prefixed with the microtask's index. Output is kept up to the stage's "
            + "output limit.")
    @OptionGroup var options: GlobalOptions

    @Argument(help: "The run's id.", transform: parseRunID)
    var id: Int64

    @Argument(help: "One microtask's index.")
    var index: Int?

    @Flag(name: .shortAndLong, help: "Go on printing as microtasks write, until the run ends.")
    var follow = false

    @Option(help: ArgumentHelp("Only the microtasks of this stage.", valueName: "stage"))
    var stage: String?

    @Flag(help: "Standard error instead of standard output.")
    var stderr = false

    func validate() throws {
        if let index, index < 0 { throw ValidationError("a microtask index is 0 or more, found \(index)") }
    }

    func run() throws {
        var parameters: [(String, JSON)] = [("run", .int(id)), ("follow", .bool(follow)), ("stderr", .bool(stderr))]
        if let index { parameters.append(("index", .int(Int64(index)))) }
        if let stage { parameters.append(("stage", .string(stage))) }
        let fd: Int32 = stderr ? 2 : 1
        var printer = LinePrinter(prefixed: index == nil, fd: fd)
        // What was received of each attempt, so that a stream taken up
        // again after a reconnect (which starts over) prints nothing twice.
        var received: [AttemptKey: Int] = [:]
        var complete: Set<AttemptKey> = []
        var replay: (received: [AttemptKey: Int], complete: Set<AttemptKey>)?
        var connections = 0
        try withReconnect(options) { client in
            connections += 1
            if connections > 1 { replay = (received, complete) }
            try client.stream("io.tessera.Manager.StreamOutput", .object(parameters)) { reply in
                for chunk in reply["chunks"]?.arrayValue ?? [] {
                    guard let index = chunk["index"]?.intValue.map({ Int($0) }) else { continue }
                    let key = AttemptKey(index: index, attempt: Int(chunk["attempt"]?.intValue ?? 0))
                    var bytes = TesseraProtocol.bytes(text: chunk["text"], base64: chunk["base64"]) ?? []
                    let end = chunk["end"]?.boolValue ?? false
                    if var skip = replay {
                        if skip.complete.contains(key) {
                            if end { skip.complete.remove(key) }
                            replay = skip
                            continue
                        }
                        if let already = skip.received[key] {
                            let drop = min(already, bytes.count)
                            bytes.removeFirst(drop)
                            skip.received[key] = already - drop > 0 && !end ? already - drop : nil
                            replay = skip
                        }
                    }
                    if options.json {
                        // What is left of it after a reconnect's replay.
                        let (text, base64) = bytesJSON(bytes)
                        let piece: JSON = [
                            "index": .int(Int64(index)), "attempt": .int(Int64(key.attempt)), "text": text,
                            "base64": base64, "end": .bool(end),
                        ]
                        writeStandardOutput(piece.serialized() + "\n")
                    } else {
                        printer.write(index, bytes, end: end)
                    }
                    if end {
                        received.removeValue(forKey: key)
                        complete.insert(key)
                    } else {
                        received[key, default: 0] += bytes.count
                    }
                }
                return true
            }
        }
        printer.finish()
    }
}

/// One attempt at one microtask.
struct AttemptKey: Hashable {
    let index: Int
    let attempt: Int
}

/// Writes output line by line with an index prefix (or as it comes, for
/// one microtask), keeping each microtask's unfinished line until the rest
/// of it arrives or the microtask ends.
struct LinePrinter {
    let prefixed: Bool
    let fd: Int32
    private var partial: [Int: [UInt8]] = [:]

    init(prefixed: Bool, fd: Int32) {
        self.prefixed = prefixed
        self.fd = fd
    }

    mutating func write(_ index: Int, _ bytes: [UInt8], end: Bool) {
        guard prefixed else { return writeOutput(fd, bytes) }
        var pending = partial.removeValue(forKey: index) ?? []
        pending += bytes
        var start = 0
        var out: [UInt8] = []
        while let newline = pending[start...].firstIndex(of: 0x0A) {
            out += Array("[\(index)] ".utf8) + pending[start...newline]
            start = newline + 1
        }
        let rest = Array(pending[start...])
        if end {
            if !rest.isEmpty { out += Array("[\(index)] ".utf8) + rest + [0x0A] }
        } else if !rest.isEmpty {
            partial[index] = rest
        }
        if !out.isEmpty { writeOutput(fd, out) }
    }

    mutating func finish() {
        for index in partial.keys.sorted() { write(index, [], end: true) }
    }
}
