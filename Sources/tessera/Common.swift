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

/// An error for people: printed as "tessera: <message>" (by Entry), exit
/// status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Prints JSON text for programs.
func printJSON(_ value: JSON) {
    print(value.serialized())
}

/// Columns aligned with two spaces; numbers right-aligned. Every cell is
/// escaped (see `escaped`), so that no value can break a row or write
/// control sequences to a terminal.
func printTable(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) {
    let rows = rows.map { $0.map { escaped(Array($0.utf8)) } }
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

/// `bytes` as text that is safe to show: control characters (C0, DEL and
/// C1) as `\n`, `\r`, `\t` or `\xNN`, and bytes that are not UTF-8 as `\xNN`,
/// the way systemctl and journalctl show what they cannot print. With
/// `keepingLines`, line feeds and tabs stay as they are.
func escaped(_ bytes: [UInt8], keepingLines: Bool = false) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    func hex(_ byte: UInt8) {
        let digits = Array("0123456789abcdef".utf8)
        out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), digits[Int(byte >> 4)], digits[Int(byte & 0xf)]]
    }
    var parser = Unicode.UTF8.ForwardParser()
    var iterator = bytes.makeIterator()
    var offset = 0
    while true {
        switch parser.parseScalar(from: &iterator) {
        case .valid(let encoded):
            let value = Unicode.UTF8.decode(encoded).value
            switch value {
            case 0x0a where keepingLines, 0x09 where keepingLines: out.append(UInt8(value))
            case 0x0a: out += Array("\\n".utf8)
            case 0x0d: out += Array("\\r".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0..<0x20, 0x7f: hex(UInt8(value))
            case 0x80..<0xa0: out += Array("\\u{\(String(value, radix: 16))}".utf8)
            default: out += encoded
            }
            offset += encoded.count
        case .error(let length):
            bytes[offset..<(offset + length)].forEach(hex)
            offset += length
        case .emptyInput:
            return String(decoding: out, as: UTF8.self)
        }
    }
}

/// Writes text to standard output at once, bypassing stdio buffering (the
/// progress bar must appear as it is drawn).
func writeStandardOutput(_ text: String) { writeAll(1, Array(text.utf8)) }

func writeStandardError(_ text: String) { writeAll(2, Array(text.utf8)) }

/// Writes what a microtask wrote to `fd`: exactly, into a file or a pipe;
/// escaped but for line feeds and tabs, on a terminal.
func writeOutput(_ fd: Int32, _ bytes: [UInt8]) {
    writeAll(fd, isTerminal(fd) ? Array(escaped(bytes, keepingLines: true).utf8) : bytes)
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        offset += n
    }
}
