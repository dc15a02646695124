// requests: {memory: auto}: admission by the peak RSS a stage's microtasks
// were seen to use.

import TesseraConfig
import TesseraProtocol
import Testing

@testable import TesseraEngine

@Suite("engine: learned memory")
struct LearnedMemoryTests {
    @Test("memory: auto admits nothing by memory until a microtask has ended, then by the largest peak seen")
    func learned() throws {
        let bench = Bench(slots: 4, capacity: Capacity(cpu: 8, memory: 1000))
        var definition = stage("a", .range(from: 0, to: 12, step: 1))
        definition.requests = ResourceRequests(learnsMemory: true)
        let run = try bench.start(job(definition))
        #expect(bench.pending.count == 4, "nothing is known yet: slots alone count")
        #expect(bench.engine.memoryInUse == 0)
        bench.finish(TaskCompletion(state: .succeeded, maxRSS: 300, finishedAt: 0))
        #expect(bench.engine.learnedMemory(job: "j", stage: "a") == 300)
        #expect(bench.engine.memoryInUse == 300, "the next one started with what was learned")
        bench.finish(TaskCompletion(state: .failed, maxRSS: 450, finishedAt: 0))
        #expect(bench.engine.learnedMemory(job: "j", stage: "a") == 450, "the largest peak, failures too")
        // Finish the rest; then at most two fit in 1000 at 450 each.
        bench.drain()
        #expect(run.state == .failed)
        let second = try bench.start(job(definition))
        #expect(bench.pending.count == 2 && bench.engine.memoryInUse == 900)
        bench.drain()
        #expect(second.state == .succeeded)
        #expect(bench.engine.memoryInUse == 0)
    }

    @Test("a learned peak larger than the capacity still lets one run at a time")
    func largerThanCapacity() throws {
        let bench = Bench(slots: 4, capacity: Capacity(cpu: 8, memory: 1000))
        var definition = stage("a", .range(from: 0, to: 3, step: 1))
        definition.requests = ResourceRequests(learnsMemory: true)
        _ = try bench.start(job(definition))
        bench.pending.removeAll()
        for token in bench.engine.running.keys.sorted() {
            bench.engine.finished(
                token: token, TaskCompletion(state: .succeeded, maxRSS: 5000, finishedAt: 0), at: bench.clock)
        }
        let run = try bench.start(job(definition))
        #expect(bench.pending.count == 1)
        bench.drain()
        #expect(run.state == .succeeded)
    }
}
