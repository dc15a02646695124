// Resources.swift
//
// Why this file exists: a microtask is admitted by what it needs, not only
// by a count of slots. A stage says what each of its microtasks needs
// (`requests: {cpu: 0.5, memory: 2GiB}`); the server says what the machine
// has for them (`capacity: {cpu: auto, memory: auto}`). This file holds
// both, how they are written, and what `auto` means here.

#if canImport(Glibc)
    internal import Glibc
#endif

/// What each microtask of a stage needs; nil parts need nothing counted.
public struct ResourceRequests: Sendable, Equatable {
    /// CPUs, fractions allowed (`0.5`).
    public var cpu: Double?
    /// Bytes of memory.
    public var memory: UInt64?
    /// `memory: auto`: what the stage's microtasks were seen to use at
    /// most (their peak RSS), once one has ended; nothing before.
    public var learnsMemory = false

    public init(cpu: Double? = nil, memory: UInt64? = nil, learnsMemory: Bool = false) {
        self.cpu = cpu
        self.memory = memory
        self.learnsMemory = learnsMemory
    }

    static let knownKeys: [KnownKey<ResourceRequests>] = [
        KnownKey("cpu", \.cpu) { $0.cpuCount() },
        KnownKey("memory") { requests, node in
            if node.plainText == "auto" {
                requests.learnsMemory = true
            } else if let size = node.size() {
                requests.memory = size
            }
        },
    ]

    static func decode(_ node: ConfigNode) -> ResourceRequests? {
        guard let mapping = node.mapping(expected: "a mapping such as {cpu: 0.5, memory: 2GiB}") else { return nil }
        var requests = ResourceRequests()
        mapping.decode(knownKeys, into: &requests)
        return requests
    }
}

/// What the server admits microtasks against: the sums of the requests of
/// the microtasks running at once stay within it.
public struct Capacity: Sendable, Equatable {
    public var cpu: Double
    public var memory: UInt64

    public init(cpu: Double, memory: UInt64) {
        self.cpu = cpu
        self.memory = memory
    }

    /// `auto`: the CPUs online, and physical memory less a reserve for the
    /// system and tesserad (a tenth of it, at least 512 MiB).
    public static var automatic: Capacity {
        let cpus = Double(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let pages = UInt64(max(0, sysconf(Int32(_SC_PHYS_PAGES))))
        let total = pages * UInt64(max(1, sysconf(Int32(_SC_PAGESIZE))))
        let reserve = max(total / 10, 512 << 20)
        let memory = total > reserve ? total - reserve : total
        return Capacity(cpu: cpus, memory: memory / (1 << 20) * (1 << 20))
    }

    static func decode(_ node: ConfigNode) -> Capacity? {
        guard let mapping = node.mapping(expected: "a mapping such as {cpu: auto, memory: 16GiB}") else {
            return nil
        }
        var capacity = Capacity.automatic
        var valid = true
        if let cpu = mapping["cpu"], cpu.plainText != "auto" {
            if let value = cpu.cpuCount() { capacity.cpu = value } else { valid = false }
        }
        if let memory = mapping["memory"], memory.plainText != "auto" {
            if let value = memory.size() { capacity.memory = value } else { valid = false }
        }
        mapping.rejectUnknownKeys(allowed: ["cpu", "memory"])
        return valid ? capacity : nil
    }
}

extension ConfigNode {
    /// A number of CPUs greater than zero: `2`, `0.5`.
    func cpuCount() -> Double? {
        guard let value = number(), value > 0 else {
            if case .scalar = node { reportExpected("a number of CPUs greater than 0, such as 2 or 0.5") }
            return nil
        }
        return value
    }

    /// The text of a plain scalar, nil for anything else.
    var plainText: String? {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return nil }
        return scalar.value
    }
}

/// `pressure:`: thresholds on Linux pressure stall information (PSI, the
/// `some avg10` line of `<source>/cpu`, `memory` and `io`). Above any of
/// them no new microtask starts; nil thresholds are not watched.
public struct PressureSettings: Sendable, Equatable {
    public var cpu: Double?
    public var memory: Double?
    public var io: Double?
    /// The directory of the pressure files.
    public var source: String

    public static let defaultSource = "/proc/pressure"

    public init(cpu: Double? = nil, memory: Double? = nil, io: Double? = nil, source: String = defaultSource) {
        self.cpu = cpu
        self.memory = memory
        self.io = io
        self.source = source
    }

    /// The resources watched, with their thresholds in percent.
    public var thresholds: [(resource: String, percent: Double)] {
        [("cpu", cpu), ("memory", memory), ("io", io)].compactMap { name, value in value.map { (name, $0) } }
    }

    static let knownKeys: [KnownKey<PressureSettings>] = [
        KnownKey("cpu", \.cpu) { $0.pressureThreshold() },
        KnownKey("memory", \.memory) { $0.pressureThreshold() },
        KnownKey("io", \.io) { $0.pressureThreshold() },
        KnownKey("source", \.source) { $0.filePath() },
    ]

    static func decode(_ node: ConfigNode) -> PressureSettings? {
        guard let mapping = node.mapping(expected: "a mapping such as {memory: 20%, io: 40%}") else { return nil }
        var settings = PressureSettings()
        mapping.decode(knownKeys, into: &settings)
        return settings
    }
}

extension ConfigNode {
    /// A share of time stalled, `1%` to `100%`.
    func pressureThreshold() -> Double? {
        guard let value = percentage() else { return nil }
        guard value <= 100 else {
            reportExpected("a percentage from 1% to 100%")
            return nil
        }
        return Double(value)
    }
}
