// The engine driven directly: no daemon, no SQLite, no processes, and a
// clock the test moves by hand. Every microtask the engine starts is
// finished by the test with the state and result it chooses.

import TesseraConfig
import TesseraProtocol
import Testing

@testable import TesseraEngine

#if canImport(Glibc)
    import Glibc
#endif

let mark = Mark(line: 1, column: 1)

func stage(
    _ name: String, _ items: ItemSource = .none, after: [String] = [], chunk: Int? = nil,
    maxFailures: FailureTolerance = .count(0), wall: UInt64? = nil, retry: RetryPolicy = .none
) -> StageDefinition {
    var definition = StageDefinition(
        name: name, executor: "noop", items: items, limits: Limits(wall: wall), after: after, chunk: chunk,
        maxFailures: maxFailures, mark: mark)
    definition.retry = retry
    return definition
}

func job(_ stages: StageDefinition..., concurrency: Int? = nil, priority: Int = 50) -> JobDefinition {
    JobDefinition(
        name: "j", concurrency: concurrency, priority: priority, stages: stages, file: "/jobs/j.yaml", nameMark: mark)
}

func temporaryDirectory() -> String {
    var template = Array("/tmp/tessera-engine-XXXXXX".utf8CString)
    guard let path = mkdtemp(&template) else { fatalError("mkdtemp") }
    return String(cString: path)
}

func write(_ path: String, _ text: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0)
    _ = Array(text.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

func read(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var block = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = block.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes += block[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// An engine over a memory store, with a clock the test moves.
final class Bench {
    let store = MemoryStore()
    let shell = RecordingShell()
    let engine: Engine
    let stateDirectory = temporaryDirectory()
    var clock = Instant(wall: 1_000_000, monotonic: 0)
    /// Started microtasks the test has not finished yet, in start order.
    var pending: [MicrotaskStart] = []

    init(slots: Int = 4, maximumItems: Int = ItemSource.maximumCount, capacity: Capacity? = nil) {
        engine = Engine(
            settings: Engine.Settings(slots: slots, maximumItems: maximumItems, capacity: capacity), store: store,
            files: RunFiles(stateDirectory: stateDirectory))
        engine.delegate = shell
    }

    /// A new engine over the same store and files, as after a restart of
    /// the daemon, with a shell of its own (not recovered yet).
    func restarted(slots: Int = 2) -> (Engine, RecordingShell) {
        let engine = Engine(
            settings: Engine.Settings(slots: slots), store: store, files: RunFiles(stateDirectory: stateDirectory))
        let shell = RecordingShell()
        engine.delegate = shell
        return (engine, shell)
    }

    func start(_ job: JobDefinition, priority: Int? = nil, rerun: (SavedRun, Bool)? = nil) throws -> EngineRun {
        let run = try engine.createRun(
            Engine.RunRequest(
                job: job, startedBy: "tester", priority: priority, rerun: rerun.map { ($0.0, $0.1) }), at: clock)
        dispatch()
        return run
    }

    func dispatch() {
        let before = shell.started.count
        engine.dispatch(at: clock)
        pending += shell.started[before...]
    }

    /// Finishes the oldest started microtask.
    func finish(_ state: TaskState = .succeeded, result: String? = nil) {
        let task = pending.removeFirst()
        engine.finished(
            token: task.token,
            TaskCompletion(state: state, result: result.map { Array($0.utf8) }, finishedAt: clock.wall), at: clock)
        engine.committed()
        dispatch()
    }

    /// Finishes the oldest started microtask as `completion` says.
    func finish(_ completion: TaskCompletion) {
        let task = pending.removeFirst()
        engine.finished(token: task.token, completion, at: clock)
        engine.committed()
        dispatch()
    }

    /// Finishes every microtask until none is left, with what `outcome` says for each.
    func drain(_ outcome: (MicrotaskStart) -> (TaskState, String?) = { _ in (.succeeded, nil) }) {
        while let task = pending.first {
            let (state, result) = outcome(task)
            finish(state, result: result)
        }
    }

    func advance(_ milliseconds: UInt64) {
        clock.monotonic += milliseconds
        clock.wall += Double(milliseconds) / 1000
        engine.tick(at: clock)
    }
}

@Suite("engine: runs, stages and dispatch")
struct EngineRunTests {
    @Test("a range is dispatched in order within the slots, and the run succeeds when all have")
    func rangeRun() throws {
        let bench = Bench(slots: 3)
        let run = try bench.start(job(stage("map", .range(from: 0, to: 10, step: 1))))
        #expect(bench.shell.started.map(\.item) == ["0", "1", "2"])
        #expect(bench.engine.running.count == 3)
        #expect(run.counts.queued == 7 && run.counts.running == 3)
        bench.drain()
        #expect(bench.shell.started.map(\.item) == (0..<10).map(String.init))
        #expect(bench.shell.started.map(\.index) == Array(0..<10))
        #expect(bench.shell.started.allSatisfy { $0.attempt == 1 })
        #expect(run.state == .succeeded && run.counts.succeeded == 10)
        #expect(bench.store.runs[run.id]?.state == .succeeded)
        #expect(bench.shell.ended.map(\.id) == [run.id])
        #expect(bench.engine.runs.isEmpty)
    }

    @Test("runs take turns, and a job's concurrency caps its microtasks")
    func fairnessAndConcurrency() throws {
        let bench = Bench(slots: 2)
        let big = try bench.start(job(stage("a", .range(from: 0, to: 100, step: 1))))
        let small = try bench.start(job(stage("a", .range(from: 0, to: 2, step: 1))))
        bench.drain { _ in (.succeeded, nil) }
        // The small run's two microtasks started among the big one's first few.
        let order = bench.shell.started.map(\.run.id)
        let smallPositions = order.enumerated().filter { $0.element == small.id }.map(\.offset)
        #expect(smallPositions.allSatisfy { $0 < 6 }, "small run waited behind the big one: \(smallPositions)")
        #expect(big.state == .succeeded && small.state == .succeeded)

        let capped = Bench(slots: 8)
        _ = try capped.start(job(stage("a", .range(from: 0, to: 10, step: 1)), concurrency: 2))
        #expect(capped.engine.running.count == 2)
    }

    @Test("a run of higher priority starts its microtasks before any of a lower one; equals take turns")
    func priorities() throws {
        let bench = Bench(slots: 1)
        let low = try bench.start(job(stage("a", .range(from: 0, to: 10, step: 1)), priority: 10))
        let other = try bench.start(job(stage("a", .range(from: 0, to: 10, step: 1)), priority: 10))
        let high = try bench.start(job(stage("a", .range(from: 0, to: 3, step: 1))), priority: 90)
        #expect(high.priority == 90 && bench.store.runs[high.id]?.priority == 90)
        bench.drain()
        let order = bench.shell.started.map(\.run.id)
        // The first of the low run was running already; then all of the high run.
        #expect(Array(order.prefix(4)) == [low.id, high.id, high.id, high.id])
        // Then the two low runs alternate.
        #expect(Array(order[4..<8]) == [low.id, other.id, low.id, other.id])
        // A rerun keeps the run's priority.
        let saved = try #require(try bench.store.savedRun(id: high.id))
        #expect(try bench.start(job(stage("a")), rerun: (saved, false)).priority == 90)
    }

    @Test("a stage's concurrency caps its microtasks in each run")
    func stageConcurrency() throws {
        let bench = Bench(slots: 8)
        var capped = stage("a", .range(from: 0, to: 10, step: 1))
        capped.concurrency = 2
        let run = try bench.start(job(capped, stage("b", .range(from: 0, to: 10, step: 1))))
        #expect(run.stages[0].counts.running == 2 && run.stages[1].counts.running == 6)
    }

    @Test("requests are admitted within the capacity, whatever slots say")
    func admissionByRequests() throws {
        let bench = Bench(slots: 8, capacity: Capacity(cpu: 2, memory: 8 << 30))
        var oneCPU = stage("a", .range(from: 0, to: 10, step: 1))
        oneCPU.requests = ResourceRequests(cpu: 1)
        var bigMemory = stage("b", .range(from: 0, to: 10, step: 1))
        bigMemory.requests = ResourceRequests(memory: 3 << 30)
        let run = try bench.start(job(oneCPU, bigMemory))
        #expect(run.stages[0].counts.running == 2 && run.stages[1].counts.running == 2)
        #expect(bench.engine.cpuInUse == 2 && bench.engine.memoryInUse == 6 << 30)
        var most = 0
        bench.drain { _ in
            most = max(most, run.stages[0].counts.running)
            return (.succeeded, nil)
        }
        #expect(most == 2 && run.state == .succeeded)
        #expect(bench.engine.cpuInUse == 0 && bench.engine.memoryInUse == 0)
    }

    @Test("a large request waits while smaller ones go ahead, then is reserved for and starts")
    func reservation() throws {
        let bench = Bench(slots: 8, capacity: Capacity(cpu: 2, memory: 1 << 40))
        var small = stage("small", .range(from: 0, to: 20, step: 1))
        small.requests = ResourceRequests(cpu: 1)
        var large = stage("large")
        large.requests = ResourceRequests(cpu: 2)
        let smalls = try bench.start(job(small))
        let larges = try bench.start(job(large))
        #expect(bench.engine.running.count == 2 && larges.counts.running == 0)
        // Before the patience runs out, a finished small one makes room for the next small one.
        bench.advance(1000)
        bench.finish()
        #expect(smalls.counts.running == 2 && larges.counts.running == 0)
        // After it, nothing else starts until the large one has.
        bench.advance(5000)
        bench.finish()
        #expect(smalls.counts.running == 1 && larges.counts.running == 0)
        bench.finish()
        #expect(larges.counts.running == 1 && smalls.counts.running == 0)
        bench.finish()
        #expect(larges.state == .succeeded && smalls.counts.running == 2)
    }

    @Test("pressure over a threshold pauses admission; it resumes under three quarters of it")
    func pressure() throws {
        var gate = PressureGate()
        let thresholds: [(resource: String, percent: Double)] = [("memory", 20), ("io", 40)]
        #expect(gate.observe(["memory": 19, "io": 39], thresholds: thresholds, at: 0) == nil)
        let paused = gate.observe(["memory": 35.5, "io": 1], thresholds: thresholds, at: 10)
        #expect(
            paused == "admission paused: memory pressure 35.5% is over 20%; running microtasks go on, no new one starts"
        )
        #expect(gate.pause?.since == 10)
        #expect(gate.observe(["memory": 16, "io": 1], thresholds: thresholds, at: 11) == nil, "not yet: hysteresis")
        #expect(gate.observe(["memory": 15, "io": 31], thresholds: thresholds, at: 12) == nil)
        #expect(
            gate.observe(["memory": 15, "io": 30], thresholds: thresholds, at: 13)?.hasPrefix("admission resumed")
                == true)
        #expect(gate.pause == nil)
        #expect(pressureAverage("some avg10=12.50 avg60=1.00 avg300=0.00 total=5\nfull avg10=3.00") == 12.5)

        let bench = Bench(slots: 4)
        bench.engine.settings.pressure = [("cpu", 90)]
        bench.engine.observePressure(["cpu": 95], at: bench.clock)
        let run = try bench.start(job(stage("a", .range(from: 0, to: 3, step: 1))))
        #expect(bench.shell.started.isEmpty && run.counts.queued == 3)
        bench.engine.observePressure(["cpu": 50], at: bench.clock)
        bench.dispatch()
        #expect(bench.shell.started.count == 3)
    }

    @Test("the shell can hold dispatch back, and the engine resumes when asked")
    func canStart() throws {
        let bench = Bench()
        bench.shell.canStart = false
        let run = try bench.start(job(stage("a", .range(from: 0, to: 3, step: 1))))
        #expect(bench.shell.started.isEmpty && run.counts.queued == 3)
        bench.shell.canStart = true
        bench.dispatch()
        #expect(bench.shell.started.count == 3)
    }

    @Test("a matrix is the cartesian product, the first key slowest; chunk groups items into JSON arrays")
    func matrixAndChunk() throws {
        let bench = Bench(slots: 100)
        let axes = [
            MatrixAxis(key: "x", values: ["1", "2"]), MatrixAxis(key: "y", values: ["\"a\"", "\"b\"", "true"]),
        ]
        _ = try bench.start(job(stage("sweep", .matrix(axes))))
        #expect(
            bench.shell.started.map(\.item) == [
                #"{"x":1,"y":"a"}"#, #"{"x":1,"y":"b"}"#, #"{"x":1,"y":true}"#, #"{"x":2,"y":"a"}"#,
                #"{"x":2,"y":"b"}"#, #"{"x":2,"y":true}"#,
            ])
        let chunked = Bench(slots: 100)
        _ = try chunked.start(job(stage("c", .list(["a", "b", "c", "d", "e"]), chunk: 2)))
        #expect(chunked.shell.started.map(\.item) == [#"["a","b"]"#, #"["c","d"]"#, #"["e"]"#])
        let objects = Bench(slots: 100)
        _ = try objects.start(job(stage("c", .matrix([axes[0]]), chunk: 2)))
        #expect(objects.shell.started.map(\.item) == [#"[{"x":1},{"x":2}]"#])
    }
}

@Suite("engine: results flow between stages")
struct EngineFlowTests {
    @Test("from: fans out over the succeeded results in index order: arrays by element, text by line")
    func fanOut() throws {
        let bench = Bench(slots: 1)
        let run = try bench.start(
            job(stage("list", .list(["x", "y", "z"]), maxFailures: .count(1)), stage("each", .from("list"))))
        #expect(run.total == 3, "the fan-out is partitioned only when its upstream ends")
        bench.finish(result: #"["a", {"k": 1}, 2]"#)
        bench.finish(.failed, result: "ignored\n")
        bench.finish(result: "line one\n\nline two\n")
        #expect(bench.store.items(of: run.id, stage: "each") == ["a", #"{"k":1}"#, "2", "line one", "line two"])
        #expect(run.total == 3 + 5)
        bench.drain()
        #expect(run.state == .succeeded)

        // Without tolerance the upstream fails and the fan-out never runs.
        let strict = Bench(slots: 1)
        let failed = try strict.start(job(stage("list", .list(["x"])), stage("each", .from("list"))))
        strict.finish(.failed)
        #expect(failed.state == .failed)
        #expect(failed.reason == "stage list: 1 of 1 microtask(s) did not succeed")
        #expect(strict.store.runs[failed.id]?.stages[1].state == .cancelled)
        #expect(strict.store.runs[failed.id]?.stages[1].reason == "not run: stage list failed")
    }

    @Test("max_failures lets a stage succeed; downstream gets the succeeded results only")
    func maxFailures() throws {
        let bench = Bench(slots: 1)
        let run = try bench.start(
            job(
                stage("map", .range(from: 0, to: 4, step: 1), maxFailures: .percent(25)),
                stage("each", .from("map"))))
        bench.drain { task in task.index == 1 ? (.failed, nil) : (.succeeded, "r\(task.index)") }
        #expect(run.state == .succeeded)
        #expect(bench.store.items(of: run.id, stage: "each") == ["r0", "r2", "r3"])
        #expect(run.counts.failed == 1)
        #expect(run.reason?.contains("1 of 4 microtask(s) did not succeed, within max_failures (1)") == true)

        let strict = Bench(slots: 1)
        let failed = try strict.start(
            job(
                stage("map", .range(from: 0, to: 4, step: 1), maxFailures: .count(1)),
                stage("after", .none, after: ["map"])))
        strict.drain { task in task.index < 2 ? (.failed, nil) : (.succeeded, nil) }
        #expect(failed.state == .failed)
        #expect(failed.reason == "stage map: 2 of 4 microtask(s) did not succeed (max_failures allows 1)")
        #expect(strict.store.tasks[failed.id]?[4]?.reason == "not run: stage map failed")
    }

    @Test("reduce gets one microtask whose input lists every succeeded upstream result, JSON embedded")
    func reduceInput() throws {
        let bench = Bench(slots: 1)
        let run = try bench.start(
            job(
                stage("a", .list(["p", "q"])), stage("b", .list([#"{"k":"v"}"#])),
                stage("sum", .reduce(["b", "a"]))))
        bench.finish(result: "12\n")
        bench.finish(result: "not json")
        bench.finish(result: #"{"n": [1, 2]}"#)
        let reduce = try #require(bench.pending.first)
        #expect(reduce.stage.name == "sum" && reduce.index == 3)
        let input = try #require(reduce.stage.inputPath)
        #expect(reduce.item == input)
        #expect(input == bench.stateDirectory + "/runs/\(run.id)/sum.input.jsonl")
        #expect(
            read(input) == """
                {"stage":"a","index":0,"item":"p","result":12}
                {"stage":"a","index":1,"item":"q","result":"not json"}
                {"stage":"b","index":2,"item":{"k":"v"},"result":{"n":[1,2]}}

                """)
        bench.finish(result: "done")
        #expect(run.state == .succeeded)
        #expect(read(input) == nil, "the run directory goes away with the run")
    }

    @Test("a stage with no items from upstream succeeds at once, and so does what follows it")
    func emptyFanOut() throws {
        let bench = Bench()
        let run = try bench.start(job(stage("ls"), stage("each", .from("ls")), stage("last", after: ["each"])))
        bench.finish(result: "")
        #expect(bench.pending.map(\.stage.name) == ["last"])
        bench.drain()
        #expect(run.state == .succeeded && run.total == 2)
    }
}

@Suite("engine: sources read when a run starts")
struct EngineSourceTests {
    @Test("glob: bytewise order of full paths, ** across directories, hidden names only when written")
    func glob() throws {
        let root = temporaryDirectory()
        for directory in ["a", "a/b", "a-c", ".hidden", "a/.dot"] { mkdir(root + "/" + directory, 0o755) }
        for file in ["a/x.txt", "a/b/y.txt", "a-c/z.txt", "a.txt", ".hidden/h.txt", "a/.dot/d.txt", "a/.e.txt", "n.md"]
        {
            write(root + "/" + file, file)
        }
        // A link to a file matches; a link to a directory is not followed.
        symlink(root + "/n.md", root + "/a/link.txt")
        symlink(root + "/a", root + "/loop")
        let bench = Bench(slots: 100)
        _ = try bench.start(job(stage("g", .glob([root + "/**/*.txt", root + "/a/*.txt"]))))
        #expect(
            bench.shell.started.map(\.item) == [
                root + "/a-c/z.txt", root + "/a.txt", root + "/a/b/y.txt", root + "/a/link.txt", root + "/a/x.txt",
            ])
        let hidden = Bench(slots: 100)
        _ = try hidden.start(job(stage("g", .glob([root + "/.*/*.txt", root + "/a/.e.txt"]))))
        #expect(hidden.shell.started.map(\.item) == [root + "/.hidden/h.txt", root + "/a/.e.txt"])
    }

    @Test("glob: a directory that cannot be read fails the stage with the reason; the run says so")
    func globUnreadable() throws {
        let bench = Bench()
        let run = try bench.start(job(stage("g", .glob(["/nonexistent-tessera/**/*.txt"])), stage("b")))
        #expect(run.state == .failed || bench.pending.count == 1)
        bench.drain()
        #expect(run.state == .failed)
        #expect(
            run.reason
                == "stage g: glob /nonexistent-tessera/**/*.txt: cannot read the directory /nonexistent-tessera: "
                + "No such file or directory")
    }

    @Test("lines: each non-empty line; split: ranges that cover the file and end after a newline")
    func linesAndSplit() throws {
        let root = temporaryDirectory()
        write(root + "/list", "one\n\ntwo\r\nthree\r")
        let bench = Bench(slots: 100)
        _ = try bench.start(job(stage("l", .lines(root + "/list"))))
        #expect(bench.shell.started.map(\.item) == ["one", "two", "three"])

        let text =
            (0..<200).map { "line \($0) " + String(repeating: "x", count: $0 % 17) }.joined(separator: "\n") + "\n"
        write(root + "/big", text)
        let split = Bench(slots: 1000)
        _ = try split.start(job(stage("s", .split(file: root + "/big", block: 100))))
        var next = 0
        let bytes = Array(text.utf8)
        for task in split.shell.started {
            let item = try JSON.parse(task.item)
            #expect(item["path"]?.stringValue == root + "/big")
            let offset = Int(item["offset"]?.intValue ?? -1)
            let length = Int(item["length"]?.intValue ?? -1)
            #expect(offset == next && length > 0)
            #expect(bytes[offset + length - 1] == 0x0A, "range \(offset)+\(length) does not end after a newline")
            next = offset + length
        }
        #expect(next == bytes.count)
        #expect(split.shell.started.count > 10)
    }

    @Test("an unreadable lines: file and a source over the cap fail their stage with the reason")
    func sourceFailures() throws {
        let bench = Bench()
        let run = try bench.start(job(stage("l", .lines("/nonexistent-tessera/list"))))
        #expect(run.state == .failed)
        #expect(run.reason == "stage l: lines: /nonexistent-tessera/list: No such file or directory")
        #expect(run.total == 0)

        let root = temporaryDirectory()
        for name in ["a", "b", "c"] { write(root + "/" + name, name) }
        let globbed = Bench(maximumItems: 2)
        let many = try globbed.start(job(stage("g", .glob([root + "/*"]))))
        #expect(many.reason == "stage g: glob: \(root)/*: more than 2 items, the most a stage may have")

        let capped = Bench(maximumItems: 5)
        let over = try capped.start(job(stage("r", .range(from: 0, to: 6, step: 1))))
        #expect(over.state == .failed)
        #expect(over.reason == "stage r: range: from 0 to 6 step 1: more than 5 items, the most a stage may have")
        #expect(capped.store.tasks[over.id]?.isEmpty == true, "a failed partition leaves no microtasks")
    }
}

@Suite("engine: limits, cancellation, reruns and recovery")
struct EngineControlTests {
    @Test("a wall limit becomes SIGTERM, then SIGKILL after the grace period, on the simulated clock")
    func wallLimit() throws {
        let bench = Bench()
        let run = try bench.start(job(stage("slow", wall: 1000)))
        let token = try #require(bench.pending.first?.token)
        bench.advance(999)
        #expect(bench.shell.signals.isEmpty)
        #expect(bench.engine.hasDeadlines)
        bench.advance(1)
        #expect(bench.shell.signals.map(\.1) == [SIGTERM])
        bench.advance(1999)
        #expect(bench.shell.signals.count == 1)
        bench.advance(1)
        #expect(bench.shell.signals.map(\.0) == [token, token] && bench.shell.signals.map(\.1) == [SIGTERM, SIGKILL])
        bench.finish(.failed)
        #expect(bench.store.tasks[run.id]?[0]?.reason == "wall time limit 1s exceeded")
        #expect(!bench.engine.hasDeadlines)
    }

    @Test("cancelling drops what is queued, signals what runs, and records the running ones as cancelled")
    func cancel() throws {
        let bench = Bench(slots: 2)
        let run = try bench.start(job(stage("a", .range(from: 0, to: 5, step: 1)), stage("b", after: ["a"])))
        bench.engine.cancel(run, at: bench.clock)
        #expect(bench.shell.signals.map(\.1) == [SIGTERM, SIGTERM])
        #expect(run.counts.cancelled == 4 && run.counts.running == 2)
        bench.drain { _ in (.failed, nil) }
        #expect(run.state == .cancelled && run.counts.cancelled == 6)
        #expect(bench.store.tasks[run.id]?[0]?.reason == "run cancelled")
    }

    @Test("rerun --failed runs only what did not succeed, stage by stage; a reduce runs again")
    func rerunFailed() throws {
        let bench = Bench(slots: 1)
        let definition = job(
            stage("map", .list(["a", "b", "c"]), maxFailures: .count(1)), stage("sum", .reduce(["map"])))
        let first = try bench.start(definition)
        bench.drain { task in task.item == "b" ? (.failed, nil) : (.succeeded, task.item) }
        #expect(first.state == .succeeded)
        let saved = try #require(try bench.store.savedRun(id: first.id))
        let again = try bench.start(definition, rerun: (saved, true))
        #expect(again.rerunOf == first.id)
        #expect(bench.store.items(of: again.id, stage: "map") == ["b"])
        #expect(bench.store.runs[again.id]?.stages[0].source.hasPrefix("rerun of run \(first.id)") == true)
        bench.drain { task in (.succeeded, task.item) }
        #expect(again.state == .succeeded)
        #expect(bench.store.items(of: again.id, stage: "sum").count == 1)
    }

    @Test("a run taken up after a crash goes on where it was; its lost microtasks run again as retry.on says")
    func recovery() throws {
        let bench = Bench(slots: 2)
        let onLost = RetryPolicy(attempts: 2, backoff: 100, jitter: false, on: [.lost])
        let run = try bench.start(
            job(stage("a", .range(from: 0, to: 4, step: 1), retry: onLost), stage("b", .from("a"))))
        bench.finish(result: "x")
        // The daemon dies: a new engine over the same store.
        let shell = RecordingShell()
        let engine = Engine(
            settings: Engine.Settings(slots: 10), store: bench.store,
            files: RunFiles(stateDirectory: bench.stateDirectory))
        engine.delegate = shell
        let problems = engine.recover(try bench.store.unfinishedRuns(), at: bench.clock) { _ in run.job }
        #expect(problems.isEmpty)
        engine.dispatch(at: bench.clock)
        #expect(shell.started.map(\.index) == [3], "1 and 2, lost, wait for their backoff")
        #expect(bench.store.tasks[run.id]?[1]?.history.last?.reason == "lost: tesserad stopped while it ran")
        bench.clock.monotonic += 100
        engine.dispatch(at: bench.clock)
        #expect(shell.started.map(\.index) == [3, 1, 2])
        #expect(shell.started.map(\.attempt) == [1, 2, 2], "1 and 2 were running when the daemon died")
        for task in shell.started {
            engine.finished(
                token: task.token, TaskCompletion(state: .succeeded, result: [0x79], finishedAt: 0), at: bench.clock)
        }
        engine.dispatch(at: bench.clock)
        #expect(bench.store.items(of: run.id, stage: "b") == ["x", "y", "y", "y"])

        let gone = Engine(
            settings: Engine.Settings(slots: 1), store: bench.store,
            files: RunFiles(stateDirectory: bench.stateDirectory))
        let messages = gone.recover(try bench.store.unfinishedRuns(), at: bench.clock) { _ in nil }
        #expect(messages.count == 1 && messages[0].contains("is gone or changed shape"))
        #expect(bench.store.runs[run.id]?.state == .failed)
    }

    @Test("a cancel survives a crash: what was running is not run again")
    func cancelRecovered() throws {
        let bench = Bench(slots: 2)
        let run = try bench.start(job(stage("a", .range(from: 0, to: 4, step: 1))))
        bench.engine.cancel(run, at: bench.clock)
        #expect(bench.store.runs[run.id]?.cancelRequested == true)
        // The daemon dies before the two running microtasks report.
        let shell = RecordingShell()
        let engine = Engine(
            settings: Engine.Settings(slots: 10), store: bench.store,
            files: RunFiles(stateDirectory: bench.stateDirectory))
        engine.delegate = shell
        _ = engine.recover(try bench.store.unfinishedRuns(), at: bench.clock) { _ in run.job }
        engine.dispatch(at: bench.clock)
        #expect(shell.started.isEmpty)
        #expect(bench.store.runs[run.id]?.state == .cancelled)
        #expect(bench.store.tasks[run.id]?.values.allSatisfy { $0.state == .cancelled } == true)
    }

    @Test("a store that fails stops the engine, which says why")
    func storeFailure() throws {
        let bench = Bench()
        let run = try bench.start(job(stage("a", .range(from: 0, to: 3, step: 1))))
        bench.store.failWrites = true
        bench.finish()
        #expect(bench.engine.storeFailure != nil)
        #expect(run.state != .succeeded)
        #expect(throws: EngineError.self) { try bench.start(job(stage("b"))) }
    }
}

@Suite("engine: splitting a result into items")
struct ResultSplittingTests {
    func items(_ text: String) throws -> [String] { try items(Array(text.utf8)) }

    func items(_ bytes: [UInt8]) throws -> [String] {
        var splitter = ResultSplitter(bytes, stage: "s", index: 0)
        var items: [String] = []
        while let item = try splitter.next() { items.append(item) }
        return items
    }

    @Test("a JSON array by element, scanned one element at a time; anything else by non-empty line")
    func splitting() throws {
        #expect(
            try items(#" [ "a,b", "[x]", "q\"uote", {"k": [1, {"j": "]"}]}, 2.5, null ] "#) == [
                "a,b", "[x]", "q\"uote", #"{"k":[1,{"j":"]"}]}"#, "2.5", "null",
            ])
        #expect(try items("[]") == [])
        #expect(try items("[INFO] started\n[INFO] done]\n") == ["[INFO] started", "[INFO] done]"])
        #expect(try items("[1, 2\n") == ["[1, 2"])
        #expect(try items("[1, oops]") == ["[1, oops]"], "an array that is not valid JSON is text")
        #expect(try items("[}]") == ["[}]"], "a stray brace ends the scan instead of spinning")
        #expect(try items("[1}, 2]") == ["[1}, 2]"])
        #expect(try items("one\r\n\r\ntwo") == ["one", "two"])
        #expect(throws: PartitionFailure.self) { try items([0x61, 0xFF, 0x0A]) }
    }
}
