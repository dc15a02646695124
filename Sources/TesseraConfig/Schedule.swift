// Schedule.swift
//
// Why this file exists: a job may start runs by itself, on a schedule:
//
//     schedule: "30 2 * * 1-5"          # cron(8)'s five fields, or @daily ...
//     timezone: Europe/Paris            # IANA name; UTC by default
//     overlap: skip                     # skip | queue | allow | replace
//     catch_up: none                    # none | one | all
//
// or `schedule: {every: 10m}`, or all of it in the mapping
// (`schedule: {cron: "0 * * * *", timezone: ..., overlap: ..., catch_up: ...}`).
// This file is the typed schedule and how it is written; when it fires
// and what a fire does is the engine's (TesseraEngine/Schedule.swift).

/// When a job starts runs by itself.
public struct ScheduleDefinition: Sendable, Equatable {
    public enum Trigger: Sendable, Equatable {
        case cron(CronExpression)
        /// Every this many milliseconds.
        case every(UInt64)
    }

    /// What a fire does while a run the schedule started is unfinished.
    public enum Overlap: String, Sendable, CaseIterable {
        /// Nothing: the time is skipped.
        case skip
        /// The run starts when the unfinished one has ended (one waits at most).
        case queue
        /// The run starts beside it.
        case allow
        /// The unfinished run is cancelled and the new one starts.
        case replace
    }

    /// What becomes of the times missed while tesserad was not running.
    public enum CatchUp: String, Sendable, CaseIterable {
        /// They are skipped.
        case none
        /// One run starts for them, at once.
        case one
        /// A run for each, at most `catchUpLimit`, the latest ones.
        case all
    }

    public var trigger: Trigger
    public var timezone: TimeZoneRules
    public var overlap: Overlap
    public var catchUp: CatchUp

    /// The most runs `catch_up: all` starts.
    public static let catchUpLimit = 100

    public init(
        trigger: Trigger, timezone: TimeZoneRules = .utc, overlap: Overlap = .skip, catchUp: CatchUp = .none
    ) {
        self.trigger = trigger
        self.timezone = timezone
        self.overlap = overlap
        self.catchUp = catchUp
    }

    /// In words, as `tessera jobs` shows it: `30 2 * * 1-5 Europe/Paris`,
    /// `every 10m`. Also what the store keeps to tell a changed schedule.
    public var summary: String {
        switch trigger {
        case .cron(let cron): return "\(cron.text.trimmingSpaces) \(timezone.name)"
        case .every(let ms): return "every \(formatMilliseconds(ms))"
        }
    }

    /// The schedule keys a job file may also write beside `schedule`.
    static let siblingKeys = ["timezone", "overlap", "catch_up"]

    /// Decodes `schedule` (a string or a mapping) of the job mapping `job`,
    /// with its sibling keys.
    static func decode(_ node: ConfigNode?, job: ConfigMapping) -> ScheduleDefinition? {
        guard let node else {
            for key in siblingKeys {
                if let value = job[key] {
                    diagnosticsReport(value, key: key, "\(quoted(key)) only means something with \"schedule\"")
                }
            }
            return nil
        }
        var parts: [String: ConfigNode] = [:]
        var valid = true
        for key in siblingKeys { if let value = job[key] { parts[key] = value } }
        var trigger: Trigger?
        switch node.node {
        case .mapping:
            guard let mapping = node.mapping() else { return nil }
            mapping.rejectUnknownKeys(allowed: ["cron", "every"] + siblingKeys)
            for key in siblingKeys {
                guard let value = mapping[key] else { continue }
                if parts[key] != nil {
                    value.report("\(quoted(key)) is given twice: here and beside \"schedule\"")
                    valid = false
                }
                parts[key] = value
            }
            let cron = mapping["cron"]
            let every = mapping["every"]
            if cron != nil && every != nil {
                every?.report("a schedule has \"cron\" or \"every\", not both")
                return nil
            }
            if let cron {
                trigger = cronTrigger(cron)
            } else if let every {
                trigger = every.duration().map(Trigger.every)
            } else {
                node.report("missing required key \"cron\" or \"every\" (for example {every: 10m})")
                return nil
            }
        default:
            trigger = cronTrigger(node)
        }
        var schedule = ScheduleDefinition(trigger: trigger ?? .every(1))
        if let zone = parts["timezone"] {
            if let name = zone.string(expected: "a time zone name such as Europe/Paris") {
                do {
                    schedule.timezone = try TimeZoneRules.load(name)
                } catch {
                    zone.report(error.message)
                    valid = false
                }
            } else {
                valid = false
            }
            if case .every = schedule.trigger, valid {
                zone.report("\"timezone\" has no meaning for \"every\", which counts time, not the clock")
                valid = false
            }
        }
        if let overlap = parts["overlap"] {
            if let value = overlap.keyword(Overlap.self, expected: "skip, queue, allow or replace") {
                schedule.overlap = value
            } else {
                valid = false
            }
        }
        if let catchUp = parts["catch_up"] {
            if let value = catchUp.keyword(CatchUp.self, expected: "none, one or all") {
                schedule.catchUp = value
            } else {
                valid = false
            }
        }
        guard valid, trigger != nil else { return nil }
        return schedule
    }

    private static func cronTrigger(_ node: ConfigNode) -> Trigger? {
        guard let text = node.string(expected: "a cron expression such as \"0 3 * * *\", or {every: 10m}") else {
            return nil
        }
        do {
            return .cron(try CronExpression.parse(text))
        } catch {
            // Point at the field, when the text is on the line as written.
            var mark = node.mark
            if case .scalar(let scalar) = node.node, !text.contains("\n") {
                mark.column += error.offset + (scalar.style == .plain ? 0 : 1)
            }
            node.diagnostics.report(error.message, at: mark, path: node.path)
            return nil
        }
    }

    private static func diagnosticsReport(_ node: ConfigNode, key: String, _ message: String) {
        node.diagnostics.report(message, at: node.keyMark ?? node.mark, path: node.path)
    }
}

extension ConfigNode {
    /// One of an enumeration's raw values.
    func keyword<Value: RawRepresentable>(_ type: Value.Type, expected: String) -> Value?
    where Value.RawValue == String {
        guard let text = string(expected: expected) else { return nil }
        guard let value = Value(rawValue: text) else {
            reportExpected(expected)
            return nil
        }
        return value
    }
}
