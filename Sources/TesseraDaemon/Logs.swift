// What microtasks wrote, as clients follow it (StreamOutput, `tessera
// logs`): the stored output of the microtasks that ended, in index order,
// and the output of running ones as it is written, read from the worker
// (PEEK/OUTPUT frames) every 200 ms while someone follows. A follower is
// a few cursors: where its walk through the store is, and how much of each
// running microtask it has been sent. Nothing is queued for it: output is
// read from the worker or the store only while its connection has less
// than `logBacklog` unsent, and a microtask's output is bounded by its
// stage's `output` limit, so a slow reader costs the daemon nothing but
// its state.

internal import CTesseraWire
import TesseraEngine
import TesseraProtocol
import TesseraStore

/// A StreamOutput call in progress on one connection.
final class LogFollower {
    let run: Int64
    /// The microtasks it is about (a stage's, one, or the whole run's).
    let range: Range<Int>
    let single: Bool
    let stderr: Bool
    let follow: Bool
    /// The walk through the store: the next index to read.
    var cursor: Int
    var walkDone = false
    /// Running microtasks followed live: bytes sent of each.
    var live: [Int: UInt64] = [:]
    /// Live microtasks with a PEEK unanswered.
    var peeking: Set<Int> = []
    /// Live microtasks that were answered at least once (without follow,
    /// the stream ends when every one has been).
    var answered: Set<Int> = []
    /// Microtasks that ended since the last pump (sent once committed).
    var ended: [Int] = []
    /// Ended microtasks at or after the cursor already sent, which the walk
    /// must skip.
    var handled: Set<Int> = []
    var started = false

    init(run: Int64, range: Range<Int>, single: Bool, stderr: Bool, follow: Bool) {
        self.run = run
        self.range = range
        self.single = single
        self.stderr = stderr
        self.follow = follow
        cursor = range.lowerBound
    }
}

/// A follower waits while its connection has this much unsent.
private let logBacklog = 1 << 20
/// Bytes of each stream asked of the worker per PEEK.
private let peekBytes: UInt32 = 64 << 10
/// A reply holds chunks until they pass this many bytes.
private let logReplyBytes = 4 << 20
/// How often running microtasks are asked for their output.
private let peekInterval: UInt64 = 200

extension Daemon {
    func streamOutput(_ p: JSON, more: Bool, on connection: Connection) throws(ControlError) -> VarlinkReply? {
        let id = try p.requiredInt("run")
        let info = try runInfo(id)
        guard more else { throw ControlError(ServiceError.expectedMore, [:]) }
        var range = 0..<max(info.total, 0)
        var single = false
        if let stage = try p.optionalString("stage") {
            let stages = (try? store.stages(run: id)) ?? []
            guard let record = stages.first(where: { $0.name == stage }) else {
                throw ControlError(ManagerError.stageNotFound, ["run": .int(id), "stage": .string(stage)])
            }
            range = record.firstIndex.map { $0..<($0 + (record.count ?? 0)) } ?? 0..<0
        }
        if let index = try p.optionalInt("index") {
            guard index >= 0, index < Int64(Int32.max), (try? store.output(run: id, index: Int(index))) != nil else {
                throw ControlError(ManagerError.taskNotFound, ["run": .int(id), "index": .int(index)])
            }
            range = Int(index)..<Int(index) + 1
            single = true
        }
        let follower = LogFollower(
            run: id, range: range, single: single, stderr: p["stderr"]?.boolValue ?? false,
            follow: p["follow"]?.boolValue ?? false)
        connection.logs = follower
        logFollowers[ObjectIdentifier(connection)] = connection
        logsStarting = true
        return nil
    }

    /// A followed microtask ended: its stored output goes out after the commit.
    func noteOutputEnded(run: Int64, index: Int) {
        for connection in logFollowers.values {
            guard let follower = connection.logs, follower.run == run, follower.range.contains(index) else { continue }
            follower.ended.append(index)
        }
    }

    /// OUTPUT from the worker: the chunk goes to each follower that asked
    /// from that offset and keeps up.
    func forwardOutput(
        run: Int64, index: Int, attempt: Int, offsets: (stdout: UInt64, stderr: UInt64), stdout: [UInt8],
        stderr: [UInt8]
    ) {
        for connection in logFollowers.values {
            guard let follower = connection.logs, follower.run == run, let sent = follower.live[index],
                sent == (follower.stderr ? offsets.stderr : offsets.stdout)
            else { continue }
            // An answer from where this follower is (perhaps to another's
            // PEEK): it counts as its own.
            follower.peeking.remove(index)
            follower.answered.insert(index)
            let bytes = follower.stderr ? stderr : stdout
            guard !bytes.isEmpty, connection.stream.pendingWriteBytes < logBacklog else { continue }
            follower.live[index] = sent + UInt64(bytes.count)
            follower.started = true
            connection.write(
                VarlinkReply(parameters: ["chunks": [chunk(index, attempt, bytes, end: false)]], continues: true).json
                    .varlinkFrame)
        }
        if !logFollowers.isEmpty { pumpLogs(peeking: false) }
    }

    private func chunk(_ index: Int, _ attempt: Int, _ bytes: [UInt8], end: Bool) -> JSON {
        let (text, base64) = bytesJSON(bytes)
        return [
            "index": .int(Int64(index)), "attempt": .int(Int64(attempt)), "text": text, "base64": base64,
            "end": .bool(end),
        ]
    }

    /// What a stored microtask wrote to the follower's stream, from `offset`.
    private func storedOutput(_ follower: LogFollower, _ index: Int, from offset: UInt64) -> [UInt8] {
        guard let output = try? store.output(run: follower.run, index: index) else { return [] }
        let bytes = follower.stderr ? output.stderrBytes : output.stdoutBytes
        return offset < UInt64(bytes.count) ? Array(bytes[Int(offset)...]) : []
    }

    /// Moves every follower on as far as its client keeps up; runs again
    /// every 200 ms while any follows. Running microtasks are asked for
    /// their output at those times only (`peeking`), and when a follower
    /// first meets them.
    func pumpLogs(peeking: Bool = false) {
        for (key, connection) in logFollowers {
            guard let follower = connection.logs, !connection.isClosed else {
                logFollowers.removeValue(forKey: key)
                continue
            }
            guard connection.stream.pendingWriteBytes < logBacklog else { continue }
            var chunks: [JSON] = []
            var bytes = 0
            var finishedSingle = false
            // Microtasks that ended: the rest of their output.
            let ended = follower.ended
            follower.ended.removeAll()
            for index in ended {
                let offset = follower.live.removeValue(forKey: index)
                follower.peeking.remove(index)
                follower.answered.remove(index)
                guard offset != nil || (follower.follow && (index < follower.cursor || follower.walkDone)) else {
                    continue
                }
                if index >= follower.cursor && !follower.walkDone { follower.handled.insert(index) }
                let rest = storedOutput(follower, index, from: offset ?? 0)
                let task = try? store.tasks(run: follower.run, stage: nil, from: index, limit: 1).first
                chunks.append(chunk(index, task?.attempt ?? 0, rest, end: true))
                bytes += rest.count
                if follower.single, task?.state.isFinal == true { finishedSingle = true }
            }
            // The walk through the store.
            while !follower.walkDone, bytes < logReplyBytes {
                let tasks = (try? store.tasks(run: follower.run, stage: nil, from: follower.cursor, limit: 64)) ?? []
                for task in tasks where task.index < follower.range.upperBound && bytes < logReplyBytes {
                    follower.cursor = task.index + 1
                    if task.state.isFinal {
                        guard !follower.handled.contains(task.index) else { continue }
                        let output = storedOutput(follower, task.index, from: 0)
                        if !output.isEmpty || follower.single {
                            chunks.append(chunk(task.index, task.attempt, output, end: true))
                            bytes += output.count
                        }
                        if follower.single { finishedSingle = true }
                    }
                }
                follower.handled = follower.handled.filter { $0 >= follower.cursor }
                if tasks.count < 64 || follower.cursor >= follower.range.upperBound
                    || tasks.last.map({ $0.index >= follower.range.upperBound }) == true
                {
                    follower.walkDone = true
                    follower.cursor = follower.range.upperBound
                    follower.handled.removeAll()
                }
            }
            // Running microtasks: ask the worker for what they wrote.
            for (token, shell) in taskShells where shell.run == follower.run && follower.range.contains(shell.index) {
                var new = false
                if follower.live[shell.index] == nil {
                    // Followed live from here on; the walk skips it.
                    follower.live[shell.index] = 0
                    if shell.index >= follower.cursor { follower.handled.insert(shell.index) }
                    new = true
                }
                guard peeking || new, !follower.peeking.contains(shell.index) else { continue }
                follower.peeking.insert(shell.index)
                var frame = FrameWriter(type: UInt8(TW_MSG_PEEK.rawValue))
                frame.u64(token)
                let sent = follower.live[shell.index] ?? 0
                frame.u64(follower.stderr ? 0 : sent)
                frame.u64(follower.stderr ? sent : 0)
                frame.u32(peekBytes)
                shell.worker.process.send(frame)
            }
            let runActive = engine.runs[follower.run] != nil
            let done: Bool
            if follower.follow {
                done = finishedSingle || (!runActive && follower.walkDone && follower.live.isEmpty)
            } else {
                done = follower.walkDone && follower.live.keys.allSatisfy { follower.answered.contains($0) }
            }
            guard !chunks.isEmpty || !follower.started || done else { continue }
            follower.started = true
            connection.write(
                VarlinkReply(parameters: ["chunks": .array(chunks)], continues: !done).json.varlinkFrame)
            if done {
                connection.logs = nil
                logFollowers.removeValue(forKey: key)
                connection.resume()
            }
        }
        if !logFollowers.isEmpty, !logTimerArmed {
            logTimerArmed = true
            logTimer.start(after: peekInterval, repeatEvery: peekInterval) { [unowned self] in
                if self.logFollowers.isEmpty {
                    self.logTimer.stop()
                    self.logTimerArmed = false
                } else {
                    self.pumpLogs(peeking: true)
                }
            }
        }
    }
}
