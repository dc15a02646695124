// Restarts and reloads: accepted work survives a daemon that is killed, a
// reload picks up new job files, and a broken reload keeps what runs.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Lifecycle")
struct LifecycleTests {
    @Test("a run accepted before the daemon was killed finishes after a restart; lost microtasks as retry says")
    func recoveryAfterKill() throws {
        let daemon = try Daemon(
            jobs: [
                "batch.yaml": """
                name: batch
                executor: shell
                params: {command: [sleep, '0.3']}
                range: {from: 0, to: 8}
                retry: {attempts: 2, backoff: 10ms, on: [lost]}

                """,
                "once.yaml": "name: once\nexecutor: shell\nparams: {command: [sleep, '30']}\n",
            ], slots: 3)
        let once = try daemon.startRun("once")
        let id = try daemon.startRun("batch", params: ["command": "sh,-c,sleep 0.3; echo from-run {{item}}"])
        try waitUntil("some microtasks to finish") {
            let run = RunInfo(json: try daemon.call("GetRun", ["id": .int(id)])["run"] ?? .null)
            return (run?.counts.succeeded ?? 0) >= 2
        }
        daemon.stop(signal: SIGKILL)
        try daemon.start()
        // Without a retry policy for it, a lost microtask fails, and says why.
        let lost = try daemon.wait(forRun: once)
        #expect(lost.state == .failed)
        #expect(try daemon.tasks(once).first?.reason == "lost: tesserad stopped while it ran")
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .succeeded)
        #expect(run.counts.succeeded == 8)
        for index in 0..<8 {
            #expect(try daemon.output(id, index)?.stdout == "from-run \(index)\n", "the run's parameters survive too")
        }
        // Those that were running when it died ran again; both attempts are kept.
        let again = try daemon.tasks(id).filter { $0.attempt == 2 }
        #expect(!again.isEmpty, "two microtasks were running when the daemon was killed")
        if let task = again.first {
            let attempts = try
                (daemon.call("ListAttempts", ["run": .int(id), "index": .int(Int64(task.index))])[
                    "attempts"]?.arrayValue ?? []).compactMap(AttemptInfo.init(json:))
            #expect(attempts.map(\.attempt) == [1, 2])
            #expect(attempts.map(\.state) == [.failed, .succeeded])
            #expect(attempts.first?.reason == "lost: tesserad stopped while it ran")
            let listed = daemon.cli(["attempts", String(id), String(task.index)])
            #expect(listed.stdout.contains("lost: tesserad stopped while it ran"), "\(listed.stdout)")
        }
        #expect(try daemon.startRun("batch") == id + 1, "ids keep counting after a restart")
    }

    @Test("reload adds new jobs; a broken job file keeps the running configuration")
    func reload() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob])
        writeFile(daemon.jobsDirectory + "/second.yaml", "name: second\nexecutor: noop\n")
        let reply = try daemon.call("Reload")
        #expect(reply["jobs"]?.intValue == 2)

        writeFile(daemon.jobsDirectory + "/third.yaml", "name: third\nexecutor: noop\nitems: {a: 1}\n")
        #expect {
            try daemon.call("Reload")
        } throws: { error in
            guard case VarlinkClientError.remote(let name, let parameters) = error else { return false }
            let errors = parameters["errors"]?.arrayValue?.compactMap(\.stringValue) ?? []
            return name == ManagerError.reloadFailed
                && errors.contains { $0.hasPrefix(daemon.jobsDirectory + "/third.yaml:3:8: items:") }
        }
        let jobs = try daemon.call("ListJobs")["jobs"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
        #expect(jobs == ["hello", "second"])

        kill(daemon.pid, SIGHUP)
        try waitUntil("SIGHUP's reload to be logged") {
            daemon.log.contains("reload: \(daemon.jobsDirectory)/third.yaml")
        }
        #expect(daemon.isAlive)
    }

    @Test("a run in flight keeps the plugins it started with when a reload removes one")
    func removedPluginInFlight() throws {
        let daemon = try Daemon(
            jobs: [
                "slow.yaml": "name: slow\nexecutor: shell\nparams: {command: [sleep, '0.2']}\nrange: {from: 0, to: 6}\n"
            ], slots: 1)
        let id = try daemon.startRun("slow")
        try waitUntil("the first microtask to run") { try daemon.tasks(id, state: .running).count == 1 }
        unlink(daemon.pluginDirectory + "/shell.so")
        unlink(daemon.jobsDirectory + "/slow.yaml")
        #expect(try daemon.call("Reload")["plugins"]?.intValue == 1)
        let run = try daemon.wait(forRun: id)
        let reasons = try daemon.tasks(id).compactMap(\.reason)
        #expect(run.state == .succeeded, "\(reasons)")
        #expect(run.counts.succeeded == 6)
        try waitUntil("the old worker to stop once the run is over") {
            runProgram(["pgrep", "-c", "-f", "-P", String(daemon.pid), "tessera-worker zygote"]).stdout
                .trimmingWhitespace == "1"
        }
    }

    @Test("a plugin replaced under the same file name is loaded anew on reload")
    func replacedPlugin() throws {
        let daemon = try Daemon(plugins: ["noop"])
        let file = daemon.pluginDirectory + "/noop.so"
        unlink(file)
        copyFile("\(binDirectory)/libtessera-test-hostile.so", file, mode: 0o755)
        writeFile(daemon.jobsDirectory + "/greet.yaml", "name: greet\nexecutor: ok\nitems: [x]\n")
        _ = try daemon.call("Reload")
        let plugins = try daemon.call("ListPlugins")["plugins"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
        #expect(plugins == ["hostile"])
        let id = try daemon.startRun("greet")
        #expect(try daemon.wait(forRun: id).state == .succeeded, "the worker runs the new file's executors")
    }

    @Test("SIGTERM stops the daemon cleanly and removes its socket")
    func terminate() throws {
        let daemon = try Daemon()
        let status = daemon.stop(signal: SIGTERM)
        #expect(status == 0, "exit status \(status): \(daemon.log)")
        #expect(access(daemon.socket, F_OK) != 0)
    }

    @Test("a second daemon on the same socket refuses to start")
    func secondDaemon() throws {
        let daemon = try Daemon()
        let second = runProgram(["\(binDirectory)/tesserad", "--config", daemon.configPath])
        #expect(second.status == 1)
        #expect(second.stderr.contains("another tesserad is already"))
        #expect(try daemon.call("GetStatus")["status"] != nil)
    }
}
