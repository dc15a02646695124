// A job defined in YAML, run through the real daemon: items become
// microtasks in forked workers, and their states, results and output are
// stored and reported.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

let helloJob = """
    name: hello
    description: Greets each item
    concurrency: 4
    stages:
      - name: greet
        executor: shell
        params:
          command: [sh, -c, 'echo "hello $1"', sh, "{{item}}"]
        items: [alpha, beta, gamma]
        limits: {cpu: 10s, memory: 256MiB, wall: 30s, open_files: 64, processes: 16, file_size: 64MiB, output: 1MiB}
    """

@Suite("End to end")
struct EndToEndTests {
    @Test("the README's job gives items to the shell as arguments, never as code")
    func itemsAreArguments() throws {
        let items = ["bob; id", "O'Brien", "$(id -u)", "two  spaces"]
        let job = """
            name: hello
            executor: shell
            params:
              command: [sh, -c, 'echo "hello $1"', sh, "{{item}}"]
            items: [\(items.map { "\"\($0)\"" }.joined(separator: ", "))]
            """
        let daemon = try Daemon(jobs: ["hello.yaml": job])
        let id = try daemon.startRun("hello")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        for (index, item) in items.enumerated() {
            #expect(try daemon.output(id, index)?.stdout == "hello \(item)\n")
        }
    }

    @Test("every microtask gets LANG=C.UTF-8 unless its stage sets LANG")
    func locale() throws {
        let daemon = try Daemon(jobs: [
            "lang.yaml": """
            name: lang
            stages:
              - {name: default, executor: shell, params: {command: [sh, -c, 'echo "$LANG"']}}
              - name: set
                executor: shell
                params: {command: [sh, -c, 'echo "$LANG"']}
                sandbox: {environment: {LANG: de_DE.UTF-8}}
              - {name: unsandboxed, executor: shell, params: {command: [sh, -c, 'echo "$LANG"']}, sandbox: none}
            """
        ])
        let id = try daemon.startRun("lang")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        #expect(try (0..<3).map { try daemon.output(id, $0)?.stdout } == ["C.UTF-8\n", "de_DE.UTF-8\n", "C.UTF-8\n"])
    }

    @Test("a job's items run as microtasks and their output is stored")
    func helloRuns() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob])
        let id = try daemon.startRun("hello")
        #expect(id == 1, "run ids count from 1 in a fresh state directory")
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .succeeded)
        #expect(run.total == 3)
        #expect(run.counts.succeeded == 3)
        let tasks = try daemon.tasks(id)
        #expect(tasks.map(\.item) == ["alpha", "beta", "gamma"])
        #expect(tasks.allSatisfy { $0.state == .succeeded && $0.exitCode == 0 })
        #expect(tasks.allSatisfy { ($0.cpuSeconds ?? -1) >= 0 && ($0.maxRSS ?? 0) > 0 })
        for task in tasks {
            let output = try #require(try daemon.output(id, task.index))
            #expect(output.stdout == "hello \(task.item)\n")
        }
        #expect(try daemon.startRun("hello") == 2)
    }

    @Test(
        "a running microtask is listed with its process's CPU time and memory",
        arguments: ["", "isolation: pooled"])
    func runningListed(_ isolation: String) throws {
        let gate = makeTemporaryDirectory("tessera-gate")
        chmod(gate, 0o777)
        defer { removeTree(gate) }
        let daemon = try Daemon(jobs: [
            "busy.yaml": """
            name: busy
            executor: shell
            params: {command: [sh, -c, 'while [ ! -e \(gate)/go ]; do sleep 0.01; done']}
            items: [one]
            sandbox: {filesystem: {writable: ["\(gate)"]}}
            \(isolation)
            """
        ])
        let id = try daemon.startRun("busy")
        // The worker tells the pid of a microtask that has run for 10 ms,
        // unprompted by any other frame.
        var listed: JSON?
        try waitUntil("the microtask is listed with its process's figures") {
            listed = try daemon.call("ListRunning")["tasks"]?.arrayValue?.first
            return listed?["rss"]?.intValue != nil
        }
        #expect(listed?["run"]?.intValue == id)
        #expect((listed?["rss"]?.intValue ?? 0) > 0)
        #expect(listed?["cpuSeconds"]?.doubleValue != nil)
        writeFile(gate + "/go", "")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        #expect(try daemon.call("ListRunning")["tasks"]?.arrayValue?.isEmpty == true)
    }

    @Test("run-time parameters override the job's, and are checked")
    func parameterOverrides() throws {
        let daemon = try Daemon(
            jobs: [
                "echo.yaml": """
                name: echo
                executor: echo_params
                params: {text: from-file}
                items: [one]
                """
            ], plugins: ["test-hostile"])
        let id = try daemon.startRun("echo", params: ["text": "from-run", "count": "7"])
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        let result = try #require(try daemon.tasks(id).first?.result)
        let json = try JSON.parse(result)
        #expect(json["text"]?.stringValue == "from-run")
        #expect(json["count"]?.intValue == 7)

        #expect {
            try daemon.startRun("echo", params: ["count": "many"])
        } throws: { error in
            guard case VarlinkClientError.remote(let name, let parameters) = error else { return false }
            return name == ManagerError.invalidParameter && parameters["parameter"]?.stringValue == "count"
        }
        #expect {
            try daemon.startRun("echo", params: ["colour": "red"])
        } throws: { error in
            guard case VarlinkClientError.remote(let name, _) = error else { return false }
            return name == ManagerError.invalidParameter
        }
        #expect {
            try daemon.startRun("nosuchjob")
        } throws: { error in
            guard case VarlinkClientError.remote(let name, let parameters) = error else { return false }
            return name == ManagerError.jobNotFound && parameters["job"]?.stringValue == "nosuchjob"
        }
    }

    @Test("a stage runs after the stages it names, and is skipped when one fails")
    func stagesFormADAG() throws {
        let daemon = try Daemon(jobs: [
            "dag.yaml": """
            name: dag
            stages:
              - name: first
                executor: shell
                params: {command: [echo, "{{item}}"]}
                items: [a, b]
              - name: second
                after: [first]
                executor: shell
                params: {command: ["true"]}
                items: [c]
              - name: broken
                executor: shell
                params: {command: ["false"]}
              - name: never
                after: [broken, second]
                executor: shell
                params: {command: ["true"]}
            """
        ])
        let id = try daemon.startRun("dag")
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .failed)
        let tasks = try daemon.tasks(id)
        let byStage = Dictionary(grouping: tasks, by: \.stage)
        #expect(byStage["first"]?.allSatisfy { $0.state == .succeeded } == true)
        #expect(byStage["second"]?.first?.state == .succeeded)
        #expect(byStage["broken"]?.first?.state == .failed)
        #expect(byStage["broken"]?.first?.reason == "exited with code 1")
        #expect(byStage["never"]?.first?.state == .cancelled)
        #expect(byStage["never"]?.first?.reason == "not run: stage broken failed")
    }

    @Test("the checksum executor (C) stores the SHA-256 of its item")
    func checksumPlugin() throws {
        try checkChecksumExecutor("checksum", plugin: "checksum")
    }

    @Test("the test suite's Swift plugin, the same executor in Swift, stores the same SHA-256")
    func swiftPlugin() throws {
        try checkChecksumExecutor("swift_checksum", plugin: "test-swift")
    }

    /// Runs `executor` (from `plugin`) on a file and on a missing one: the
    /// first gives the file's SHA-256 and size, the second fails and says why.
    private func checkChecksumExecutor(_ executor: String, plugin: String) throws {
        let directory = makeTemporaryDirectory()
        defer { removeTree(directory) }
        chmod(directory, 0o755)
        writeFile(directory + "/data", String(repeating: "tessera\n", count: 10_000))
        // The data lives in the real /tmp, so this stage shares it.
        let daemon = try Daemon(
            jobs: [
                "sum.yaml": """
                name: sum
                executor: \(executor)
                items: [\(directory)/data, \(directory)/missing]
                sandbox: {filesystem: {tmp: shared}}
                """
            ], plugins: [plugin])
        let id = try daemon.startRun("sum")
        #expect(try daemon.wait(forRun: id).state == .failed)
        let tasks = try daemon.tasks(id)
        let expected = runProgram(["sha256sum", directory + "/data"]).stdout.prefix(64)
        let result = try JSON.parse(try #require(tasks[0].result))
        #expect(result["path"]?.stringValue == directory + "/data")
        #expect(result["sha256"]?.stringValue == String(expected))
        #expect(result["bytes"]?.intValue == 80_000)
        #expect(tasks[1].state == .failed)
        #expect(tasks[1].exitCode == 1)
        #expect(try daemon.output(id, 1)?.stderr.contains("cannot open \(directory)/missing: No such file") == true)
    }

    @Test("cancelling a run kills its running microtasks and drops the queued ones")
    func cancel() throws {
        let daemon = try Daemon(
            jobs: [
                "slow.yaml": """
                name: slow
                executor: sleep_ignore_term
                range: {from: 0, to: 6}
                limits: {wall: 5m}
                """
            ], plugins: ["test-hostile"], slots: 2)
        let id = try daemon.startRun("slow")
        try waitUntil("two microtasks to run") { try daemon.tasks(id, state: .running).count == 2 }
        let started = now()
        _ = try daemon.call("CancelRun", ["id": .int(id)])
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .cancelled)
        #expect(run.counts.cancelled == 6)
        #expect(now() - started < 15, "SIGKILL follows SIGTERM after the grace period")
        #expect(try daemon.tasks(id).allSatisfy { $0.reason == "run cancelled" })
        #expect {
            try daemon.call("CancelRun", ["id": .int(id)])
        } throws: { error in
            guard case VarlinkClientError.remote(let name, _) = error else { return false }
            return name == ManagerError.runFinished
        }
    }

    @Test("a job's concurrency caps its running microtasks below the slots")
    func concurrency() throws {
        let daemon = try Daemon(
            jobs: [
                "capped.yaml": """
                name: capped
                concurrency: 1
                executor: shell
                params: {command: [sh, -c, "sleep 0.2"]}
                range: {from: 0, to: 4}
                """
            ], slots: 4)
        let id = try daemon.startRun("capped")
        var most = 0
        try waitUntil("the run to end") {
            let run = try #require(RunInfo(json: try daemon.call("GetRun", ["id": .int(id)])["run"] ?? .null))
            most = max(most, run.counts.running)
            return run.state.isFinal
        }
        #expect(most == 1)
        #expect(try daemon.tasks(id).allSatisfy { $0.state == .succeeded })
    }
}
