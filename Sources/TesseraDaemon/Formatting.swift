// Sizes and durations written the way job files write them, for reasons
// such as "memory limit 256MiB exceeded".

/// 268435456 -> "256MiB"; sizes that are not a whole number of a binary
/// unit keep the largest unit that divides them.
func formatSize(_ bytes: UInt64) -> String {
    let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
    for (size, name) in units where bytes >= size && bytes % size == 0 {
        return "\(bytes / size)\(name)"
    }
    return "\(bytes)B"
}

/// 30000 -> "30s", 90000 -> "90s", 300000 -> "5m", 500 -> "500ms".
func formatDuration(_ milliseconds: UInt64) -> String {
    if milliseconds % 3_600_000 == 0 && milliseconds > 0 { return "\(milliseconds / 3_600_000)h" }
    if milliseconds % 60_000 == 0 && milliseconds > 0 { return "\(milliseconds / 60_000)m" }
    if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
    return "\(milliseconds)ms"
}

/// The longest error line a reason quotes.
let quotedErrorLimit = 240

/// The line a failed microtask's reason quotes: the executor's last
/// error-level log message, else the last line of its standard error that
/// is not blank. Control characters become spaces and a long line is cut,
/// so the reason stays one readable line. Nil when there is nothing.
func lastErrorLine(logged: [UInt8], stderr: [UInt8]) -> String? {
    var bytes = logged
    if bytes.allSatisfy({ $0 <= 0x20 }) {
        let lines = stderr.split(separator: UInt8(ascii: "\n"))
        bytes = Array(lines.last { !$0.allSatisfy { $0 <= 0x20 } } ?? [])
    }
    var text = String(decoding: bytes, as: UTF8.self).unicodeScalars.map { scalar -> Character in
        scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value) ? " " : Character(scalar)
    }.reduce(into: "") { $0.append($1) }
    text = text.trimmingSpaces
    guard !text.isEmpty else { return nil }
    if text.count > quotedErrorLimit { text = String(text.prefix(quotedErrorLimit - 1)) + "…" }
    return text
}

extension String {
    /// Without leading and trailing spaces.
    var trimmingSpaces: String {
        let scalars = unicodeScalars.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()
        return String(String.UnicodeScalarView(scalars))
    }
}
