// What the daemon keeps beside the engine's picture of runs and
// microtasks: the I/O side of them. The engine (TesseraEngine) owns the
// runs, their stages, queues and counts; the daemon only remembers which
// worker a run's microtasks go to, who watches it, and which worker and
// borrowed uid each running microtask has.

import TesseraEngine

/// The daemon's side of a run in progress.
final class RunShell {
    /// The worker generation the run started with (see Daemon.worker(for:)).
    var worker: WorkerSlot?
    /// Clients watching this run.
    var watchers: [Watcher] = []
}

/// The daemon's side of a running microtask.
struct TaskShell {
    let worker: WorkerSlot
    /// The uid lent to this microtask for `user: dynamic`.
    let dynamicUID: UInt32?
    /// The stage whose uid it was lent: its uids stay with it (see
    /// Daemon.stageUIDs).
    var uidStage: StageKey?
    /// Its lane (Engine), whose uid it shares.
    var lane: UInt64 = 0
    let run: Int64
    let index: Int
}

/// A watcher of a run: a connection with a WatchRun call in progress.
final class Watcher {
    let connection: Connection
    init(connection: Connection) { self.connection = connection }
}

struct StageKey: Hashable {
    let run: Int64
    let stage: Int
}
