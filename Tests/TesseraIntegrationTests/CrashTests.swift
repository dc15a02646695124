// Durability, proven on the real daemon: tesserad is killed with SIGKILL
// at random moments, twenty times, during a run of 10,000 microtasks (and
// its worker zygote a few times), and started again each time, while
// clients follow the event log and the output. Execution is at least
// once: what was running when a kill came is a lost attempt, run again
// (retry.on: [lost]); nothing accepted is lost, nothing succeeds twice,
// the event log has no gap, and the followers miss nothing.

import Testing

@testable import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Crashes")
struct CrashTests {
    @Test("20 SIGKILLs of tesserad and 3 of its worker during 10,000 microtasks: every one succeeds once, no gap")
    func killedAgainAndAgain() throws {
        // TESSERA_CRASH_SEED replays a failure's moments.
        var generator = SystemRandomNumberGenerator()
        let seed =
            getenv("TESSERA_CRASH_SEED").flatMap { UInt64(String(cString: $0)) }
            ?? UInt64.random(in: 0..<UInt64.max, using: &generator)
        var random = SeededRandom(seed: seed)
        let daemon = try Daemon(
            jobs: [
                "many.yaml": """
                name: many
                executor: shell
                params: {command: [echo, "item {{item}}"]}
                range: {from: 0, to: 10000}
                retry: {attempts: 40, on: [lost], backoff: 1ms, max_backoff: 5ms}

                """,
                "small.yaml": """
                name: small
                executor: noop
                items: [a, b, c]
                retry: {attempts: 40, on: [lost], backoff: 1ms}

                """,
            ], slots: 2, logLevel: "info")
        let big = try daemon.startRun("many")
        let events = try BackgroundCLI(daemon, ["events", "-f", "--json"])
        let logs = try BackgroundCLI(daemon, ["logs", String(big), "-f"])
        var accepted: [Int64] = [big]
        var workerKills = 0
        for kill in 1...20 {
            // A random moment: some time into the run, as it goes.
            usleep(UInt32(100_000 + Int(random.next() % 500_000)))
            if kill % 6 == 0, let worker = children(of: daemon.pid).first {
                // The worker first: its microtasks are lost while tesserad lives.
                Glibc.kill(worker, SIGKILL)
                workerKills += 1
                usleep(UInt32(50_000 + Int(random.next() % 200_000)))
            }
            if random.next() % 2 == 0 { accepted.append(try daemon.startRun("small")) }
            daemon.stop(signal: SIGKILL)
            try daemon.start()
        }
        #expect(workerKills == 3)
        let final = try daemon.wait(forRun: big, timeout: 300)
        #expect(final.state == .succeeded, "seed \(seed): \(final)")
        #expect(final.counts.succeeded == 10_000 && final.total == 10_000, "seed \(seed): \(final.counts)")
        for id in accepted.dropFirst() {
            #expect(try daemon.wait(forRun: id).state == .succeeded, "seed \(seed): accepted run \(id)")
        }

        // Every microtask succeeded, once: only its last attempt succeeded,
        // the ones before were lost.
        var tasks: [TaskInfo] = []
        while tasks.count < 10_000 {
            let page =
                (try daemon.call("ListTasks", ["run": .int(big), "offset": .int(Int64(tasks.count)), "limit": 5000])[
                    "tasks"]?.arrayValue ?? []).compactMap(TaskInfo.init(json:))
            guard !page.isEmpty else { break }
            tasks += page
        }
        #expect(tasks.count == 10_000 && tasks.allSatisfy { $0.state == .succeeded }, "seed \(seed)")
        let rerun = tasks.filter { $0.attempt > 1 }
        #expect(!rerun.isEmpty, "seed \(seed): some microtasks were running at a kill and ran again")
        for task in rerun.prefix(50) {
            let attempts =
                (try daemon.call("ListAttempts", ["run": .int(big), "index": .int(Int64(task.index))])["attempts"]?
                .arrayValue ?? []).compactMap(AttemptInfo.init(json:))
            #expect(attempts.map(\.attempt) == Array(1...task.attempt), "seed \(seed): \(task.index)")
            #expect(attempts.last?.state == .succeeded)
            #expect(
                attempts.dropLast().allSatisfy { $0.state == .failed && $0.reason?.hasPrefix("lost:") == true },
                "seed \(seed): \(attempts)")
        }

        // The log: no gap, each run created and finished once, a task.lost
        // (or retrying) for every attempt that ran again.
        var log: [JSON] = []
        while true {
            let page =
                try daemon.call("ListEvents", ["after": .int(log.last?["id"]?.intValue ?? 0), "limit": 10_000])[
                    "events"]?.arrayValue ?? []
            guard !page.isEmpty else { break }
            log += page
        }
        let ids = log.compactMap { $0["id"]?.intValue }
        #expect(ids == Array(1...Int64(ids.count)), "seed \(seed): the event log has a gap")
        for id in accepted {
            let ofRun = log.filter { $0["run"] == .int(id) }.compactMap { $0["kind"]?.stringValue }
            #expect(ofRun.filter { $0 == "run.created" }.count == 1 && ofRun.last == "run.finished", "run \(id)")
            #expect(ofRun.filter { $0 == "run.finished" }.count == 1, "run \(id)")
        }
        let lost = log.filter { $0["run"] == .int(big) && $0["kind"] == "task.lost" }.count
        #expect(lost == tasks.reduce(0) { $0 + $1.attempt - 1 }, "seed \(seed): one task.lost per attempt run again")
        #expect(log.filter { $0["kind"] == "daemon.started" }.count == 21)
        #expect(log.filter { $0["kind"] == "worker.died" }.count == 3)

        // The followers: every event once, in order; every item's line.
        try waitUntil(timeout: 60, "the events follower to reach the last event") {
            events.stdout.split(separator: "\n").last.flatMap { try? JSON.parse(Array($0.utf8)) }?["id"]?.intValue
                == ids.last
        }
        let followed = events.stdout.split(separator: "\n").compactMap {
            try? JSON.parse(Array($0.utf8))["id"]?.intValue
        }
        #expect(followed == ids, "seed \(seed): the follower saw every event once, in order")
        #expect(try logs.waitForExit(timeout: 120) == 0, "seed \(seed): \(logs.stderr)")
        // A line may come twice: once live from an attempt that was then
        // lost, and again from the attempt that succeeded.
        let lines = logs.stdout.split(separator: "\n").map(String.init)
        let printed = Set(lines)
        #expect(printed.count == 10_000, "seed \(seed): every item's line, and nothing else")
        #expect(lines.count - printed.count <= lost, "seed \(seed): no line twice but a lost attempt's")
        #expect(printed.contains("[0] item 0") && printed.contains("[9999] item 9999"))
    }
}

/// SplitMix64: a seeded generator, so a failure can be replayed.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
