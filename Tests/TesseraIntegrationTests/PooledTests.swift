// isolation: pooled: a sandboxed process per slot runs microtasks of one
// stage in turn. What must hold: it really is reused (and replaced after
// recycle_after, after a failure, after a crash), every microtask's state
// and output is its own, nothing a microtask leaves running survives it,
// and a crash or a CPU limit ends only the microtask it hit.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Isolation: pooled")
struct PooledTests {
    /// What the probe printed: how many microtasks its process had run,
    /// the process's token, whether an earlier microtask's leftover lives,
    /// and the entries of /tmp.
    struct Probe {
        let count: Int
        let process: String
        let leftover: String
        let tmpEntries: Int
    }

    func probes(_ daemon: Daemon, _ run: Int64, count: Int) throws -> [Probe?] {
        try (0..<count).map { index in
            guard let text = try daemon.output(run, index)?.stdout, !text.isEmpty else { return nil }
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
            try #require(fields.count == 8 && fields[0] == "count", "microtask \(index) printed \(text)")
            return Probe(
                count: try #require(Int(fields[1])), process: fields[3], leftover: fields[5],
                tmpEntries: try #require(Int(fields[7])))
        }
    }

    func job(_ items: [String], isolation: String, extra: String = "") -> String {
        """
        name: p
        executor: pooled_probe
        items: [\(items.map { "\"\($0)\"" }.joined(separator: ", "))]
        isolation: \(isolation)
        \(extra)
        """
    }

    @Test("one process runs the stage's microtasks in turn, and is replaced after recycle_after")
    func reusedAndRecycled() throws {
        let daemon = try Daemon(
            jobs: ["p.yaml": job((0..<10).map(String.init), isolation: "{mode: pooled, recycle_after: 4}")],
            plugins: ["test-hostile"], slots: 1)
        let id = try daemon.startRun("p")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        let seen = try probes(daemon, id, count: 10).map { try #require($0) }
        #expect(seen.map(\.count) == [1, 2, 3, 4, 1, 2, 3, 4, 1, 2], "\(seen.map(\.count))")
        #expect(Set(seen[0..<4].map(\.process)).count == 1)
        #expect(Set(seen.map(\.process)).count == 3, "three processes for ten microtasks")
        // The same stage with a process per microtask: every count is 1.
        writeFile(daemon.jobsDirectory + "/q.yaml", job(["a", "b", "c"], isolation: "process").replacingName("q"))
        _ = try daemon.call("Reload")
        let control = try daemon.startRun("q")
        _ = try daemon.wait(forRun: control)
        #expect(try probes(daemon, control, count: 3).map { $0?.count } == [1, 1, 1])
    }

    @Test("a failure or a crash ends only its own microtask, and the next one gets a fresh process")
    func failuresReplaceTheProcess() throws {
        let daemon = try Daemon(
            jobs: [
                "p.yaml": job(["a", "b", "fail", "c", "segv", "d", "e"], isolation: "pooled", extra: "max_failures: 2")
            ],
            plugins: ["test-hostile"], slots: 1)
        let id = try daemon.startRun("p")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        let tasks = try daemon.tasks(id)
        #expect(tasks.map(\.state) == [.succeeded, .succeeded, .failed, .succeeded, .failed, .succeeded, .succeeded])
        #expect(tasks[2].reason == "exited with code 3", "\(tasks[2].reason ?? "-")")
        #expect(tasks[4].signal == "SIGSEGV" && tasks[4].reason == "killed by SIGSEGV", "\(tasks[4].reason ?? "-")")
        let seen = try probes(daemon, id, count: 7).map { try #require($0) }
        #expect(seen.map(\.count) == [1, 2, 3, 1, 2, 1, 2], "\(seen.map(\.count))")
    }

    @Test("what a microtask leaves running ends before the next one starts; a CPU limit is each microtask's")
    func nothingOutlivesAMicrotask() throws {
        let daemon = try Daemon(
            jobs: [
                "p.yaml": job(
                    ["leave", "a", "b", "spin", "c"], isolation: "pooled",
                    extra: "max_failures: 1\nlimits: {cpu: 1s}")
            ],
            plugins: ["test-hostile"], slots: 1)
        let id = try daemon.startRun("p")
        #expect(try daemon.wait(forRun: id, timeout: 60).state == .succeeded)
        let tasks = try daemon.tasks(id)
        let seen = try probes(daemon, id, count: 5).map { try #require($0) }
        #expect(seen[1].count == 2 && seen[1].leftover == "gone", "\(seen[1])")
        #expect(tasks[3].state == .failed && tasks[3].reason == "cpu limit 1s exceeded", "\(tasks[3].reason ?? "-")")
        // Three microtasks ran before it in the same process, and their CPU
        // time did not count against its limit; the next one is fresh.
        #expect(seen[3].count == 4 && seen[4].count == 1)
    }

    @Test("a wall-clock limit or a cancellation ends the pooled process with its microtask, and only that one")
    func wallLimitAndCancel() throws {
        let daemon = try Daemon(
            jobs: [
                "p.yaml": job(["a", "spin", "b"], isolation: "pooled", extra: "max_failures: 1\nlimits: {wall: 1s}"),
                "q.yaml": job(["spin"], isolation: "pooled").replacingName("q"),
            ],
            plugins: ["test-hostile"], slots: 1)
        let id = try daemon.startRun("p")
        #expect(try daemon.wait(forRun: id, timeout: 60).state == .succeeded)
        let tasks = try daemon.tasks(id)
        #expect(tasks.map(\.state) == [.succeeded, .failed, .succeeded])
        #expect(tasks[1].reason == "wall time limit 1s exceeded", "\(tasks[1].reason ?? "-")")
        #expect(try probes(daemon, id, count: 3).map { $0?.count } == [1, 2, 1])
        let cancelled = try daemon.startRun("q")
        try waitUntil(timeout: 20, "the spinning microtask to run") {
            try daemon.tasks(cancelled).first?.state == .running
        }
        _ = try daemon.call("CancelRun", ["id": .int(cancelled)])
        #expect(try daemon.wait(forRun: cancelled, timeout: 30).state == .cancelled)
    }

    @Test("the next microtask is handed out ahead, and each microtask's output is still its own")
    func aheadKeepsOutputApart() throws {
        let letters = ["a", "b", "c", "d", "e", "f", "g", "h"]
        let daemon = try Daemon(
            jobs: [
                "w.yaml": """
                name: w
                executor: shell
                params: {command: [sh, -c, 'head -c 200000 /dev/zero | tr "\\0" "$1"; echo "end $1" >&2', sh, "{{item}}"]}
                items: [\(letters.joined(separator: ", "))]
                isolation: pooled
                """
            ], slots: 1)
        let id = try daemon.startRun("w")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        for (index, letter) in letters.enumerated() {
            let output = try #require(try daemon.output(id, index))
            #expect(output.stdout == String(repeating: letter, count: 200_000), "microtask \(index)")
            #expect(output.stderr == "end \(letter)\n", "microtask \(index): \(output.stderr)")
        }
    }

    @Test("a cancel ends the microtasks handed out ahead as well as the one their process runs")
    func cancelReachesTheOneAhead() throws {
        let daemon = try Daemon(
            jobs: ["q.yaml": job(["spin", "spin", "spin"], isolation: "pooled").replacingName("q")],
            plugins: ["test-hostile"], slots: 1)
        let id = try daemon.startRun("q")
        // One slot, three running: the second and third were handed out
        // ahead, and wait in the worker for the first one's process.
        try waitUntil(timeout: 20, "the three microtasks to be running") {
            try daemon.tasks(id).map(\.state) == [.running, .running, .running]
        }
        _ = try daemon.call("CancelRun", ["id": .int(id)])
        #expect(try daemon.wait(forRun: id, timeout: 30).state == .cancelled)
        #expect(try daemon.tasks(id).map(\.state) == [.cancelled, .cancelled, .cancelled])
    }

    @Test("isolation: pooled needs the sandbox, said at the file's line; --check tells each stage's isolation")
    func configuration() throws {
        let daemon = try Daemon(
            jobs: [
                "p.yaml": job(["a"], isolation: "pooled"),
                "bad.yaml": job(["a"], isolation: "pooled", extra: "sandbox: none").replacingName("bad"),
                "typo.yaml": job(["a"], isolation: "pool").replacingName("typo"),
            ], plugins: ["test-hostile"])
        let check = runProgram(["\(binDirectory)/tesserad", "--check", "--config", daemon.configPath])
        #expect(
            check.stdout.contains("isolation: pooled: a sandboxed process per slot runs up to 1000"), "\(check.stdout)")
        let said = check.stdout + check.stderr
        #expect(said.contains("bad.yaml:4:12: isolation: isolation: pooled needs the sandbox"), "\(said)")
        #expect(said.contains("typo.yaml:4:12: isolation: expected process"), "\(said)")
        #expect(check.status != 0)
    }
}

extension String {
    /// A job text with its `name: p` line renamed.
    fileprivate func replacingName(_ name: String) -> String {
        var lines = split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if let first = lines.firstIndex(where: { $0.hasPrefix("name: ") }) { lines[first] = "name: \(name)" }
        return lines.joined(separator: "\n")
    }
}
