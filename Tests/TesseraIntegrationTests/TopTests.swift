// tessera top in a real terminal: tmux runs it at 80x24, the test reads the
// screen as a person would see it, and presses q.

import Testing

@testable import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Top")
struct TopTests {
    @Test("top shows slots, the run's bar and its running microtasks in 80x24, and q quits")
    func fullScreen() throws {
        let gate = makeTemporaryDirectory("tessera-gate")
        chmod(gate, 0o777)
        defer { removeTree(gate) }
        let daemon = try Daemon(jobs: [
            "blocked.yaml": """
            name: blocked
            executor: shell
            params: {command: [sh, -c, 'while [ ! -e \(gate)/go ]; do sleep 0.02; done']}
            items: [a, b, c, d]
            sandbox: none

            """
        ])
        let id = try daemon.startRun("blocked")
        let server = "tessera-top-\(getpid())"
        let tmux = ["tmux", "-L", server, "-f", "/dev/null"]
        defer { _ = runProgram(tmux + ["kill-server"]) }
        let started = runProgram(
            tmux + [
                "new-session", "-d", "-x", "80", "-y", "24", "-s", "top",
                "env TESSERA_SOCKET=\(daemon.socket) TERM=xterm \(binDirectory)/tessera top --interval 0.2",
            ])
        #expect(started.status == 0, "\(started)")
        var screen = ""
        try waitUntil("top to show the running microtasks") {
            screen = runProgram(tmux + ["capture-pane", "-p", "-t", "top"]).stdout
            return screen.contains("RUNNING")
                && screen.split(separator: "\n").filter { $0.contains("blocked  main") }.count == 2
        }
        let lines = screen.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count >= 24 && lines.allSatisfy { $0.count <= 80 }, "\(screen)")
        #expect(lines.first?.hasPrefix("tessera top · tesserad") == true, "\(screen)")
        #expect(screen.contains("2/2   queued 2   runs 1 active"), "\(screen)")
        #expect(screen.contains("admission open"))
        #expect(screen.contains("microtasks/s "))
        #expect(screen.contains("  \(id)   blocked  [░░░░░░░░░░░░░░░░░░░░] 0%  0/4   0"), "\(screen)")
        #expect(lines.last { !$0.isEmpty } == "q quit")
        _ = runProgram(tmux + ["send-keys", "-t", "top", "q"])
        try waitUntil("top to quit on q") { runProgram(tmux + ["has-session", "-t", "top"]).status != 0 }
        writeFile(gate + "/go", "")
        #expect(try daemon.wait(forRun: id).state == .succeeded)

        // Without a terminal: one frame.
        let once = daemon.cli(["top", "--once"])
        #expect(once.status == 0 && once.stdout.contains("RUNS") && !once.stdout.contains("q quit"), "\(once)")
    }
}
