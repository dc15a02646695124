// The event log as clients read it (ListEvents): history from the store,
// then, with "more", the live stream. A follower is only a cursor (the last
// event id it has been sent) and a filter; events are read from the store
// in batches after the commit that wrote them, and only while the
// follower's connection has less than `eventBacklog` unsent, so a slow
// reader costs the daemon a cursor, never a queue. A client that
// reconnects asks for the events after the last id it saw and misses none.

import TesseraEngine
import TesseraProtocol
import TesseraStore

/// A ListEvents stream in progress on one connection.
final class EventFollower {
    let filter: EventFilter
    /// Every event up to this id has been considered (sent or filtered out).
    var cursor: Int64
    /// Events read at the call (a tail), sent in the first reply.
    var initial: [EventRecord]
    /// Whether the first reply went out.
    var started = false

    init(filter: EventFilter, cursor: Int64, initial: [EventRecord]) {
        self.filter = filter
        self.cursor = cursor
        self.initial = initial
    }
}

/// Events per reply.
private let eventBatch = 500
/// A follower waits while its connection has this much unsent.
private let eventBacklog = 1 << 20

extension EventRecord {
    var json: JSON {
        [
            "id": .int(id), "time": .double(time), "kind": .string(kind), "job": .optional(job, JSON.string),
            "run": .optional(run, JSON.int), "fields": fields,
        ]
    }
}

extension Daemon {
    /// ListEvents: returns the reply for a plain call, or nil when the
    /// call follows (the replies come from pumpEvents).
    func listEvents(_ p: JSON, more: Bool, on connection: Connection) throws(ControlError) -> VarlinkReply? {
        var filter = EventFilter()
        filter.job = try p.optionalString("job")
        filter.run = try p.optionalInt("run")
        if let since = p["since"], !since.isNull {
            guard let seconds = since.doubleValue else {
                throw ControlError(ServiceError.invalidParameter, ["parameter": "since"])
            }
            filter.since = seconds
        }
        if let run = filter.run { _ = try runInfo(run) }
        let after = try p.optionalInt("after")
        let tail = try p.optionalInt("tail")
        let limit = try p.optionalInt("limit") ?? 1000
        guard limit > 0, (tail ?? 0) >= 0, (after ?? 0) >= 0 else {
            throw ControlError(
                ServiceError.invalidParameter,
                ["parameter": .string(limit <= 0 ? "limit" : tail != nil ? "tail" : "after")])
        }
        let events: [EventRecord]
        let cursor: Int64
        do {
            if let after {
                events = more ? [] : try store.events(after: after, matching: filter, limit: Int(min(limit, 10_000)))
                cursor = after
            } else if let tail {
                events = try store.lastEvents(matching: filter, count: Int(min(tail, 10_000)))
                cursor = store.lastEventID
            } else {
                events = more ? [] : try store.events(after: 0, matching: filter, limit: Int(min(limit, 10_000)))
                cursor = 0
            }
        } catch {
            logError("control: \(error)")
            throw ControlError(ManagerError.invalidParameter, ["parameter": "", "reason": .string("\(error)")])
        }
        guard more else { return VarlinkReply(parameters: ["events": .array(events.map(\.json))]) }
        connection.following = EventFollower(filter: filter, cursor: cursor, initial: events)
        eventsStarting = true
        return nil
    }

    /// Sends every follower the events committed since its cursor, a batch
    /// at a time while its client keeps up; runs again shortly while one
    /// is behind.
    func pumpEvents() {
        var behind = false
        let latest = store.lastEventID
        for connection in connections.values {
            guard let follower = connection.following else { continue }
            var batches = 0
            while connection.following != nil, connection.stream.pendingWriteBytes < eventBacklog, batches < 8 {
                var events = follower.initial
                follower.initial = []
                if follower.cursor < latest {
                    let read: [EventRecord]
                    do {
                        read = try store.events(after: follower.cursor, matching: follower.filter, limit: eventBatch)
                    } catch {
                        connection.following = nil
                        endStream(on: connection, failing: error)
                        break
                    }
                    follower.cursor = read.count < eventBatch ? latest : read.last!.id
                    events += read
                }
                guard !events.isEmpty || !follower.started else { break }
                follower.started = true
                batches += 1
                // Following one run ends with that run.
                var ended = false
                if follower.filter.run != nil, let end = events.firstIndex(where: { $0.kind == "run.finished" }) {
                    events = Array(events[...end])
                    ended = true
                }
                connection.write(
                    VarlinkReply(parameters: ["events": .array(events.map(\.json))], continues: !ended).json
                        .varlinkFrame)
                if ended {
                    connection.following = nil
                    connection.resume()
                }
            }
            if let follower = connection.following, follower.cursor < latest || !follower.started { behind = true }
        }
        if behind {
            eventTimer.start(after: 5) { [unowned self] in self.pumpEvents() }
        }
    }
}
