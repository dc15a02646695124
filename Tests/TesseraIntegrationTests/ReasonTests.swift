// Why a microtask failed, as its record says: the cause the kernel reports
// (its wait status, the signals it received, its rusage and peak address
// space as the worker reads them), never what the microtask writes about
// itself, plus the executor's own last error line. Each case runs through
// the real daemon with the real shell plugin or the hostile test plugin.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Reasons")
struct ReasonTests {
    /// The tasks of a finished run of `job`, by stage name.
    static func finishedTasks(_ daemon: Daemon, _ job: String) throws -> [String: TaskInfo] {
        let id = try daemon.startRun(job)
        _ = try daemon.wait(forRun: id, timeout: 120)
        return Dictionary(grouping: try daemon.tasks(id), by: \.stage).mapValues { $0[0] }
    }

    @Test("a command the shell executor runs is the microtask: limits and signals are reported as its own")
    func shellCommandsGetTrueReasons() throws {
        let daemon = try Daemon(
            jobs: [
                "shell.yaml": """
                name: shell
                stages:
                  - name: cpu
                    executor: shell
                    params: {command: [sh, -c, "while :; do :; done"]}
                    limits: {cpu: 1s, wall: 60s}
                  - name: segv
                    executor: shell
                    params: {command: [sh, -c, "kill -SEGV $$"]}
                  - name: term
                    executor: shell
                    params: {command: [sh, -c, "kill -TERM $$"]}
                  - name: memory
                    executor: shell
                    params: {command: [perl, -e, "my @a; push @a, 'x' x 1048576 while 1"]}
                    limits: {memory: 128MiB}
                """
            ], slots: 4)
        let tasks = try ReasonTests.finishedTasks(daemon, "shell")
        #expect(tasks["cpu"]?.reason == "cpu limit 1s exceeded", "\(tasks["cpu"]?.reason ?? "")")
        #expect(tasks["segv"]?.signal == "SIGSEGV", "\(tasks["segv"]?.reason ?? "")")
        #expect(tasks["segv"]?.reason == "killed by SIGSEGV")
        #expect(tasks["term"]?.signal == "SIGTERM", "\(tasks["term"]?.reason ?? "")")
        #expect(
            tasks["memory"]?.reason?.hasPrefix("memory limit 128MiB exceeded") == true,
            "\(tasks["memory"]?.reason ?? "")")
        for task in tasks.values { #expect(task.state == .failed, "\(task.stage)") }
    }

    @Test("what a microtask writes on its channel cannot change how it is said to have died")
    func forgedCausesAreNotBelieved() throws {
        let daemon = try Daemon(
            jobs: [
                "forge.yaml": """
                name: forge
                stages:
                  - {name: signal, executor: forge_signal}
                  - {name: peak, executor: forge_peak, limits: {memory: 256MiB}}
                  - {name: xcpu, executor: forge_xcpu, limits: {cpu: 10s}}
                  - {name: sigsys, executor: forge_sigsys}
                """
            ], plugins: ["test-hostile"])
        let tasks = try ReasonTests.finishedTasks(daemon, "forge")
        let signal = try #require(tasks["signal"])
        #expect(signal.signal != "SIGSEGV", "\(signal.reason ?? "")")
        #expect(signal.reason?.contains("SIGSEGV") == false, "\(signal.reason ?? "")")
        #expect(signal.reason?.contains("malformed data on its result channel") == true, "\(signal.reason ?? "")")
        let peak = try #require(tasks["peak"])
        #expect(peak.reason?.contains("memory limit") == false, "\(peak.reason ?? "")")
        #expect(peak.state == .failed)
        // Signals a microtask queues itself with the kernel's codes die as
        // signals, not as limits or the sandbox's doing.
        #expect(tasks["xcpu"]?.reason == "killed by SIGXCPU", "\(tasks["xcpu"]?.reason ?? "")")
        #expect(tasks["sigsys"]?.reason == "killed by SIGSYS", "\(tasks["sigsys"]?.reason ?? "")")
    }

    @Test("a failed microtask's reason carries the executor's own last error line")
    func reasonsCarryTheLastErrorLine() throws {
        let daemon = try Daemon(
            jobs: [
                "errors.yaml": """
                name: errors
                stages:
                  - name: stderr
                    executor: shell
                    params: {command: [sh, -c, "echo working; echo 'cat: /nowhere: No such file or directory' >&2; exit 2"]}
                  - {name: logged, executor: log_error}
                  - {name: raised, executor: term_self}
                """
            ], plugins: ["shell", "test-hostile"])
        let tasks = try ReasonTests.finishedTasks(daemon, "errors")
        #expect(tasks["stderr"]?.reason == "exited with code 2: cat: /nowhere: No such file or directory")
        #expect(tasks["logged"]?.reason == "exited with code 4: the input is not a number")
        #expect(tasks["raised"]?.signal == "SIGTERM", "\(tasks["raised"]?.reason ?? "")")
    }
}
