// Schedules on the simulated clock: cron fields, next fire times in time
// zones across daylight-saving changes (from the system's zoneinfo files),
// and what a fire does under each overlap and catch-up policy.

import TesseraProtocol
import Testing

@testable import TesseraConfig
@testable import TesseraEngine

/// Seconds since the epoch of a UTC civil time.
func utc(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 0, _ minute: Int = 0) -> Double {
    Double(days(fromCivil: year, month, day) * 86400 + Int64(hour * 3600 + minute * 60))
}

func cron(_ text: String, _ zone: String = "UTC") throws -> ScheduleDefinition {
    ScheduleDefinition(trigger: .cron(try CronExpression.parse(text)), timezone: try TimeZoneRules.load(zone))
}

/// The next `count` fire times after `t`.
func fires(_ schedule: ScheduleDefinition, after t: Double, count: Int) -> [Double] {
    var times: [Double] = []
    var at = t
    while times.count < count, let next = schedule.nextFire(after: at) {
        times.append(next)
        at = next
    }
    return times
}

@Suite("engine: schedules")
struct ScheduleTests {
    @Test("cron fields: numbers, names, ranges, steps and lists; @names; day of month or of week")
    func cronFields() throws {
        let start = utc(2026, 12, 2, 10, 7)  // a Wednesday
        #expect(
            fires(try cron("*/15 * * * *"), after: start, count: 3) == [
                utc(2026, 12, 2, 10, 15), utc(2026, 12, 2, 10, 30), utc(2026, 12, 2, 10, 45),
            ])
        #expect(
            fires(try cron("0 9-17/4 * * mon-fri"), after: start, count: 4) == [
                utc(2026, 12, 2, 13), utc(2026, 12, 2, 17), utc(2026, 12, 3, 9), utc(2026, 12, 3, 13),
            ])
        #expect(fires(try cron("@daily"), after: start, count: 1) == [utc(2026, 12, 3)])
        #expect(fires(try cron("@hourly"), after: start, count: 1) == [utc(2026, 12, 2, 11)])
        #expect(fires(try cron("@weekly"), after: start, count: 1) == [utc(2026, 12, 6)])
        #expect(fires(try cron("@yearly"), after: start, count: 1) == [utc(2027, 1, 1)])
        #expect(fires(try cron("0 0 1 JAN,jul *"), after: start, count: 2) == [utc(2027, 1, 1), utc(2027, 7, 1)])
        // Both days restricted: either matches (the 13th, or a Friday).
        #expect(
            fires(try cron("0 0 13 * 5"), after: start, count: 3) == [
                utc(2026, 12, 4), utc(2026, 12, 11), utc(2026, 12, 13),
            ])
        // 7 is Sunday too; `*` in one day field leaves the other alone.
        #expect(fires(try cron("0 0 * * 7"), after: start, count: 1) == [utc(2026, 12, 6)])
        #expect(fires(try cron("0 12 29 2 *"), after: start, count: 1) == [utc(2028, 2, 29, 12)])
        #expect(try cron("0 0 30 2 *").nextFire(after: start) == nil, "February has no 30th")
    }

    @Test("a bad cron field is named, with where it is in the text")
    func cronErrors() {
        func error(_ text: String) -> (String, Int)? {
            do {
                _ = try CronExpression.parse(text)
                return nil
            } catch {
                return (error.message, error.offset)
            }
        }
        #expect(error("61 * * * *")?.0 == "minute \"61\": 61 is out of range (0-59)")
        #expect(error("0 24 * * *")?.1 == 2)
        #expect(error("0 0 0 * *")?.0 == "day of month \"0\": 0 is out of range (1-31)")
        #expect(error("0 0 * 13 *")?.1 == 6)
        #expect(error("0 0 * * 8")?.0 == "day of week \"8\": 8 is out of range (0-7)")
        #expect(error("*/0 * * * *")?.0 == "minute \"*/0\": a step must be a positive number, found \"0\"")
        #expect(error("0 5-2 * * *")?.0 == "hour \"5-2\": a range must go up, found 5-2")
        #expect(error("0 0 * foo *")?.0.hasPrefix("month \"foo\": expected a number (1-12) or a name (jan,") == true)
        #expect(error("* * * *")?.0.hasPrefix("expected five fields") == true)
        #expect(error("@reboot")?.0.hasPrefix("unknown schedule name \"@reboot\"") == true)
    }

    @Test("Europe/Paris: the skipped hour fires once after the gap, the repeated hour once, at its first")
    func paris() throws {
        // 2026-03-29 02:00 CET becomes 03:00 CEST (01:00Z); 2026-10-25
        // 03:00 CEST becomes 02:00 CET (01:00Z).
        let nightly = try cron("30 2 * * *", "Europe/Paris")
        #expect(
            fires(nightly, after: utc(2026, 3, 27), count: 4) == [
                utc(2026, 3, 27, 1, 30), utc(2026, 3, 28, 1, 30),
                utc(2026, 3, 29, 1, 0),  // 02:30 does not exist: 03:00 CEST
                utc(2026, 3, 30, 0, 30),
            ])
        #expect(
            fires(nightly, after: utc(2026, 10, 24), count: 3) == [
                utc(2026, 10, 24, 0, 30),
                utc(2026, 10, 25, 0, 30),  // the first 02:30 (CEST), not again at 01:30Z
                utc(2026, 10, 26, 1, 30),
            ])
        let halfHourly = try cron("*/30 * * * *", "Europe/Paris")
        #expect(
            fires(halfHourly, after: utc(2026, 3, 29, 0, 15), count: 3) == [
                utc(2026, 3, 29, 0, 30),  // 01:30 CET
                utc(2026, 3, 29, 1, 0),  // 02:00 and 02:30 do not exist: once, at 03:00 CEST
                utc(2026, 3, 29, 1, 30),  // 03:30 CEST
            ])
        // Started inside the repeated hour's second pass: its times were had.
        #expect(fires(nightly, after: utc(2026, 10, 25, 1, 10), count: 1) == [utc(2026, 10, 26, 1, 30)])
    }

    @Test("America/New_York: the same rules on its own dates, and Australia/Sydney's southern summer")
    func newYorkAndSydney() throws {
        // 2026-03-08 02:00 EST becomes 03:00 EDT (07:00Z); 2026-11-01
        // 02:00 EDT becomes 01:00 EST (06:00Z).
        let early = try cron("30 2 * * *", "America/New_York")
        #expect(fires(early, after: utc(2026, 3, 7, 12), count: 2) == [utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)])
        let repeated = try cron("30 1 * * *", "America/New_York")
        #expect(
            fires(repeated, after: utc(2026, 10, 31, 12), count: 2) == [
                utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30),
            ])
        // Sydney: AEDT (+11) from the first Sunday of October, AEST (+10) from the first of April.
        let sydney = try cron("0 12 * * *", "Australia/Sydney")
        #expect(fires(sydney, after: utc(2026, 1, 10), count: 1) == [utc(2026, 1, 10, 1)])
        #expect(fires(sydney, after: utc(2026, 7, 10), count: 1) == [utc(2026, 7, 10, 2)])
    }

    @Test("after the zoneinfo table ends, the file's POSIX rule gives the offsets")
    func posixRule() throws {
        let paris = try TimeZoneRules.load("Europe/Paris")
        #expect(paris.offset(at: Int64(utc(2045, 1, 15))) == 3600)
        #expect(paris.offset(at: Int64(utc(2045, 7, 15))) == 7200)
        // 2045's last Sunday of March is the 26th: 01:00Z.
        #expect(
            paris.firstTransition(after: Int64(utc(2045, 3, 1)), upTo: Int64(utc(2045, 4, 1)))
                == Int64(utc(2045, 3, 26, 1)))
        let rule = try #require(PosixTimeZoneRule.parse("AEST-10AEDT,M10.1.0,M4.1.0/3"))
        #expect(rule.standard == 36000 && rule.daylight == 39600)
        #expect(rule.offset(at: Int64(utc(2050, 1, 1))) == 39600, "summer in January")
        #expect(rule.offset(at: Int64(utc(2050, 6, 1))) == 36000)
        #expect(PosixTimeZoneRule.parse("<+03>-3")?.standard == 10800)
        #expect(PosixTimeZoneRule.parse("EST5EDT,M3.2.0,M11.1.0")?.standard == -18000)
        #expect(PosixTimeZoneRule.parse("garbage,") == nil)
    }

    @Test("an unknown time zone is refused, and a name cannot leave the zoneinfo directory")
    func zoneNames() {
        #expect(throws: TimeZoneError.self) { try TimeZoneRules.load("Europe/Pariss") }
        #expect(throws: TimeZoneError.self) { try TimeZoneRules.load("../../etc/passwd") }
        #expect(throws: TimeZoneError.self) { try TimeZoneRules.load("/etc/localtime") }
        #expect((try? TimeZoneRules.load("UTC")) == .utc)
    }
}

/// A bench whose job has a schedule.
func scheduled(_ schedule: ScheduleDefinition, name: String = "tick") -> JobDefinition {
    var definition = job(stage("s", .range(from: 0, to: 1, step: 1)))
    definition.name = name
    definition.schedule = schedule
    return definition
}

func every(
    _ ms: UInt64, overlap: ScheduleDefinition.Overlap = .skip, catchUp: ScheduleDefinition.CatchUp = .none
) -> ScheduleDefinition {
    ScheduleDefinition(trigger: .every(ms), overlap: overlap, catchUp: catchUp)
}

extension Bench {
    /// Moves the clock on and fires what is due.
    func tick(_ ms: UInt64) {
        advance(ms)
        engine.fireSchedules(at: clock)
        dispatch()
    }

    var scheduledRuns: [Int64] {
        store.runs.values.filter { $0.scheduledFor != nil }.map(\.id).sorted()
    }
}

@Suite("engine: schedule policies")
struct SchedulePolicyTests {
    @Test("every 1s with overlap skip never runs two at once; the fire time is durable with its run")
    func skip() throws {
        let bench = Bench(slots: 4)
        bench.engine.updateSchedules([scheduled(every(1000))], at: bench.clock)
        #expect(bench.engine.nextScheduleDue == bench.clock.wall + 1)
        var most = 0
        for second in 1...10 {
            bench.tick(1000)
            let unfinished = bench.engine.runs.values.filter { $0.scheduledFor != nil }.count
            most = max(most, unfinished)
            // Runs end every third second.
            if second % 3 == 0 { bench.drain() }
        }
        #expect(most == 1)
        #expect(bench.scheduledRuns.count >= 3)
        let first = try #require(bench.store.runs[bench.scheduledRuns[0]])
        #expect(first.startedBy == "schedule" && first.scheduledFor == 1_000_001)
        #expect(bench.store.schedules["tick"]?.lastFire == bench.clock.wall, "the skipped times are recorded too")
    }

    @Test("overlap allow runs beside, queue waits for the end (one at most), replace cancels the unfinished run")
    func overlapPolicies() throws {
        let allow = Bench(slots: 4)
        allow.engine.updateSchedules([scheduled(every(1000, overlap: .allow))], at: allow.clock)
        for _ in 1...3 { allow.tick(1000) }
        #expect(allow.engine.runs.count == 3)

        let queue = Bench(slots: 4)
        queue.engine.updateSchedules([scheduled(every(1000, overlap: .queue))], at: queue.clock)
        for _ in 1...3 { queue.tick(1000) }
        #expect(queue.engine.runs.count == 1, "the second and third wait, as one")
        queue.finish()
        #expect(queue.engine.runs.count == 1 && queue.scheduledRuns.count == 2, "the waiting one started at its end")
        #expect(queue.store.runs[queue.scheduledRuns[1]]?.scheduledFor == queue.clock.wall)
        queue.finish()
        #expect(queue.engine.runs.isEmpty, "nothing else waited")

        let replace = Bench(slots: 4)
        replace.engine.updateSchedules([scheduled(every(1000, overlap: .replace))], at: replace.clock)
        replace.tick(1000)
        let first = try #require(replace.scheduledRuns.first)
        replace.tick(1000)
        #expect(replace.shell.signals.count == 1, "the first run's microtask is told to stop")
        replace.finish(.failed)
        #expect(replace.store.runs[first]?.state == .cancelled)
        #expect(replace.scheduledRuns.count == 2 && replace.engine.runs.count == 1)
    }

    @Test("times missed while tesserad was down: none skips them, one runs once, all runs each (capped)")
    func catchUp() throws {
        for policy in ScheduleDefinition.CatchUp.allCases {
            let bench = Bench(slots: 4)
            let schedule = ScheduleDefinition(
                trigger: .cron(try CronExpression.parse("0 * * * *")), overlap: .allow, catchUp: policy)
            let job = scheduled(schedule)
            // Last fired 5 hours and a bit ago.
            bench.clock.wall = utc(2026, 12, 2, 10, 20)
            bench.store.schedules["tick"] = (schedule.summary, utc(2026, 12, 2, 5))
            bench.engine.updateSchedules([job], at: bench.clock)
            let times = bench.scheduledRuns.compactMap { bench.store.runs[$0]?.scheduledFor }
            switch policy {
            case .none: #expect(times.isEmpty)
            case .one: #expect(times == [utc(2026, 12, 2, 10)])
            case .all: #expect(times == (6...10).map { utc(2026, 12, 2, $0) })
            }
            #expect(bench.engine.nextScheduleDue == utc(2026, 12, 2, 11), "\(policy)")
            #expect(bench.store.schedules["tick"]?.lastFire == utc(2026, 12, 2, 10), "\(policy)")
            // A reload keeps an unchanged schedule as it is.
            bench.engine.updateSchedules([job], at: bench.clock)
            #expect(bench.scheduledRuns.count == times.count)
        }
        let capped = Bench(slots: 1)
        let schedule = ScheduleDefinition(
            trigger: .cron(try CronExpression.parse("* * * * *")), overlap: .allow, catchUp: .all)
        capped.clock.wall = utc(2026, 12, 2, 12)
        capped.store.schedules["tick"] = (schedule.summary, utc(2026, 12, 1, 12))
        capped.engine.updateSchedules([scheduled(schedule)], at: capped.clock)
        #expect(capped.scheduledRuns.count == ScheduleDefinition.catchUpLimit)
    }

    @Test("a changed schedule starts from now; a restart neither repeats nor misses a fire")
    func restart() throws {
        let bench = Bench(slots: 4)
        bench.engine.updateSchedules([scheduled(every(60_000))], at: bench.clock)
        bench.tick(60_000)
        bench.drain()
        #expect(bench.scheduledRuns.count == 1)
        // A new daemon 30 s later: the next fire is still a minute after the last.
        let engine = Engine(
            settings: Engine.Settings(slots: 4), store: bench.store,
            files: RunFiles(stateDirectory: bench.stateDirectory))
        engine.updateSchedules([scheduled(every(60_000))], at: Instant(wall: bench.clock.wall + 30, monotonic: 0))
        #expect(bench.scheduledRuns.count == 1, "nothing repeated")
        #expect(engine.nextScheduleDue == bench.clock.wall + 60, "nothing missed")
        // The schedule changed while it was down: from now on, no catch-up.
        let later = Instant(wall: bench.clock.wall + 600, monotonic: 0)
        let changed = Engine(
            settings: Engine.Settings(slots: 4), store: bench.store,
            files: RunFiles(stateDirectory: bench.stateDirectory))
        changed.updateSchedules([scheduled(every(120_000, catchUp: .all))], at: later)
        #expect(bench.scheduledRuns.count == 1)
        #expect(changed.nextScheduleDue == later.wall + 120)
    }
}
