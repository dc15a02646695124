// The event log on the simulated clock: what a run's life writes, in
// order, with the fields a reader needs.

import TesseraConfig
import TesseraProtocol
import Testing

@testable import TesseraEngine

@Suite("engine: events")
struct EventTests {
    @Test("a run's life is told in order: created, started, retried, failed, its stage and its end")
    func runLife() throws {
        let bench = Bench(slots: 1)
        let policy = RetryPolicy(attempts: 2, backoff: 10, jitter: false)
        let run = try bench.start(job(stage("a", .range(from: 0, to: 2, step: 1), retry: policy)))
        bench.finish(TaskCompletion(state: .succeeded, finishedAt: 0))
        bench.finish(failed(reason: "exited with code 1: no"))
        bench.advance(10)
        bench.dispatch()
        bench.finish(failed(reason: "exited with code 1: no"))
        #expect(run.state == .failed)
        let events = bench.store.events.filter { $0.run == run.id }
        #expect(
            events.map(\.kind) == [
                "run.created", "run.started", "task.retrying", "task.failed", "stage.finished", "run.finished",
            ])
        #expect(events.map(\.id) == events.map(\.id).sorted())
        let retrying = events[2]
        #expect(retrying.fields["index"] == 1 && retrying.fields["attempt"] == 1 && retrying.fields["stage"] == "a")
        #expect((retrying.fields["retryAt"]?.doubleValue ?? 0) > retrying.time, "due after its backoff")
        #expect(events[3].fields["reason"] == "exited with code 1: no (attempt 2 of 2)")
        #expect(events[5].fields["state"] == "failed" && events[5].fields["counts"]?["succeeded"] == 1)
        #expect(events.allSatisfy { $0.job == run.job.name })
    }

    @Test("a lost microtask is a task.lost event; a cancel, run.cancelling")
    func lostAndCancelled() throws {
        let bench = Bench(slots: 1)
        let run = try bench.start(job(stage("a", .range(from: 0, to: 2, step: 1))))
        let (engine, _) = bench.restarted(slots: 1)
        _ = engine.recover(try bench.store.unfinishedRuns(), at: bench.clock) { _ in run.job }
        let kinds = bench.store.events.filter { $0.run == run.id }.map(\.kind)
        #expect(kinds.suffix(2) == ["run.recovered", "task.lost"], "\(kinds)")
        let recovered = try #require(engine.runs[run.id])
        engine.cancel(recovered, at: bench.clock)
        #expect(bench.store.events.map(\.kind).contains("run.cancelling"))
        #expect(bench.store.events.last?.kind == "run.finished")
    }
}
