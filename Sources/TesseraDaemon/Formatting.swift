// The error line a failed microtask's reason quotes. (Sizes and durations
// are formatted by TesseraEngine's Formatting.swift.)

import TesseraEngine

#if canImport(Glibc)
    import Glibc
#endif

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

/// A wall-clock time as UTC `2026-12-02 21:14:05Z`.
func formatClock(_ seconds: Double) -> String {
    var time = time_t(seconds)
    var parts = tm()
    gmtime_r(&time, &parts)
    func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
    return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) "
        + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
}
