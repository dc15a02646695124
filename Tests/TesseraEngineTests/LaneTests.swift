// Lanes: a slot of a pooled stage holds its running microtask and the next
// ones, handed out ahead so that the pooled process finds them ready; every other
// microtask has a slot of its own. What must hold: no more lanes than
// slots, the requests reserved once per lane, a lane's slot given back
// when its last microtask ends, and lanes that stop taking more while a
// microtask of another stage waits for a slot.

import TesseraConfig
import Testing

@testable import TesseraEngine

private func pooled(_ name: String, to count: Int64, wall: UInt64? = nil) -> StageDefinition {
    var definition = stage(name, .range(from: 0, to: count, step: 1), wall: wall)
    definition.isolation = .pooled(recycleAfter: Isolation.defaultRecycleAfter)
    return definition
}

@Suite("engine: lanes of pooled stages")
struct LaneTests {
    @Test("a pooled stage's lane holds its running microtask and the next ones; its slot goes back with the last")
    func lanesHoldSeveral() throws {
        let depth = Lane.pooledDepth
        #expect(depth > 1)
        let bench = Bench(slots: 2)
        let run = try bench.start(job(pooled("map", to: 20)))
        let started = bench.shell.started
        #expect(started.map(\.item) == (0..<2 * depth).map(String.init))
        #expect(started.map(\.ahead) == [false, false] + Array(repeating: true, count: 2 * depth - 2))
        #expect(started[0].lane != started[1].lane)
        #expect(Set(started[2...].map(\.lane)) == Set(started[..<2].map(\.lane)), "the others join the two lanes")
        for lane in [started[0].lane, started[1].lane] {
            #expect(started.filter { $0.lane == lane }.count == depth)
        }
        #expect(bench.engine.slotsInUse == 2 && run.counts.running == 2 * depth)

        // The first ends: its lane has room for one more, which joins it.
        bench.finish()
        let next = try #require(bench.shell.started.last)
        #expect(next.item == String(2 * depth) && next.ahead && next.lane == started[0].lane)
        #expect(bench.engine.slotsInUse == 2)

        bench.drain()
        #expect(run.state == .succeeded && run.counts.succeeded == 20)
        #expect(bench.engine.slotsInUse == 0)
    }

    @Test("a stage of processes, and a pooled one with a wall limit, take a lane per microtask")
    func oneEach() throws {
        let processes = Bench(slots: 2)
        _ = try processes.start(job(stage("map", .range(from: 0, to: 10, step: 1))))
        #expect(processes.shell.started.map(\.ahead) == [false, false])
        let timed = Bench(slots: 2)
        _ = try timed.start(job(pooled("map", to: 10, wall: 5000)))
        #expect(timed.shell.started.map(\.ahead) == [false, false])
        #expect(timed.engine.slotsInUse == 2)
    }

    @Test("requests are reserved once per lane, the microtask ahead takes none")
    func requestsPerLane() throws {
        let bench = Bench(slots: 8, capacity: Capacity(cpu: 2, memory: 1 << 40))
        var definition = pooled("map", to: 10)
        definition.requests = ResourceRequests(cpu: 1)
        let run = try bench.start(job(definition))
        #expect(run.counts.running == 2 * Lane.pooledDepth && bench.engine.slotsInUse == 2)
        #expect(bench.engine.cpuInUse == 2)
        bench.drain()
        #expect(run.state == .succeeded && bench.engine.cpuInUse == 0)
    }

    @Test("while another stage's microtask waits for a slot, lanes take no more, and it gets the first slot freed")
    func lanesMakeWay() throws {
        let bench = Bench(slots: 2)
        let depth = Lane.pooledDepth
        let pool = try bench.start(job(pooled("map", to: 100)))
        #expect(pool.counts.running == 2 * depth)
        var other = job(stage("other", .range(from: 0, to: 1, step: 1)), priority: 60)
        other.name = "k"
        let waiting = try bench.start(other)
        #expect(waiting.counts.running == 0, "every slot is in use")
        // The first of a lane ends: the lane keeps its slot, takes no more.
        bench.finish()
        #expect(pool.counts.running == 2 * depth - 1 && waiting.counts.running == 0)
        // The others in that lane end: the slot goes to the waiting run.
        let lane = bench.shell.started[0].lane
        for _ in 1..<depth {
            #expect(waiting.counts.running == 0)
            let index = try #require(bench.pending.firstIndex { $0.lane == lane })
            bench.pending.swapAt(0, index)
            bench.finish()
        }
        #expect(waiting.counts.running == 1)
        #expect(bench.shell.started.last?.run === waiting && bench.shell.started.last?.ahead == false)
        bench.drain()
        #expect(pool.state == .succeeded && waiting.state == .succeeded)
    }
}
