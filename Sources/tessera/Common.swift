// What every subcommand shares: the socket option, --json, the connection,
// tables for people, and errors printed as sentences.

import ArgumentParser
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

struct GlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The daemon's control socket.", valueName: "path"))
    var socket: String?

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    var socketPath: String {
        if let socket { return socket }
        if let env = getenv("TESSERA_SOCKET"), env.pointee != 0 { return String(cString: env) }
        return "/run/tessera/tessera.sock"
    }

    func connect() throws -> VarlinkClient {
        do {
            return try VarlinkClient(path: socketPath)
        } catch {
            throw CLIError(error.description)
        }
    }

    /// Calls a method of io.tessera.Manager, turning errors into sentences.
    func call(_ method: String, _ parameters: JSON = .object([])) throws -> JSON {
        let client = try connect()
        do {
            return try client.call("io.tessera.Manager." + method, parameters)
        } catch {
            throw CLIError(error.description)
        }
    }
}

/// An error for people: printed as "tessera: <message>", exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Prints JSON text for programs.
func printJSON(_ value: JSON) {
    print(value.serialized())
}

/// Columns aligned with two spaces; numbers right-aligned.
func printTable(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) {
    var widths = header.map(\.count)
    for row in rows {
        for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
    }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in
            let pad = String(repeating: " ", count: max(0, widths[i] - cell.count))
            if i == cells.count - 1 && !rightAligned.contains(i) { return cell }
            return rightAligned.contains(i) ? pad + cell : cell + pad
        }.joined(separator: "  ")
    }
    print(line(header))
    rows.forEach { print(line($0)) }
}

func formatTime(_ seconds: Double?) -> String {
    guard let seconds else { return "-" }
    var time = time_t(seconds)
    var parts = tm()
    localtime_r(&time, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    let length = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func formatSeconds(_ seconds: Double?) -> String {
    guard let seconds else { return "-" }
    if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
    if seconds < 60 { return String(Int(seconds * 10) / 10) + "." + String(Int(seconds * 10) % 10) + "s" }
    return "\(Int(seconds) / 60)m\(Int(seconds) % 60)s"
}

func formatBytes(_ bytes: Int64?) -> String {
    guard let bytes else { return "-" }
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes)B" : String(Int(value * 10) / 10) + "." + String(Int(value * 10) % 10) + units[unit]
}

func parseRunID(_ text: String) throws -> Int64 {
    guard let id = Int64(text), id > 0 else {
        throw ValidationError("a run id is a positive integer, found \"\(text)\"")
    }
    return id
}

func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

/// Writes text to standard output at once, bypassing stdio buffering (the
/// progress bar must appear as it is drawn).
func writeStandardOutput(_ text: String) { writeAll(1, text) }

func writeStandardError(_ text: String) { writeAll(2, text) }

private func writeAll(_ fd: Int32, _ text: String) {
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        offset += n
    }
}
