// Reading plugin declarations at a reload: it happens beside the daemon's
// loop (a plugin that hangs holds up neither the control socket nor the
// limits of running microtasks), a declaration's size is bounded, and
// every plugin problem reaches whoever asked for the reload.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Plugins at a reload")
struct PluginReloadTests {
    /// Starts `tessera reload` against the daemon without waiting for it.
    static func startReload(_ daemon: Daemon, output: String) throws -> pid_t {
        try spawn(
            ["\(binDirectory)/tessera", "--socket", daemon.socket, "reload"],
            environment: processEnvironment(), stdout: output, stderr: output)
    }

    static func isRunning(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    static func exitStatus(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status >> 8) & 0xff
    }

    @Test("a plugin that hangs while loading holds up neither the socket nor the limits of running microtasks")
    func hangingPluginDoesNotBlock() throws {
        let daemon = try Daemon(
            jobs: ["slow.yaml": "name: slow\nexecutor: shell\nparams: {command: [sleep, '30']}\nlimits: {wall: 1s}\n"],
            extraConfig: "plugin_timeout: 2s")
        let id = try daemon.startRun("slow")
        try waitUntil("the microtask to run") { try daemon.tasks(id, state: .running).count == 1 }
        copyFile("\(binDirectory)/libtessera-test-hanginit.so", daemon.pluginDirectory + "/hang.so", mode: 0o755)
        let output = daemon.directory + "/reload.out"
        let reload = try PluginReloadTests.startReload(daemon, output: output)
        try waitUntil("the daemon to be describing the plugins") {
            runProgram(["pgrep", "-f", "tessera-worker describe"]).stdout.contains("\n")
        }

        // While the plugins are being described:
        let run = try daemon.wait(forRun: id)
        let status = try daemon.call("GetStatus")["status"]
        #expect(PluginReloadTests.isRunning(reload), "the reload must still be waiting for the hanging plugin")
        #expect(run.state == .failed)
        #expect(try daemon.tasks(id).first?.reason == "wall time limit 1s exceeded")
        #expect(status?["runningTasks"]?.intValue == 0)

        #expect(PluginReloadTests.exitStatus(reload) == 1, "a refused plugin is a problem: \(readFile(output))")
        let said = readFile(output)
        #expect(said.contains("hang.so"), "\(said)")
        #expect(said.contains("longer than 2s"), "\(said)")
        let plugins = try daemon.call("ListPlugins")["plugins"]?.arrayValue ?? []
        #expect(Set(plugins.compactMap { $0["name"]?.stringValue }) == ["noop", "shell"], "the others still load")
    }

    @Test("reloads with no plugin file at all each finish")
    func reloadWithoutPlugins() throws {
        let daemon = try Daemon(plugins: [])
        for _ in 0..<3 {
            let result = daemon.cli(["reload"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("reloaded: 0 job(s), 0 plugin(s)"), "\(result.stdout)")
        }
    }

    @Test("a plugin that declares 40,000 executors is refused, and says why")
    func declarationsAreBounded() throws {
        let daemon = try Daemon()
        copyFile("\(binDirectory)/libtessera-test-manyexec.so", daemon.pluginDirectory + "/many.so", mode: 0o755)
        let result = daemon.cli(["reload"])
        #expect(result.status == 1)
        #expect(
            result.stderr.contains("many.so: declares 40000 executors; at most 256 are allowed"), "\(result.stderr)")
        #expect(try daemon.call("ListPlugins")["plugins"]?.arrayValue?.count == 2)
    }

    @Test("a reload reports every plugin problem, also when the rest of it takes effect")
    func reloadReportsPluginProblems() throws {
        let daemon = try Daemon()
        copyFile("\(binDirectory)/libtessera-noop.so", daemon.pluginDirectory + "/open.so", mode: 0o777)
        copyFile("\(binDirectory)/libtessera-shell.so", daemon.pluginDirectory + "/shell2.so", mode: 0o755)
        writeFile(daemon.jobsDirectory + "/new.yaml", "name: new\nexecutor: noop\n")
        let result = daemon.cli(["reload"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("reloaded: 1 job(s), 2 plugin(s)"), "\(result.stdout)")
        #expect(result.stderr.contains("open.so: writable by group or others"), "\(result.stderr)")
        #expect(
            result.stderr.contains("shell2.so: executor \"shell\" is already provided by"), "\(result.stderr)")
        #expect(try daemon.call("ListJobs")["jobs"]?.arrayValue?.count == 1, "the new job was loaded")

        // A job that needs the refused plugin fails the reload, with both reasons.
        chmod(daemon.pluginDirectory + "/noop.so", 0o777)
        let failed = daemon.cli(["reload"])
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("noop.so: writable by group or others"), "\(failed.stderr)")
        #expect(failed.stderr.contains("unknown executor \"noop\""), "\(failed.stderr)")
        #expect(try daemon.call("ListPlugins")["plugins"]?.arrayValue?.count == 2, "the running plugins stay")
    }
}
