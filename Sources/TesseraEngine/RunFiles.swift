// RunFiles.swift
//
// Why this file exists: a run has a directory of its own under the state
// directory (`{{run_dir}}`), writable by its microtasks inside the sandbox,
// for files one stage leaves for the next; a reduce stage's input (the
// upstream results as JSON Lines) is written there too. The directory goes
// away when the run ends: what should outlive a run is a result, which the
// store keeps. Removal never follows a symbolic link a microtask left.

import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

public struct RunFiles: Sendable {
    /// `<state_dir>/runs`.
    public let root: String

    public init(stateDirectory: String) {
        root = stateDirectory + "/runs"
    }

    public func directory(of run: Int64) -> String { "\(root)/\(run)" }

    /// Creates the run's directory, writable by every uid a microtask may
    /// have (microtasks of one run share it; the state directory above it
    /// is closed to everyone else).
    @discardableResult
    public func create(run: Int64) throws(PartitionFailure) -> String {
        if mkdir(root, 0o755) != 0 && errno != EEXIST {
            throw PartitionFailure("cannot create \(root): \(String(cString: strerror(errno)))")
        }
        let path = directory(of: run)
        if mkdir(path, 0o777) != 0 && errno != EEXIST {
            throw PartitionFailure("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        chmod(path, 0o777)
        return path
    }

    /// Removes the run's directory and everything in it.
    public func remove(run: Int64) {
        let path = directory(of: run)
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        RunFiles.empty(directory: fd)
        close(fd)
        rmdir(path)
    }

    /// Removes everything in the open directory `fd`, not following links.
    private static func empty(directory fd: Int32, depth: Int = 0) {
        guard depth < 256, let handle = fdopendir(dup(fd)) else { return }
        defer { closedir(handle) }
        var names: [[CChar]] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                Array(bytes.prefix { $0 != 0 }.map { CChar(bitPattern: $0) }) + [0]
            }
            if name == [0x2E, 0] || name == [0x2E, 0x2E, 0] { continue }
            names.append(name)
        }
        for name in names {
            if unlinkat(fd, name, 0) == 0 { continue }
            let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if child >= 0 {
                empty(directory: child, depth: depth + 1)
                close(child)
                unlinkat(fd, name, AT_REMOVEDIR)
            }
        }
    }

    /// Writes a reduce stage's input file: one JSON object per line.
    /// `produce` is called with a function that writes one line.
    public func writeInput(
        run: Int64, stage: String,
        _ produce: (_ write: (JSON) throws(PartitionFailure) -> Void) throws(PartitionFailure) -> Void
    ) throws(PartitionFailure) -> String {
        let path = try create(run: run) + "/\(stage).input.jsonl"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PartitionFailure("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        fchmod(fd, 0o644)
        var buffer: [UInt8] = []
        func flush() throws(PartitionFailure) {
            var written = 0
            while written < buffer.count {
                let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PartitionFailure("cannot write \(path): \(String(cString: strerror(errno)))")
                }
                written += n
            }
            buffer.removeAll(keepingCapacity: true)
        }
        try produce { (line: JSON) throws(PartitionFailure) in
            buffer += Array(line.serialized().utf8)
            buffer.append(0x0A)
            if buffer.count >= 1 << 20 { try flush() }
        }
        try flush()
        // Durable before the stage it feeds is recorded as partitioned.
        fsync(fd)
        return path
    }
}
