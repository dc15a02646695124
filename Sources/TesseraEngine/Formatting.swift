// Sizes and durations written the way job files write them, for reasons
// such as "memory limit 256MiB exceeded" and "wall time limit 30s exceeded".

/// 268435456 -> "256MiB"; sizes that are not a whole number of a binary
/// unit keep the largest unit that divides them.
public func formatSize(_ bytes: UInt64) -> String {
    let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
    for (size, name) in units where bytes >= size && bytes % size == 0 {
        return "\(bytes / size)\(name)"
    }
    return "\(bytes)B"
}

/// 30000 -> "30s", 90000 -> "90s", 300000 -> "5m", 500 -> "500ms".
public func formatDuration(_ milliseconds: UInt64) -> String {
    if milliseconds % 3_600_000 == 0 && milliseconds > 0 { return "\(milliseconds / 3_600_000)h" }
    if milliseconds % 60_000 == 0 && milliseconds > 0 { return "\(milliseconds / 60_000)m" }
    if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
    return "\(milliseconds)ms"
}
