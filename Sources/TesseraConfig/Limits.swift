// Limits.swift
//
// Why this file exists: resource limits appear in two places, a stage's
// `limits:` and the server's `defaults:`, with the same keys and the same
// strict units. This file holds the type, its keys and how two sets combine.

/// Resource limits for the microtasks of a stage. Nil means "not set here".
public struct Limits: Sendable, Equatable {
    /// CPU time, in milliseconds (`cpu: 10s`).
    public var cpu: UInt64?
    /// Wall-clock time, in milliseconds (`wall: 30s`).
    public var wall: UInt64?
    /// Memory, in bytes (`memory: 256MiB`).
    public var memory: UInt64?
    /// The largest file a task may write, in bytes (`file_size: 64MiB`).
    public var fileSize: UInt64?
    /// The most output a task may produce, in bytes (`output: 1MiB`).
    public var output: UInt64?
    /// The most file descriptors a task may hold open (`open_files: 64`).
    public var openFiles: UInt64?
    /// The most processes a task may run at once (`processes: 16`).
    public var processes: UInt64?
    /// CPU bandwidth in percent of one CPU (`cpu_quota: 50%`), enforced
    /// with the cgroup's cpu.max where cgroup v2 is delegated.
    public var cpuQuota: UInt64?
    /// The largest result a task may have, in bytes (`result: 1MiB`); past
    /// it the task fails.
    public var result: UInt64?

    /// The result limit when neither a stage nor the server sets one.
    public static let defaultResult: UInt64 = 1 << 20

    public init(
        cpu: UInt64? = nil, wall: UInt64? = nil, memory: UInt64? = nil, fileSize: UInt64? = nil,
        output: UInt64? = nil, openFiles: UInt64? = nil, processes: UInt64? = nil, cpuQuota: UInt64? = nil,
        result: UInt64? = nil
    ) {
        self.cpu = cpu
        self.wall = wall
        self.memory = memory
        self.fileSize = fileSize
        self.output = output
        self.openFiles = openFiles
        self.processes = processes
        self.cpuQuota = cpuQuota
        self.result = result
    }

    /// These limits on top of `base`: each limit set here wins, the others
    /// come from `base`. A stage's limits overlaid on the server's defaults.
    public func overlaid(on base: Limits) -> Limits {
        Limits(
            cpu: cpu ?? base.cpu,
            wall: wall ?? base.wall,
            memory: memory ?? base.memory,
            fileSize: fileSize ?? base.fileSize,
            output: output ?? base.output,
            openFiles: openFiles ?? base.openFiles,
            processes: processes ?? base.processes,
            cpuQuota: cpuQuota ?? base.cpuQuota,
            result: result ?? base.result)
    }

    /// The keys of a limits mapping.
    static let knownKeys: [KnownKey<Limits>] = [
        KnownKey("cpu", \.cpu) { $0.duration() },
        KnownKey("wall", \.wall) { $0.duration() },
        KnownKey("memory", \.memory) { $0.size() },
        KnownKey("file_size", \.fileSize) { $0.size() },
        KnownKey("output", \.output) { $0.size() },
        KnownKey("open_files", \.openFiles) { $0.positiveInteger().map(UInt64.init) },
        KnownKey("processes", \.processes) { $0.positiveInteger().map(UInt64.init) },
        KnownKey("cpu_quota", \.cpuQuota) { $0.percentage() },
        KnownKey("result", \.result) { $0.size() },
    ]

    /// Decodes a limits mapping such as `{cpu: 10s, memory: 256MiB}`.
    static func decode(_ node: ConfigNode) -> Limits? {
        guard let mapping = node.mapping() else { return nil }
        var limits = Limits()
        mapping.decode(knownKeys, into: &limits)
        return limits
    }
}
