// Retention.swift
//
// Why this file exists: every run, microtask, attempt, output and event is
// kept, so a busy server's database would grow without end. `retention:`
// in tessera.yaml says how long finished runs are kept and how many; a job
// may say it for its own runs. The daemon deletes what is past it, in
// small batches (TesseraDaemon/Retention.swift).

/// How long and how many finished runs are kept.
public struct Retention: Sendable, Equatable {
    /// Finished runs older than this (ms since they finished) are deleted.
    public var maxAge: UInt64?
    /// Only the newest this many finished runs are kept.
    public var maxRuns: Int?

    public static let defaultMaxAge: UInt64 = 30 * 86_400_000
    public static let defaultMaxRuns = 10_000
    /// The server's default.
    public static let standard = Retention(maxAge: defaultMaxAge, maxRuns: defaultMaxRuns)

    public init(maxAge: UInt64? = nil, maxRuns: Int? = nil) {
        self.maxAge = maxAge
        self.maxRuns = maxRuns
    }

    /// This (a job's) with what it leaves unset taken from `server`.
    public func overlaid(on server: Retention) -> Retention {
        Retention(maxAge: maxAge ?? server.maxAge, maxRuns: maxRuns ?? server.maxRuns)
    }

    public var summary: String {
        [maxAge.map { "max_age \(formatDurationText($0))" }, maxRuns.map { "max_runs \($0)" }].compactMap { $0 }
            .joined(separator: ", ")
    }

    static let knownKeys: [KnownKey<Retention>] = [
        KnownKey("max_age", \.maxAge) { node in
            guard let value = node.duration() else { return nil }
            guard value > 0 else {
                node.reportExpected("a duration over zero, such as 30d")
                return nil
            }
            return value
        },
        KnownKey("max_runs", \.maxRuns) { $0.positiveInteger() },
    ]

    static func decode(_ node: ConfigNode) -> Retention? {
        guard let mapping = node.mapping(expected: "a mapping such as {max_age: 30d, max_runs: 10000}") else {
            return nil
        }
        var retention = Retention()
        mapping.decode(knownKeys, into: &retention)
        return retention
    }
}

/// Milliseconds as the shortest exact duration text (`30d`, `90m`, `1500ms`).
func formatDurationText(_ ms: UInt64) -> String {
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] as [(String, UInt64)]
    where ms >= size && ms % size == 0 {
        return "\(ms / size)\(unit)"
    }
    return "\(ms)ms"
}
