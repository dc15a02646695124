// Deleting old runs (retention: in tessera.yaml and in job files, and
// DeleteRun). Once a minute the finished runs past their retention are
// marked for deletion, which hides them from every read at once; their
// rows then go `deleteBatch` microtasks (with attempts and output) at a
// time, for at most `deleteBudget` per tick of a 5 ms timer, so a control
// call waits at most a millisecond and one commit for a prune. When a run is gone
// its events go with it, a `run.deleted` event says so, and the freed
// pages go back to the file system a few at a time (incremental vacuum).

import TesseraConfig
import TesseraEngine
import TesseraProtocol
import TesseraStore

/// Microtasks deleted per statement.
private let deleteBatch = 64
/// How long one tick may delete for (µs): a control call that arrives
/// meanwhile waits at most this, and the tick's commit.
private let deleteBudget: UInt64 = 1000
/// How often a tick runs while there is something to delete (ms).
private let deleteInterval: UInt64 = 5
/// Free pages given back per tick.
private let reclaimPages = 128
/// How often runs past their retention are looked for (ms).
private let retentionInterval: UInt64 = 60_000

extension Daemon {
    /// Looks for expired runs now and then every minute.
    func startRetention() {
        retentionTimer.start(after: 1000, repeatEvery: retentionInterval) { [unowned self] in
            self.applyRetention()
        }
    }

    /// A run ended: retention is looked at a second later (once, however
    /// many runs end meanwhile), so max_runs holds without waiting a minute.
    func retentionSoon() {
        guard !retentionSoonArmed else { return }
        retentionSoonArmed = true
        retentionSoonTimer.start(after: 1000) { [unowned self] in
            self.retentionSoonArmed = false
            self.applyRetention()
        }
    }

    func applyRetention() {
        guard storeFailure == nil, !stopped else { return }
        let server = config.retention
        let jobs = loaded.jobs
        do {
            let marked = try store.markExpiredRuns(now: wallClockSeconds(), server: server) { job in
                jobs[job]?.retention.overlaid(on: server) ?? server
            }
            if marked > 0 {
                logInfo("retention: deleting \(marked) finished run(s) past \(server.summary) or their job's")
            }
        } catch {
            storeFailure = "cannot apply retention: \(error)"
            return
        }
        startDeleting()
    }

    /// Deletes the runs marked for deletion, a batch per timer tick.
    func startDeleting() {
        guard !deleteTimerArmed else { return }
        deleteTimerArmed = true
        deleteTimer.start(after: 0, repeatEvery: deleteInterval) { [unowned self] in self.deleteSome() }
    }

    private func deleteSome() {
        guard storeFailure == nil, !stopped else { return stopDeleting() }
        do {
            let began = monotonicMicroseconds()
            while let run = try store.nextDeletion() {
                if try store.deleteSome(run: run, limit: deleteBatch) {
                    engine.files.remove(run: run)
                    engine.emit("run.deleted", run: nil, at: now(), ["id": .int(run)])
                    logDebug("run \(run) deleted")
                }
                if monotonicMicroseconds() - began >= deleteBudget { return }
            }
            if try store.reclaim(pages: reclaimPages) == 0 { stopDeleting() }
        } catch {
            storeFailure = "cannot delete runs: \(error)"
            stopDeleting()
        }
    }

    private func stopDeleting() {
        deleteTimer.stop()
        deleteTimerArmed = false
    }

    /// DeleteRun: a finished run is hidden at once and deleted in batches.
    func deleteRun(_ id: Int64) throws(ControlError) -> VarlinkReply {
        let info = try runInfo(id)
        guard engine.runs[id] == nil, info.state.isFinal else {
            throw ControlError(
                ManagerError.invalidParameter,
                ["parameter": "id", "reason": .string("run \(id) has not ended; cancel it first")])
        }
        do {
            try store.markForDeletion(run: id)
        } catch {
            throw ControlError(ManagerError.invalidParameter, ["parameter": "", "reason": .string("\(error)")])
        }
        logInfo("run \(id) deleted by request", metadata: ["job": "\(info.job)", "run": "\(id)"])
        startDeleting()
        return VarlinkReply(parameters: ["run": info.json])
    }
}
