// isolation: process with the default sandbox: each microtask's process is
// a fork of a stem, a process sandboxed once per stage and uid lent
// (tesserad(8)). What must hold: every microtask is a fresh process, the
// stem's own descriptors are not among its own, and nothing one leaves
// behind (processes, System V objects, POSIX queues, files in /tmp) is
// there for the next one; a stem with leftovers gives way to a new one.

import TesseraProtocol
import Testing

@Suite("Isolation: process, through stems")
struct StemTests {
    /// What the probe printed, field by field.
    struct Probe: Equatable {
        let pid: Int
        let ppid: Int
        let others: Int
        let fds: Int
        let shm: Int
        let mq: String
        let tmp: Int
    }

    func probes(_ daemon: Daemon, _ run: Int64, count: Int) throws -> [Probe] {
        try (0..<count).map { index in
            let text = try #require(try daemon.output(run, index)?.stdout, "microtask \(index) printed nothing")
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
            try #require(fields.count == 14 && fields[0] == "pid", "microtask \(index) printed \(text)")
            func number(_ at: Int) throws -> Int { try #require(Int(fields[at]), "\(text)") }
            return Probe(
                pid: try number(1), ppid: try number(3), others: try number(5), fds: try number(7),
                shm: try number(9), mq: fields[11], tmp: try number(13))
        }
    }

    func run(_ items: [String], sandbox: String = "") throws -> [Probe] {
        let daemon = try Daemon(
            jobs: [
                "s.yaml": """
                name: s
                executor: stem_probe
                items: [\(items.map { "\"\($0)\"" }.joined(separator: ", "))]
                \(sandbox)
                """
            ], plugins: ["test-hostile"], slots: 1)
        let id = try daemon.startRun("s")
        let run = try daemon.wait(forRun: id)
        let reasons = try daemon.tasks(id).map { $0.reason ?? "-" }
        #expect(run.state == .succeeded, "\(reasons)")
        return try probes(daemon, id, count: items.count)
    }

    @Test("each microtask is a fresh fork of its stem; what one leaves behind is gone, or its stem is replaced")
    func leftoversNeverReachTheNext() throws {
        let seen = try run(["a", "b", "shm", "c", "leave", "d", "tmp", "e"])
        // Pids in the stem's namespace: the stem is 1, its forks count up
        // from 2. A System V segment or a file in /tmp ends the stem, and
        // the next microtask is the first fork of a new one; a process
        // left running is killed, and the stem stays.
        #expect(seen.map(\.pid) == [2, 3, 4, 2, 3, 5, 6, 2], "\(seen.map(\.pid))")
        #expect(seen.allSatisfy { $0.ppid == 1 }, "\(seen.map(\.ppid))")
        // No other process in the namespace but the stem: not what
        // "leave" started.
        #expect(seen.allSatisfy { $0.others == 0 }, "\(seen.map(\.others))")
        // Standard input, output, error and the result channel: not the
        // stem's control socket or its checks.
        #expect(seen.allSatisfy { $0.fds == 4 }, "\(seen.map(\.fds))")
        #expect(seen.allSatisfy { $0.shm == 0 && $0.mq == "no" && $0.tmp == 0 }, "\(seen)")
    }

    @Test("a POSIX message queue one microtask leaves ends its stem (Landlock, when on, refuses mq_open)")
    func messageQueuesNeverReachTheNext() throws {
        let seen = try run(["a", "mq", "b"], sandbox: "sandbox: {landlock: false}")
        #expect(seen.map(\.pid) == [2, 3, 2], "\(seen.map(\.pid))")
        #expect(seen.allSatisfy { $0.mq == "no" }, "\(seen.map(\.mq))")
    }

    @Test("--check says which stages fork their microtasks from stems")
    func checkTellsTheTruth() throws {
        let daemon = try Daemon(
            jobs: [
                "stems.yaml": "name: stems\nexecutor: stem_probe\nitems: [a]\n",
                "compute.yaml": "name: compute\nexecutor: stem_probe\nitems: [a]\nsandbox: {syscalls: compute}\n",
            ], plugins: ["test-hostile"])
        let check = runProgram(["\(binDirectory)/tesserad", "--check", "--config", daemon.configPath])
        #expect(check.status == 0, "\(check.stderr)")
        let stem = "isolation: process: a process of its own for each microtask, forked from a stem"
        let plain = "isolation: process: a process of its own for each microtask\n"
        // One stage each way, in the order of the job files.
        let lines = check.stdout.split(separator: "\n").filter { $0.contains("isolation:") }.map { $0 + "\n" }
        #expect(lines.filter { $0.contains(stem) }.count == 1, "\(check.stdout)")
        #expect(lines.filter { $0.hasSuffix(plain) }.count == 1, "\(check.stdout)")
    }

    @Test("signals a microtask sends its stem are dropped: the stem and its next microtask go on")
    func signalsToTheStemAreDropped() throws {
        let daemon = try Daemon(
            jobs: [
                "k.yaml": """
                name: k
                executor: shell
                items: [a, b, c]
                params: {command: [sh, -c, "kill -TERM 1; kill -USR1 1; kill -INT 1; echo $$"]}
                """
            ], plugins: ["shell"], slots: 1)
        let id = try daemon.startRun("k")
        let run = try daemon.wait(forRun: id)
        let reasons = try daemon.tasks(id).map { $0.reason ?? "-" }
        #expect(run.state == .succeeded, "\(reasons)")
        let pids = try (0..<3).map { try daemon.output(id, $0)?.stdout.split(separator: "\n").first.map(String.init) }
        #expect(pids == ["2", "3", "4"], "\(pids)")
    }

    /// What each run's one microtask printed: its pid in the stem's
    /// namespace, then $TESSERA_RUN.
    func pidAndRun(_ daemon: Daemon, _ job: String) throws -> (pid: String, run: String, id: Int64) {
        let id = try daemon.startRun(job)
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        let fields = try #require(try daemon.output(id, 0)?.stdout, "run \(id) printed nothing").split(separator: " ")
        try #require(fields.count == 2, "\(fields)")
        return (String(fields[0]), String(fields[1]).trimmingWhitespace, id)
    }

    @Test("a stem serves the same stage of the job's next runs, each with its own run; a changed stage gets a new one")
    func stemsServeTheNextRun() throws {
        let job = { (limits: String) in
            "name: w\nexecutor: shell\nitems: [a]\nparams: {command: [sh, -c, 'echo $$ $TESSERA_RUN']}\n\(limits)"
        }
        let daemon = try Daemon(jobs: ["w.yaml": job("")], plugins: ["shell"], slots: 1)
        // One stem, its pid 1; each run's microtask is its next fork, and
        // knows the run it belongs to.
        var seen: [String] = []
        for _ in 0..<3 {
            let (pid, run, id) = try pidAndRun(daemon, "w")
            #expect(run == "\(id)")
            seen.append(pid)
        }
        #expect(seen == ["2", "3", "4"], "\(seen)")
        // Another definition of the stage: a stem of its own.
        writeFile(daemon.jobsDirectory + "/w.yaml", job("limits: {cpu: 7s}"))
        _ = try daemon.call("Reload")
        let (pid, run, id) = try pidAndRun(daemon, "w")
        #expect(pid == "2" && run == "\(id)", "\(pid) \(run)")
    }

    @Test("stems dismissed for another stage's microtask end, also one that had just forked ahead")
    func dismissedStemsEnd() throws {
        // Two jobs in turn, given the same uids: each run's stems make way
        // for the other job's, often before the zygote has let the process
        // each forked ahead go, which then stops for the zygote as it
        // exits. Left there, it kept its stem, and the stem its cell, for
        // good: each later microtask of that uid built its own mounts.
        let job = { (name: String) in "name: \(name)\nexecutor: noop\nrange: {from: 0, to: 2}\n" }
        let daemon = try Daemon(jobs: ["a.yaml": job("a"), "b.yaml": job("b")], plugins: ["noop"], slots: 2)
        for round in 0..<40 {
            let id = try daemon.startRun(round % 2 == 0 ? "a" : "b")
            #expect(try daemon.wait(forRun: id).state == .succeeded)
        }
        let zygote = try #require(children(of: daemon.pid).first, "tesserad has no worker")
        // The last run's two stems stay, warm; every other one ends.
        try waitUntil(timeout: 15, "the dismissed stems to end") { children(of: zygote).count <= 2 }
    }
}
