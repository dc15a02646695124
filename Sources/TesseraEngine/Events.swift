// Events.swift
//
// Why this file exists: an operator asks "what happened in the last hour?"
// of a daemon that runs thousands of microtasks, and a program wants to
// react to runs ending without polling. The event log answers both: a
// durable, ordered record of what changed (runs created, started,
// finished; microtasks failed, retried, lost; reloads, admission, workers),
// each with an id, a time and fields. An event is written in the same
// transaction as the change it tells of, so the log and the state never
// disagree after a crash: what was rolled back was never told, and what is
// committed is in the log, with ids that follow each other.
// Per-microtask successes are not events (there are too many; counts and
// metrics carry them).

import TesseraProtocol

/// One entry of the event log.
public struct EventRecord: Sendable, Equatable {
    /// Given by the store; 0 until it is stored.
    public var id: Int64
    public var time: Double
    /// What happened, as `subject.verb` (`run.finished`, `task.failed`).
    public var kind: String
    public var job: String?
    public var run: Int64?
    /// What the event is about, by kind: an object of strings, numbers and
    /// booleans.
    public var fields: JSON

    public init(id: Int64 = 0, time: Double, kind: String, job: String?, run: Int64?, fields: JSON) {
        self.id = id
        self.time = time
        self.kind = kind
        self.job = job
        self.run = run
        self.fields = fields
    }
}

/// Which events a reader wants.
public struct EventFilter: Sendable, Equatable {
    public var job: String?
    public var run: Int64?
    /// Events at or after this wall-clock time.
    public var since: Double?

    public init(job: String? = nil, run: Int64? = nil, since: Double? = nil) {
        self.job = job
        self.run = run
        self.since = since
    }
}

extension Engine {
    /// Records an event in the current transaction (the one that records
    /// the change it tells of).
    public func emit(_ kind: String, job: String? = nil, run: Int64? = nil, at now: Instant, _ fields: JSON = [:]) {
        write {
            try store.appendEvent(EventRecord(time: now.wall, kind: kind, job: job, run: run, fields: fields))
        }
    }

    func emit(_ kind: String, _ run: EngineRun, at now: Instant, _ fields: JSON = [:]) {
        emit(kind, job: run.job.name, run: run.id, at: now, fields)
    }
}

extension JSON {
    /// This object with one more member.
    public func adding(_ key: String, _ value: JSON) -> JSON {
        guard case .object(var members) = self else { return self }
        members.append((key, value))
        return .object(members)
    }
}
