// Retries on the simulated clock: backoff and its jitter, what is and is
// not retried, a waiting retry across a restart and a cancel.

import TesseraConfig
import TesseraProtocol
import Testing

@testable import TesseraEngine

func failed(
    exit: Int? = 1, kind: FailureKind? = nil, permanent: Bool = false, reason: String = "exited with code 1"
) -> TaskCompletion {
    TaskCompletion(
        state: .failed, exitCode: exit, reason: reason, finishedAt: 0, failure: kind, permanent: permanent)
}

@Suite("engine: retries")
struct RetryTests {
    @Test("backoff doubles from backoff up to max_backoff; full jitter stays within [0, that]")
    func backoffBounds() {
        let policy = RetryPolicy(attempts: 10, backoff: 100, maxBackoff: 1000, jitter: true)
        #expect((1...6).map(policy.ceiling(afterAttempt:)) == [100, 200, 400, 800, 1000, 1000])
        var generator = SplitMix(seed: 7)
        for attempt in 1...9 {
            let ceiling = policy.ceiling(afterAttempt: attempt)
            var delays: [UInt64] = []
            for _ in 0..<2000 {
                guard case .retry(let delay) = policy.decide(attempt: attempt, failed(), random: { generator.unit() })
                else {
                    Issue.record("attempt \(attempt) of 10 was not retried")
                    return
                }
                delays.append(delay)
            }
            #expect(delays.allSatisfy { $0 <= ceiling }, "attempt \(attempt)")
            // Spread over the whole range, not bunched: both quarters at the ends are hit.
            #expect(delays.contains { $0 < ceiling / 4 } && delays.contains { $0 > ceiling * 3 / 4 })
        }
        #expect(policy.decide(attempt: 3, failed(), random: { 0 }) == .retry(after: 0))
        #expect(policy.decide(attempt: 3, failed(), random: { 0.999_999_9 }) == .retry(after: 400))
        var steady = policy
        steady.jitter = false
        #expect(steady.decide(attempt: 2, failed(), random: { 0 }) == .retry(after: 200))
        let huge = RetryPolicy(attempts: 100, backoff: 1 << 40, maxBackoff: 1 << 50)
        #expect(huge.ceiling(afterAttempt: 99) == 1 << 50, "no overflow")
    }

    @Test("permanent failures, kinds not in `on` and the last attempt are not retried, and say so")
    func notRetried() {
        let policy = RetryPolicy(attempts: 3, on: [.failed, .timeout], permanentExitCodes: [2])
        let random = { 0.5 }
        #expect(
            policy.decide(attempt: 1, failed(exit: 2), random: random) == .final(note: "permanent failure, not retried")
        )
        #expect(
            policy.decide(attempt: 1, failed(permanent: true), random: random)
                == .final(note: "permanent failure, not retried"))
        #expect(policy.decide(attempt: 1, failed(kind: .memory), random: random) == .final(note: nil))
        #expect(policy.decide(attempt: 1, failed(kind: .signal), random: random) == .final(note: nil))
        #expect(policy.decide(attempt: 1, failed(kind: .timeout), random: random) != .final(note: nil))
        #expect(policy.decide(attempt: 3, failed(), random: random) == .final(note: "attempt 3 of 3"))
        #expect(RetryPolicy.none.decide(attempt: 1, failed(), random: random) == .final(note: nil))
        let succeeded = TaskCompletion(state: .succeeded, finishedAt: 0)
        #expect(policy.decide(attempt: 1, succeeded, random: random) == .final(note: nil))
    }

    @Test("a microtask that fails until its third attempt waits out each backoff and succeeds")
    func thirdTime() throws {
        let bench = Bench(slots: 2)
        let policy = RetryPolicy(attempts: 3, backoff: 1000, jitter: false)
        let run = try bench.start(job(stage("a", .range(from: 0, to: 1, step: 1), retry: policy)))
        bench.finish(failed())
        #expect(bench.pending.isEmpty, "not before its backoff")
        #expect(run.counts.queued == 1 && run.state == .running)
        #expect(bench.store.tasks[run.id]?[0]?.retryAt == bench.clock.wall + 1)
        #expect(bench.engine.nextRetryDue == bench.clock.monotonic + 1000)
        bench.advance(999)
        bench.dispatch()
        #expect(bench.pending.isEmpty)
        bench.advance(1)
        bench.dispatch()
        #expect(bench.pending.map(\.attempt) == [2])
        bench.finish(failed())
        bench.advance(1999)
        bench.dispatch()
        #expect(bench.pending.isEmpty, "the second backoff is twice the first")
        bench.advance(1)
        bench.dispatch()
        #expect(bench.pending.map(\.attempt) == [3])
        bench.finish(TaskCompletion(state: .succeeded, finishedAt: 0))
        #expect(run.state == .succeeded)
        let history = bench.store.tasks[run.id]?[0]?.history.map(\.state)
        #expect(history == [.failed, .failed, .succeeded])
        #expect(bench.store.tasks[run.id]?[0]?.attempts == 3)
    }

    @Test("the last attempt's failure is final and fails the stage; the reason counts the attempts")
    func exhausted() throws {
        let bench = Bench(slots: 1)
        let run = try bench.start(
            job(stage("a", .range(from: 0, to: 1, step: 1), retry: RetryPolicy(attempts: 2, backoff: 10))))
        bench.finish(failed())
        bench.advance(10)
        bench.dispatch()
        bench.finish(failed())
        #expect(run.state == .failed)
        #expect(bench.store.tasks[run.id]?[0]?.reason == "exited with code 1 (attempt 2 of 2)")
    }

    @Test("a waiting retry does not hold a slot: other microtasks and runs go on meanwhile")
    func waitingHoldsNothing() throws {
        let bench = Bench(slots: 1)
        let policy = RetryPolicy(attempts: 2, backoff: 5000, jitter: false)
        let first = try bench.start(job(stage("a", .range(from: 0, to: 2, step: 1), retry: policy)))
        bench.finish(failed())
        #expect(bench.pending.map(\.index) == [1])
        let second = try bench.start(job(stage("b", .range(from: 0, to: 1, step: 1))))
        bench.finish(TaskCompletion(state: .succeeded, finishedAt: 0))
        #expect(bench.pending.first?.run === second)
        bench.finish(TaskCompletion(state: .succeeded, finishedAt: 0))
        #expect(second.state == .succeeded && first.state == .running)
        bench.advance(5000)
        bench.dispatch()
        #expect(bench.pending.map(\.index) == [0])
        bench.finish(TaskCompletion(state: .succeeded, finishedAt: 0))
        #expect(first.state == .succeeded)
    }

    @Test("a waiting retry survives a restart, due at the time stored")
    func survivesRestart() throws {
        let bench = Bench(slots: 2)
        let policy = RetryPolicy(attempts: 2, backoff: 60_000, jitter: false)
        let run = try bench.start(job(stage("a", .range(from: 0, to: 1, step: 1), retry: policy)))
        bench.finish(failed())
        // Twenty seconds later the daemon restarts; its monotonic clock starts again.
        let restart = Instant(wall: bench.clock.wall + 20, monotonic: 5)
        let (engine, shell) = bench.restarted()
        #expect(engine.recover(try bench.store.unfinishedRuns(), at: restart) { _ in run.job }.isEmpty)
        engine.dispatch(at: restart)
        #expect(shell.started.isEmpty)
        #expect(engine.nextRetryDue == 5 + 40_000)
        engine.dispatch(at: Instant(wall: restart.wall + 39.9, monotonic: 5 + 39_900))
        #expect(shell.started.isEmpty)
        engine.dispatch(at: Instant(wall: restart.wall + 40, monotonic: 5 + 40_000))
        #expect(shell.started.map(\.attempt) == [2])
    }

    @Test("cancelling a run cancels its waiting retries")
    func cancelled() throws {
        let bench = Bench(slots: 2)
        let policy = RetryPolicy(attempts: 3, backoff: 1000, jitter: false)
        let run = try bench.start(job(stage("a", .range(from: 0, to: 2, step: 1), retry: policy)))
        bench.finish(failed())
        bench.finish(failed())
        #expect(run.counts.queued == 2)
        bench.engine.cancel(run, at: bench.clock)
        #expect(run.state == .cancelled)
        #expect(bench.store.tasks[run.id]?.values.allSatisfy { $0.state == .cancelled && $0.retryAt == nil } == true)
        bench.advance(10_000)
        bench.dispatch()
        #expect(bench.pending.isEmpty)
    }

    @Test("a lost microtask fails unless retry.on has lost")
    func lostByDefault() throws {
        let bench = Bench(slots: 1)
        let run = try bench.start(job(stage("a", .range(from: 0, to: 1, step: 1))))
        let (engine, shell) = bench.restarted()
        _ = engine.recover(try bench.store.unfinishedRuns(), at: bench.clock) { _ in run.job }
        engine.dispatch(at: bench.clock)
        #expect(shell.started.isEmpty)
        #expect(bench.store.runs[run.id]?.state == .failed)
        #expect(bench.store.tasks[run.id]?[0]?.reason == "lost: tesserad stopped while it ran")
    }
}

/// A small deterministic generator for the jitter.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func unit() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }
}
