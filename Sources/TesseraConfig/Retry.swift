// Retry.swift
//
// Why this file exists: a stage says how its failed microtasks are tried
// again (`retry: {attempts: 3, backoff: 1s, max_backoff: 5m, jitter: true,
// on: [failed, timeout], permanent_exit_codes: [2]}`). This file holds the
// policy, the kinds of failure it names and how it is written; the engine
// (TesseraEngine/Retry.swift) decides with it.

/// Why an attempt failed, as a retry policy names it.
public enum FailureKind: String, Sendable, CaseIterable {
    /// It exited non-zero, its executor failed, or it broke an output,
    /// result or channel rule.
    case failed
    /// It ran past its wall-clock or CPU limit.
    case timeout
    /// A signal ended it (not one of its limits').
    case signal
    /// It ran out of its memory limit.
    case memory
    /// It was running when tesserad or its worker process died.
    case lost
}

/// How a stage's failed microtasks are tried again.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included; 1 tries once.
    public var attempts: Int
    /// The delay before the second attempt (ms); it doubles after each.
    public var backoff: UInt64
    /// The longest delay (ms).
    public var maxBackoff: UInt64
    /// Full jitter: each delay is drawn uniformly from 0 up to it.
    public var jitter: Bool
    /// The kinds of failure that are tried again.
    public var on: Set<FailureKind>
    /// Exit codes that mean the failure is permanent: never tried again.
    public var permanentExitCodes: Set<Int>

    public static let defaultBackoff: UInt64 = 1000
    public static let defaultMaxBackoff: UInt64 = 300_000
    /// The most attempts a policy may ask for.
    public static let maximumAttempts = 100

    /// One attempt, nothing retried.
    public static let none = RetryPolicy(attempts: 1)

    public init(
        attempts: Int, backoff: UInt64 = defaultBackoff, maxBackoff: UInt64 = defaultMaxBackoff, jitter: Bool = true,
        on: Set<FailureKind> = Set(FailureKind.allCases), permanentExitCodes: Set<Int> = []
    ) {
        self.attempts = attempts
        self.backoff = backoff
        self.maxBackoff = maxBackoff
        self.jitter = jitter
        self.on = on
        self.permanentExitCodes = permanentExitCodes
    }

    /// The longest delay before attempt `attempt + 1` (ms), before jitter:
    /// `backoff * 2^(attempt-1)`, at most `maxBackoff`.
    public func ceiling(afterAttempt attempt: Int) -> UInt64 {
        let doublings = max(0, attempt - 1)
        guard doublings < 40 else { return maxBackoff }
        let (delay, overflow) = backoff.multipliedReportingOverflow(by: 1 << UInt64(doublings))
        return overflow ? maxBackoff : min(delay, maxBackoff)
    }

    static func decode(_ node: ConfigNode) -> RetryPolicy? {
        guard let mapping = node.mapping(expected: "a mapping such as {attempts: 3, backoff: 1s}") else { return nil }
        var draft = Draft()
        mapping.decode(Draft.knownKeys, into: &draft)
        guard draft.valid, let attempts = draft.attempts else { return nil }
        var policy = RetryPolicy(attempts: attempts)
        policy.backoff = draft.backoff ?? defaultBackoff
        policy.maxBackoff = draft.maxBackoff ?? max(defaultMaxBackoff, policy.backoff)
        if policy.maxBackoff < policy.backoff, let node = mapping["max_backoff"] {
            node.report(
                "max_backoff (\(formatMilliseconds(policy.maxBackoff))) is shorter than backoff "
                    + "(\(formatMilliseconds(policy.backoff)))")
            return nil
        }
        policy.jitter = draft.jitter ?? true
        policy.on = draft.on ?? Set(FailureKind.allCases)
        policy.permanentExitCodes = draft.permanentExitCodes ?? []
        return policy
    }

    private struct Draft {
        var attempts: Int?
        var backoff: UInt64?
        var maxBackoff: UInt64?
        var jitter: Bool?
        var on: Set<FailureKind>?
        var permanentExitCodes: Set<Int>?
        var valid = true

        static let knownKeys: [KnownKey<Draft>] = [
            KnownKey("attempts", required: true) { draft, node in
                let expected = "a number of attempts from 1 to \(maximumAttempts) (the first included)"
                guard let value = node.integer(expected: expected) else {
                    draft.valid = false
                    return
                }
                guard (1...Int64(maximumAttempts)).contains(value) else {
                    node.reportExpected(expected)
                    draft.valid = false
                    return
                }
                draft.attempts = Int(value)
            },
            KnownKey("backoff") { draft, node in
                if let value = node.duration() { draft.backoff = value } else { draft.valid = false }
            },
            KnownKey("max_backoff") { draft, node in
                if let value = node.duration() { draft.maxBackoff = value } else { draft.valid = false }
            },
            KnownKey("jitter") { draft, node in
                if let value = node.boolean() { draft.jitter = value } else { draft.valid = false }
            },
            KnownKey("on") { draft, node in
                let names = FailureKind.allCases.map(\.rawValue)
                let kinds = node.list(expected: "a list of failure kinds (\(names.joined(separator: ", ")))") { item in
                    guard let text = item.string(expected: "a failure kind") else { return nil as FailureKind? }
                    guard let kind = FailureKind(rawValue: text) else {
                        item.report(
                            "unknown failure kind \(quoted(text))\(didYouMean(text, among: names)) "
                                + "(the kinds: \(names.joined(separator: ", ")))")
                        return nil
                    }
                    return kind
                }
                if let kinds { draft.on = Set(kinds) } else { draft.valid = false }
            },
            KnownKey("permanent_exit_codes") { draft, node in
                let codes = node.list(expected: "a list of exit codes") { item -> Int? in
                    guard let code = item.integer(expected: "an exit code from 1 to 255") else { return nil }
                    guard (1...255).contains(code) else {
                        item.reportExpected("an exit code from 1 to 255")
                        return nil
                    }
                    return Int(code)
                }
                if let codes { draft.permanentExitCodes = Set(codes) } else { draft.valid = false }
            },
        ]
    }
}

/// `1.5s`, `5m`, `250ms`: a duration as it would be written.
func formatMilliseconds(_ ms: UInt64) -> String {
    if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
    if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
    if ms % 1000 == 0 { return "\(ms / 1000)s" }
    return "\(ms)ms"
}
