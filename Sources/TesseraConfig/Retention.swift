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
        [maxAge.map { "max_age \(formatDuration($0))" }, maxRuns.map { "max_runs \($0)" }].compactMap { $0 }
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

/// 30000 -> "30s", 90000 -> "90s", 300000 -> "5m", 500 -> "500ms",
/// 2592000000 -> "30d": the way job files write durations.
public func formatDuration(_ milliseconds: UInt64) -> String {
    if milliseconds % 86_400_000 == 0 && milliseconds > 0 { return "\(milliseconds / 86_400_000)d" }
    if milliseconds % 3_600_000 == 0 && milliseconds > 0 { return "\(milliseconds / 3_600_000)h" }
    if milliseconds % 60_000 == 0 && milliseconds > 0 { return "\(milliseconds / 60_000)m" }
    if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
    return "\(milliseconds)ms"
}
