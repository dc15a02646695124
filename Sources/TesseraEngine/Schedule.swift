// Schedule.swift
//
// Why this file exists: a job with a `schedule:` starts runs by itself.
// This file decides when (the next fire time of a cron expression in its
// time zone, or of `every`), what a fire does while a run the schedule
// started is unfinished (`overlap`), and what becomes of the times missed
// while tesserad was not running (`catch_up`). Like the rest of the
// engine it has no clock: the shell passes the time in and arms a timer
// for `nextScheduleDue`.
//
// Daylight saving time: a cron expression names local times. A local time
// that does not exist (the hour skipped in spring) fires once, at the
// first instant after the gap; a local time that happens twice (the hour
// repeated in autumn) fires once, at its first occurrence. The last time
// a schedule handled is stored with the run it started, in the same
// transaction, so a restart neither repeats nor misses one.

import TesseraConfig
import TesseraProtocol

/// A job's schedule and where it stands.
final class ScheduledJob {
    var job: JobDefinition
    let schedule: ScheduleDefinition
    /// The last time handled (fired or skipped), or when it was set up.
    var lastFire: Double
    var next: Double?
    /// A fire waiting for the unfinished run to end (`overlap: queue`).
    var queued: Double?

    init(job: JobDefinition, schedule: ScheduleDefinition, lastFire: Double) {
        self.job = job
        self.schedule = schedule
        self.lastFire = lastFire
        next = schedule.nextFire(after: lastFire)
    }
}

/// A job's schedule as `tessera jobs` and `tessera status` show it.
public struct ScheduleInfo: Sendable, Equatable {
    public var job: String
    public var summary: String
    /// The next fire time (wall clock), nil when none is ahead.
    public var next: Double?
    public var lastFire: Double
}

extension ScheduleDefinition {
    /// The first fire time after `t` (seconds since the epoch).
    public func nextFire(after t: Double) -> Double? {
        switch trigger {
        case .every(let ms):
            return t + Double(ms) / 1000
        case .cron(let cron):
            return nextCronFire(cron, after: Int64(t.rounded(.down))).map(Double.init)
        }
    }

    /// The fire times in `(after, upTo]`: how many, and the latest `keep`.
    func fires(after: Double, upTo: Double, keep: Int) -> (count: Int, latest: [Double]) {
        var count = 0
        var latest: [Double] = []
        if case .every(let ms) = trigger {
            let step = Double(ms) / 1000
            let n = Int(((upTo - after) / step).rounded(.down))
            guard n > 0 else { return (0, []) }
            let first = max(1, n - keep + 1)
            return (n, (first...n).map { after + Double($0) * step })
        }
        var t = after
        // Bounded: a minute-by-minute schedule missed for years stops here.
        while count < 10_000_000, let next = nextFire(after: t), next <= upTo {
            count += 1
            latest.append(next)
            if latest.count > keep { latest.removeFirst(latest.count - keep) }
            t = next
        }
        return (count, latest)
    }

    private func nextCronFire(_ cron: CronExpression, after t: Int64) -> Int64? {
        let zone = timezone
        // The civil minute after t's, in the zone.
        let localNow = t + Int64(zone.offset(at: t))
        var civil = (localNow >= 0 ? localNow / 60 : -((-localNow + 59) / 60)) * 60 + 60
        for _ in 0..<1000 {
            guard let local = cron.next(atOrAfter: civil) else { return nil }
            // The instants whose local time is `local`: 0 (a gap), 1 or 2 (a fold).
            let day: Int64 = 18 * 3600
            var candidates: [Int64] = []
            for guess in [local - day, local, local + day] {
                let instant = local - Int64(zone.offset(at: guess))
                if instant + Int64(zone.offset(at: instant)) == local, !candidates.contains(instant) {
                    candidates.append(instant)
                }
            }
            if let first = candidates.min() {
                if first > t { return first }
            } else if let transition = zone.firstTransition(after: local - 2 * day, upTo: local + 2 * day) {
                // A local time skipped: the first instant after the gap.
                if transition > t { return transition }
            }
            civil = local + 60
        }
        return nil
    }
}

extension Engine {
    /// The schedules, the next due first.
    public var schedules: [ScheduleInfo] {
        scheduled.values.map {
            ScheduleInfo(job: $0.job.name, summary: $0.schedule.summary, next: $0.next, lastFire: $0.lastFire)
        }.sorted { ($0.next ?? .infinity, $0.job) < ($1.next ?? .infinity, $1.job) }
    }

    /// When (wall clock) the next schedule is due.
    public var nextScheduleDue: Double? { scheduled.values.compactMap(\.next).min() }

    /// Takes the jobs' schedules. The first call (at start) catches up the
    /// times missed since the stored last fire, as each job's `catch_up`
    /// says; later ones (reloads) keep the state of schedules that did not
    /// change, and start changed or new ones from now.
    public func updateSchedules(_ jobs: [JobDefinition], at now: Instant) {
        let saved: [String: (schedule: String, lastFire: Double)]
        do {
            saved = schedulesLoaded ? [:] : try store.savedSchedules()
        } catch {
            log("cannot read the schedules' last fires: \(error); they start from now")
            saved = [:]
        }
        let catchingUp = !schedulesLoaded
        schedulesLoaded = true
        var kept: [String: ScheduledJob] = [:]
        var missed: [(ScheduledJob, [Double], Int)] = []
        for job in jobs {
            guard let schedule = job.schedule else { continue }
            if let existing = scheduled[job.name], existing.schedule == schedule {
                existing.job = job
                kept[job.name] = existing
                continue
            }
            if catchingUp, let record = saved[job.name], record.schedule == schedule.summary {
                let entry = ScheduledJob(job: job, schedule: schedule, lastFire: record.lastFire)
                kept[job.name] = entry
                let keep = schedule.catchUp == .all ? ScheduleDefinition.catchUpLimit : 1
                let (count, latest) = schedule.fires(after: record.lastFire, upTo: now.wall, keep: keep)
                if count > 0 { missed.append((entry, latest, count)) }
                continue
            }
            // New, or changed: from now on.
            let entry = ScheduledJob(job: job, schedule: schedule, lastFire: now.wall)
            kept[job.name] = entry
            write { try store.recordFire(job: job.name, schedule: schedule.summary, at: now.wall) }
        }
        for (name, entry) in scheduled where kept[name] == nil && entry.queued != nil {
            log("job \(name) has no schedule any more: its queued fire is dropped")
        }
        scheduled = kept
        queuedFires.removeAll { kept[$0] == nil }
        for (entry, latest, count) in missed {
            catchUp(entry, latest: latest, count: count, at: now, why: "while tesserad was not running")
        }
    }

    /// Fires the schedules that are due.
    public func fireSchedules(at now: Instant) {
        for entry in scheduled.values.sorted(by: { $0.job.name < $1.job.name }) {
            guard let next = entry.next, next <= now.wall else { continue }
            let keep = entry.schedule.catchUp == .all ? ScheduleDefinition.catchUpLimit : 1
            let (count, latest) = entry.schedule.fires(after: entry.lastFire, upTo: now.wall, keep: keep)
            if count <= 1 {
                fire(entry, for: latest.first ?? next, at: now)
            } else {
                // The machine slept or the clock jumped: the times passed
                // meanwhile are missed ones.
                catchUp(
                    entry, latest: latest, count: count, at: now, why: "while the clock jumped or the machine slept")
            }
        }
    }

    /// Handles missed times as the job's `catch_up` says.
    private func catchUp(_ entry: ScheduledJob, latest: [Double], count: Int, at now: Instant, why: String) {
        let name = entry.job.name
        guard let last = latest.last else { return }
        switch entry.schedule.catchUp {
        case .none:
            log("schedule of job \(name): \(count) time(s) missed \(why) are skipped (catch_up: none)")
            entry.lastFire = last
            write { try store.recordFire(job: name, schedule: entry.schedule.summary, at: last) }
            entry.next = entry.schedule.nextFire(after: max(last, nextAnchor(entry, now)))
        case .one:
            log("schedule of job \(name): \(count) time(s) missed \(why); one run for them (catch_up: one)")
            fire(entry, for: last, at: now)
        case .all:
            if count > latest.count {
                log(
                    "schedule of job \(name): \(count) time(s) missed \(why); runs for the latest \(latest.count) "
                        + "(catch_up: all starts at most \(ScheduleDefinition.catchUpLimit))")
            } else {
                log("schedule of job \(name): \(count) time(s) missed \(why); a run for each (catch_up: all)")
            }
            for time in latest { fire(entry, for: time, at: now) }
        }
    }

    /// Where the next fire is counted from: a cron schedule from now, an
    /// `every` one from its last fire, so its cadence is kept.
    private func nextAnchor(_ entry: ScheduledJob, _ now: Instant) -> Double {
        if case .every = entry.schedule.trigger { return entry.lastFire }
        return now.wall
    }

    /// One fire of a schedule, for the time `time`.
    private func fire(_ entry: ScheduledJob, for time: Double, at now: Instant) {
        let name = entry.job.name
        entry.lastFire = time
        entry.next = entry.schedule.nextFire(after: max(time, nextAnchor(entry, now)))
        let unfinished = runs.values.filter { $0.job.name == name && $0.scheduledFor != nil }.sorted { $0.id < $1.id }
        let summary = entry.schedule.summary
        if !unfinished.isEmpty {
            let ids = unfinished.map { String($0.id) }.joined(separator: ", ")
            switch entry.schedule.overlap {
            case .skip:
                log(
                    "schedule of job \(name) for \(formatInstant(time)) skipped: run \(ids) is unfinished (overlap: skip)"
                )
                emit(
                    "schedule.skipped", job: name, at: now,
                    ["for": .double(time), "reason": .string("run \(ids) is unfinished (overlap: skip)")])
                write { try store.recordFire(job: name, schedule: summary, at: time) }
                return
            case .queue:
                if entry.queued != nil {
                    log(
                        "schedule of job \(name) for \(formatInstant(time)): a run already waits for run \(ids); one is enough"
                    )
                }
                entry.queued = time
                write { try store.recordFire(job: name, schedule: summary, at: time) }
                return
            case .replace:
                for run in unfinished {
                    log("schedule of job \(name) for \(formatInstant(time)) replaces run \(run.id) (overlap: replace)")
                    cancel(run, at: now)
                }
            case .allow:
                break
            }
        }
        start(entry, for: time, at: now)
    }

    private func start(_ entry: ScheduledJob, for time: Double, at now: Instant) {
        do {
            let run = try createRun(
                RunRequest(job: entry.job, startedBy: "schedule", scheduledFor: time), at: now)
            log("run \(run.id) of job \(entry.job.name) started by its schedule, for \(formatInstant(time))")
        } catch {
            log("schedule of job \(entry.job.name) for \(formatInstant(time)): the run could not start: \(error)")
            write { try store.recordFire(job: entry.job.name, schedule: entry.schedule.summary, at: time) }
        }
    }

    /// Starts the fires that waited for a run to end (`overlap: queue`).
    func startQueuedFires(at now: Instant) {
        let names = queuedFires
        queuedFires.removeAll()
        for name in names {
            guard let entry = scheduled[name], let time = entry.queued,
                !runs.values.contains(where: { $0.job.name == name && $0.scheduledFor != nil })
            else { continue }
            entry.queued = nil
            start(entry, for: time, at: now)
        }
    }
}

/// An instant as the log says it: ISO 8601, UTC.
func formatInstant(_ t: Double) -> String {
    let seconds = Int64(t.rounded(.down))
    let day = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400)
    let date = civil(fromDays: day)
    let rest = Int(seconds - day * 86400)
    func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
    return
        "\(date.year)-\(two(date.month))-\(two(date.day))T\(two(rest / 3600)):\(two(rest / 60 % 60)):\(two(rest % 60))Z"
}
