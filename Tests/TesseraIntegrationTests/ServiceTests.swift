// tesserad as a systemd service, tested without systemd as PID 1: a
// NOTIFY_SOCKET datagram receiver of our own sees the notify states in
// order, systemd-socket-activate passes the listening socket, and SIGTERM
// drains running microtasks.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A datagram socket standing in for systemd's notify socket.
final class NotifyReceiver {
    let path: String
    let fd: Int32
    private(set) var messages: [String] = []

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
        guard bound else { throw HarnessError(description: "cannot bind \(path)") }
    }

    /// Reads what has arrived.
    func poll() -> [String] {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            messages.append(String(decoding: buffer[0..<n], as: UTF8.self))
        }
        return messages
    }

    /// The index of the first message that contains `text`, after `start`.
    func index(of text: String, after start: Int = -1) -> Int? {
        poll().indices.first { $0 > start && messages[$0].contains(text) }
    }

    deinit {
        close(fd)
        unlink(path)
    }
}

@Suite("Service")
struct ServiceTests {
    @Test("READY=1, STATUS=, watchdog pings, RELOADING=1 then READY=1, and STOPPING=1, in order")
    func notifyStates() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob], start: false)
        let receiver = try NotifyReceiver(path: daemon.directory + "/notify")
        try daemon.start(environment: ["NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": "400000"])
        var ready = -1
        try waitUntil(timeout: 10, "READY=1") {
            ready = receiver.index(of: "READY=1") ?? -1
            return ready >= 0
        }
        #expect(receiver.messages[ready].contains("STATUS=0 running, 0 queued"))
        try waitUntil(timeout: 10, "a watchdog ping") { receiver.index(of: "WATCHDOG=1", after: ready) != nil }

        _ = try daemon.call("Reload")
        var reloading = -1
        try waitUntil(timeout: 10, "RELOADING=1") {
            reloading = receiver.index(of: "RELOADING=1", after: ready) ?? -1
            return reloading >= 0
        }
        #expect(receiver.messages[reloading].contains("MONOTONIC_USEC="))
        try waitUntil(timeout: 10, "READY=1 after the reload") {
            receiver.index(of: "READY=1", after: reloading) != nil
        }

        #expect(daemon.stop(signal: SIGTERM) == 0)
        #expect(receiver.index(of: "STOPPING=1", after: reloading) != nil)
    }

    @Test("systemd-socket-activate passes the socket, and tesserad serves on it")
    func socketActivation() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob], start: false)
        let activated = daemon.directory + "/activated.sock"
        daemon.socket = activated
        try daemon.start(launcher: ["systemd-socket-activate", "--listen=\(activated)"])
        let id = try daemon.startRun("hello")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        #expect(access(daemon.directory + "/tessera.sock", F_OK) != 0, "it made no socket of its own")
    }

    @Test("while it drains, the daemon answers reads, refuses new work with a reason, and says when it has stopped")
    func answersWhileDraining() throws {
        let daemon = try Daemon(
            jobs: [
                "slow.yaml": "name: slow\nexecutor: shell\nparams: {command: [sleep, '60']}\n",
                "hello.yaml": helloJob,
            ], extraConfig: "shutdown_timeout: 60s")
        let id = try daemon.startRun("slow")
        try waitUntil("the microtask to run") { try daemon.tasks(id, state: .running).count == 1 }
        kill(daemon.pid, SIGTERM)
        try waitUntil("the drain to begin") { daemon.log.contains("send it again to stop at once") }

        let status = daemon.cli(["status"])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("shutting down"), "\(status.stdout)")
        #expect(daemon.cli(["tasks", String(id)]).stdout.contains("running"))
        let refused = daemon.cli(["run", "hello"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("the daemon is shutting down"), "\(refused.stderr)")
        let reload = daemon.cli(["reload"])
        #expect(reload.stderr.contains("the daemon is shutting down"), "\(reload.stderr)")

        // Cancelling the last running microtask ends the drain.
        #expect(daemon.cli(["cancel", String(id)]).status == 0)
        try waitUntil("the daemon to exit") { !daemon.isAlive }
        #expect(access(daemon.socket, F_OK) != 0, "the socket is removed once it stops")
        #expect(daemon.log.split(separator: "\n").last?.hasSuffix("stopped") == true, "\(daemon.log)")
    }

    @Test("SIGTERM lets running microtasks finish; a second SIGTERM stops at once")
    func drain() throws {
        let daemon = try Daemon(
            jobs: [
                "slow.yaml": """
                name: slow
                executor: shell
                params: {command: [sleep, '1']}
                range: {from: 0, to: 2}
                retry: {attempts: 2, backoff: 10ms, on: [lost]}

                """
            ], extraConfig: "shutdown_timeout: 20s")
        let id = try daemon.startRun("slow")
        try waitUntil("both microtasks to run") { try daemon.tasks(id, state: .running).count == 2 }
        #expect(daemon.stop(signal: SIGTERM) == 0)
        try daemon.start()
        let drained = try #require(RunInfo(json: try daemon.call("GetRun", ["id": .int(id)])["run"] ?? .null))
        #expect(drained.state == .succeeded, "both finished during the drain")
        #expect(drained.counts.succeeded == 2)

        let again = try daemon.startRun("slow")
        try waitUntil("both microtasks to run") { try daemon.tasks(again, state: .running).count == 2 }
        kill(daemon.pid, SIGTERM)
        // The log keeps the first daemon's lines too: wait for a second drain.
        try waitUntil("the drain to begin") {
            daemon.log.split(separator: "\n").filter { $0.contains("send it again to stop at once") }.count == 2
        }
        let started = now()
        #expect(daemon.stop(signal: SIGTERM) == 0)
        #expect(now() - started < 0.9, "the second SIGTERM does not wait for the sleeps")
        try daemon.start()
        let resumed = try daemon.wait(forRun: again)
        #expect(resumed.state == .succeeded, "interrupted microtasks run again after the restart, as retry.on says")
        #expect(try daemon.tasks(again).allSatisfy { $0.attempt == 2 })
    }
}

@Suite("Logging")
struct LoggingTests {
    @Test("log_level: in the configuration sets the level; --log-level overrides it")
    func levels() throws {
        let quiet = try Daemon(jobs: ["hello.yaml": helloJob], extraConfig: "log_level: warning", logLevel: nil)
        _ = try quiet.wait(forRun: try quiet.startRun("hello"))
        #expect(!quiet.log.contains("<6>"), "no info lines at warning: \(quiet.log)")

        let chatty = try Daemon(jobs: ["hello.yaml": helloJob], extraConfig: "log_level: warning", logLevel: "info")
        _ = try chatty.wait(forRun: try chatty.startRun("hello"))
        #expect(chatty.log.contains("<6>run 1 of hello succeeded: 3 succeeded"))
        #expect(!chatty.log.contains("<7>"), "no debug lines at info")
    }
}

@Suite("Logging to the journal", .serialized)
struct JournalTests {
    static let journalSocket = "/run/systemd/journal/socket"

    @Test(
        "under systemd, entries go to the journal with PRIORITY= and TESSERA_JOB=/TESSERA_RUN= fields",
        .enabled(
            if: access(journalSocket, F_OK) != 0 && geteuid() == 0,
            "a real journald owns /run/systemd/journal/socket here, or we are not root"))
    func journalFields() throws {
        // Stand in for journald: a datagram socket where sd_journal_send(3) writes.
        mkdir("/run/systemd", 0o755)
        mkdir("/run/systemd/journal", 0o755)
        let journal = try NotifyReceiver(path: JournalTests.journalSocket)
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob], logLevel: "info", start: false)
        // JOURNAL_STREAM names the stream stderr is connected to: here the log file.
        writeFile(daemon.logPath, "")
        var info = stat()
        stat(daemon.logPath, &info)
        try daemon.start(environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)"])
        _ = try daemon.wait(forRun: try daemon.startRun("hello"))
        try waitUntil(timeout: 10, "the run's entry in the journal") {
            journal.index(of: "MESSAGE=run 1 of hello succeeded") != nil
        }
        let entry = journal.messages[try #require(journal.index(of: "MESSAGE=run 1 of hello succeeded"))]
        let fields = Set(entry.split(separator: "\n").map(String.init))
        #expect(fields.contains("PRIORITY=6"))
        #expect(fields.contains("TESSERA_JOB=hello"))
        #expect(fields.contains("TESSERA_RUN=1"))
        #expect(fields.contains("SYSLOG_IDENTIFIER=tesserad"))
        #expect(!daemon.log.contains("<6>run 1 of hello succeeded"), "not written to stderr as well")
    }
}
