// Executors that crash, spin, sleep, balloon or flood: each harms only its
// own microtask, which is recorded with a reason a person can act on, while
// the other microtasks and the daemon carry on.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Faults")
struct FaultTests {
    static let hostileJob = """
        name: hostile
        stages:
          - {name: segfault, executor: segfault}
          - {name: abort, executor: abort}
          - {name: spin, executor: spin, limits: {cpu: 1s, wall: 30s}}
          - {name: sleep, executor: sleep_ignore_term, limits: {wall: 1s}}
          - {name: balloon, executor: balloon, limits: {memory: 256MiB}}
          - {name: flood, executor: flood, limits: {output: 64KiB}}
          - {name: fail, executor: fail}
          - name: ok
            executor: ok
            items: [a, b, c, d, e, f, g, h]
        """

    @Test("each hostile executor fails alone, with the right reason")
    func hostileExecutors() throws {
        let daemon = try Daemon(jobs: ["hostile.yaml": FaultTests.hostileJob], plugins: ["test-hostile"], slots: 4)
        let id = try daemon.startRun("hostile")
        let run = try daemon.wait(forRun: id, timeout: 120)
        #expect(run.state == .failed)
        let tasks = Dictionary(grouping: try daemon.tasks(id), by: \.stage).mapValues { $0[0] }

        #expect(tasks["segfault"]?.signal == "SIGSEGV")
        #expect(tasks["segfault"]?.reason == "killed by SIGSEGV")
        #expect(tasks["abort"]?.signal == "SIGABRT")
        #expect(tasks["abort"]?.reason == "killed by SIGABRT")
        #expect(tasks["spin"]?.reason == "cpu limit 1s exceeded", "cpu \(tasks["spin"]?.cpuSeconds ?? -1)")
        #expect((tasks["spin"]?.cpuSeconds ?? 0) >= 0.5, "the CPU limit is checked at the scheduler tick")
        #expect(tasks["sleep"]?.reason == "wall time limit 1s exceeded")
        #expect(tasks["sleep"]?.signal == "SIGKILL", "it ignores SIGTERM, so SIGKILL ends it")
        #expect(tasks["balloon"]?.reason == "memory limit 256MiB exceeded")
        #expect(tasks["flood"]?.reason == "output limit 64KiB exceeded")
        #expect(tasks["flood"]?.stdoutTruncated == true)
        #expect(tasks["fail"]?.reason == "exited with code 3: failing on purpose")
        #expect(tasks["fail"]?.exitCode == 3)
        for stage in ["segfault", "abort", "spin", "sleep", "balloon", "flood", "fail"] {
            #expect(tasks[stage]?.state == .failed, "\(stage) must fail")
        }

        let ok = try daemon.tasks(id).filter { $0.stage == "ok" }
        #expect(ok.count == 8)
        #expect(ok.allSatisfy { $0.state == .succeeded && $0.result == $0.item })

        let floodIndex = try #require(tasks["flood"]?.index)
        let flood = try #require(try daemon.output(id, floodIndex))
        #expect(flood.stdout.utf8.count == 64 * 1024, "output is kept up to the limit, no more")

        #expect(daemon.isAlive)
        let status = try daemon.call("GetStatus")["status"]
        #expect(status?["runningTasks"]?.intValue == 0)
        let again = try daemon.startRun("hostile")
        #expect(again == id + 1, "the daemon keeps accepting work")
    }

    @Test("a worker killed from outside fails only its microtasks; a new worker takes over")
    func workerDeath() throws {
        let daemon = try Daemon(jobs: [
            "slow.yaml": "name: slow\nexecutor: shell\nparams: {command: [sleep, '30']}\nrange: {from: 0, to: 2}\n",
            "quick.yaml": "name: quick\nexecutor: shell\nparams: {command: ['true']}\n",
        ])
        let id = try daemon.startRun("slow")
        try waitUntil("both microtasks to run") { try daemon.tasks(id, state: .running).count == 2 }
        let workers = runProgram(["pgrep", "-f", "-P", String(daemon.pid), "tessera-worker zygote"]).stdout
        let workerPID = try #require(Int32(workers.split(separator: "\n").first ?? ""))
        kill(workerPID, SIGKILL)
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .failed)
        #expect(try daemon.tasks(id).allSatisfy { $0.reason?.hasPrefix("lost: worker process") == true })
        let quick = try daemon.startRun("quick")
        #expect(try daemon.wait(forRun: quick).state == .succeeded)
    }
}
