// Pressure.swift
//
// Why this file exists: admission backs off when the machine is already
// struggling. Linux's pressure stall information says what share of the
// last ten seconds tasks spent waiting for CPU, memory or I/O; above a
// threshold no new microtask starts (running ones go on), and admission
// resumes only once every watched resource is back under three quarters
// of its threshold, so that it does not flap around the line. The shell
// reads the files; this is the policy, driven by tests with samples.

/// Pausing and resuming admission on pressure samples, with hysteresis.
public struct PressureGate: Sendable {
    /// Resumes when every value is at most this share of its threshold.
    public static let resumeShare = 0.75

    /// Why admission is paused, or nil while it is open.
    public private(set) var pause: Pause?

    public struct Pause: Sendable, Equatable {
        public var resource: String
        public var percent: Double
        public var threshold: Double
        /// Wall-clock seconds.
        public var since: Double

        public var description: String {
            "\(resource) pressure \(Self.percent(percent)) is over \(Self.percent(threshold))"
        }

        static func percent(_ value: Double) -> String {
            value == value.rounded() ? "\(Int(value))%" : "\((value * 100).rounded() / 100)%"
        }
    }

    public init() {}

    /// Takes a sample (percent by resource; a resource missing from it is
    /// not judged) and says what changed: "paused: …", "resumed: …" or nil.
    public mutating func observe(
        _ samples: [String: Double], thresholds: [(resource: String, percent: Double)], at wall: Double
    ) -> String? {
        if let current = pause {
            let calm = thresholds.allSatisfy { resource, threshold in
                samples[resource].map { $0 <= threshold * Self.resumeShare } ?? true
            }
            guard calm else { return nil }
            pause = nil
            let levels = thresholds.compactMap { resource, _ in
                samples[resource].map { "\(resource) \(Pause.percent($0))" }
            }
            return "admission resumed (\(levels.joined(separator: ", "))) after \(current.description)"
        }
        for (resource, threshold) in thresholds {
            guard let value = samples[resource], value > threshold else { continue }
            let paused = Pause(resource: resource, percent: value, threshold: threshold, since: wall)
            pause = paused
            return "admission paused: \(paused.description); running microtasks go on, no new one starts"
        }
        return nil
    }
}

/// The `some avg10` figure of a PSI file's text, in percent.
public func pressureAverage(_ text: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix("some ") {
        for field in line.split(separator: " ") where field.hasPrefix("avg10=") {
            return Double(field.dropFirst("avg10=".count))
        }
    }
    return nil
}
