// Streaming a run's results (ListResults with "more"): a batch of
// microtasks at a time, read from the store by index (keyset pagination),
// and the next batch only once the client has taken most of the last, so
// neither the daemon nor a slow client ever holds a whole run's results.

import TesseraProtocol
import TesseraStore

/// A ListResults stream in progress on one connection.
final class ResultStream {
    let run: Int64
    let stage: String?
    /// The next index to read.
    var next = 0

    init(run: Int64, stage: String?) {
        self.run = run
        self.stage = stage
    }
}

/// Rows per reply.
private let resultBatch = 500
/// A reply holds rows until their results pass this many bytes.
private let resultReplyBytes = 4 << 20
/// A stream waits while its connection has this much unsent.
private let resultBacklog = 1 << 20

extension Daemon {
    /// Sends the next batches of every result stream whose client keeps
    /// up; runs again shortly while any stream is unfinished.
    func pumpResults() {
        var waiting = false
        for connection in connections.values {
            guard let stream = connection.results else { continue }
            var batches = 0
            while connection.results != nil, connection.stream.pendingWriteBytes < resultBacklog, batches < 8 {
                batches += 1
                let tasks: [TaskInfo]
                do {
                    tasks = try store.tasks(run: stream.run, stage: stream.stage, from: stream.next, limit: resultBatch)
                } catch {
                    connection.results = nil
                    endStream(on: connection, failing: error)
                    break
                }
                // A reply stays within a few MiB however large the results.
                var rows: [JSON] = []
                var bytes = 0
                for task in tasks where rows.isEmpty || bytes < resultReplyBytes {
                    bytes += task.resultBytes?.count ?? 0
                    rows.append(task.json)
                    stream.next = task.index + 1
                }
                let last = tasks.count < resultBatch && rows.count == tasks.count
                connection.write(VarlinkReply(parameters: ["tasks": .array(rows)], continues: !last).json.varlinkFrame)
                if last {
                    connection.results = nil
                    connection.resume()
                }
            }
            if connection.results != nil { waiting = true }
        }
        if waiting {
            resultTimer.start(after: 2) { [unowned self] in self.pumpResults() }
        }
    }
}

extension Daemon {
    /// Ends a stream (results, events) whose store read failed: the error
    /// is its last reply, and the connection's later calls go on.
    func endStream(on connection: Connection, failing error: any Error) {
        logError("control: \(error)")
        connection.write(
            VarlinkReply.failure(ManagerError.invalidParameter, ["parameter": "", "reason": .string("\(error)")])
                .json.varlinkFrame)
        connection.resume()
    }
}
