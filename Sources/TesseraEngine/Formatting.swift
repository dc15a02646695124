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
