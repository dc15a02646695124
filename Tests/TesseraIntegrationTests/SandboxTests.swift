// The hostile suite: every attack of the attacks test plugin runs through
// the real daemon twice, once under the default sandbox and once with
// `sandbox: none`. The confined run must be stopped, with the reason or
// error the confinement gives; the unconfined run must get through, which
// proves the test can fail. Targets are sacrificial (a sleeping process
// the test starts, a directory it made), so the unconfined run harms
// nothing else.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A process to be attacked: `sleep` under a name of our own.
final class Sacrifice {
    let pid: pid_t

    init() throws {
        pid = try spawn(["sleep", "300"], environment: processEnvironment())
    }

    var isAlive: Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    deinit {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

/// A listening socket the attacks try to reach from inside.
final class Listener {
    let fd: Int32
    let port: UInt16
    let abstractName: String?

    /// A TCP listener on 127.0.0.1, on a port the kernel picks.
    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw HarnessError(description: "cannot listen on 127.0.0.1") }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
        abstractName = nil
    }

    /// An abstract Unix socket named `name`.
    init(abstract name: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 16) == 0 }
        }
        guard bound else { throw HarnessError(description: "cannot listen on @\(name)") }
        self.fd = fd
        port = 0
        abstractName = name
    }

    /// A Unix socket at `path` that anyone may connect to.
    init(path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        unlink(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 && listen(fd, 16) == 0
            }
        }
        guard bound, chmod(path, 0o777) == 0 else { throw HarnessError(description: "cannot listen on \(path)") }
        self.fd = fd
        port = 0
        abstractName = nil
        self.path = path
    }

    /// The socket file, for a pathname socket.
    var path: String?

    deinit {
        close(fd)
        if let path { unlink(path) }
    }
}

/// One attack and what each run of it must show.
struct Attack: CustomTestStringConvertible, Sendable {
    let executor: String
    /// What confinement stops it, for the test's name.
    let stoppedBy: String
    /// Extra stage keys for both runs (limits, targets are added).
    var stageExtra = ""
    /// The error text the confined run must print after "blocked: ...", or
    /// nil when a signal ends it (see `confinedSignal`).
    var confinedError: String?
    var confinedSignal: String?
    /// Whether the unconfined control must get through. Some attacks are
    /// stopped by what every profile has (rlimits, closed fds), or would be
    /// harmful unconfined; they have no control run.
    var controlEscapes = true
    /// The error the unconfined control prints instead of escaping, where
    /// the attack is judged by its errno rather than by getting through.
    var controlError: String?

    var testDescription: String { "\(executor) (stopped by \(stoppedBy))" }
}

@Suite("Sandbox: the hostile suite", .serialized)
struct HostileSuiteTests {
    static let attacks: [Attack] = [
        Attack(executor: "read_file", stoppedBy: "the identity switch", confinedError: "Permission denied"),
        Attack(executor: "write_file", stoppedBy: "the read-only tree", confinedError: "Read-only file system"),
        Attack(executor: "connect_tcp", stoppedBy: "the empty network namespace", confinedError: "Connection refused"),
        Attack(
            executor: "connect_abstract", stoppedBy: "the empty network namespace",
            confinedError: "Connection refused"),
        Attack(
            executor: "connect_unix", stoppedBy: "/run hidden with network: none",
            confinedError: "No such file or directory"),
        Attack(executor: "ptrace", stoppedBy: "the seccomp filter", confinedError: "Operation not permitted"),
        Attack(executor: "kill", stoppedBy: "the pid namespace", confinedError: "No such process"),
        Attack(
            executor: "tiocsti", stoppedBy: "the seccomp filter", confinedError: "Operation not permitted",
            controlEscapes: false, controlError: "Inappropriate ioctl for device"),
        Attack(executor: "int80", stoppedBy: "the seccomp architecture check", confinedSignal: "SIGSYS"),
        Attack(executor: "setuid", stoppedBy: "the identity switch", confinedError: "Operation not permitted"),
        Attack(executor: "mount", stoppedBy: "the seccomp filter", confinedError: "Operation not permitted"),
        Attack(executor: "load_module", stoppedBy: "the seccomp filter", confinedError: "Operation not permitted"),
        Attack(
            executor: "proc_mem", stoppedBy: "the pid namespace's /proc", confinedError: "No such file or directory"),
        Attack(executor: "unshare_user", stoppedBy: "the seccomp filter", confinedError: "Operation not permitted"),
        Attack(
            executor: "inherited_fds", stoppedBy: "closing every descriptor (every profile)",
            confinedError: "Bad file descriptor", controlEscapes: false, controlError: "Bad file descriptor"),
    ]

    /// Runs one attack confined (a process of its own, and in a pooled
    /// process) and unconfined, and returns the tasks with their output.
    static func run(_ attack: Attack, target: String, in daemon: Daemon) throws
        -> (confined: (TaskInfo, TaskOutput), pooled: (TaskInfo, TaskOutput), control: (TaskInfo, TaskOutput))
    {
        let job = """
            name: \(attack.executor.replacingUnderscores)
            stages:
              - name: confined
                executor: \(attack.executor)
                params: {target: "\(target)"}
                \(attack.stageExtra)
              - name: pooled
                executor: \(attack.executor)
                params: {target: "\(target)"}
                isolation: pooled
                \(attack.stageExtra)
              - name: control
                executor: \(attack.executor)
                params: {target: "\(target)"}
                sandbox: none
                \(attack.stageExtra)
            """
        writeFile(daemon.jobsDirectory + "/\(attack.executor).yaml", job)
        _ = try daemon.call("Reload")
        let id = try daemon.startRun(attack.executor.replacingUnderscores)
        _ = try daemon.wait(forRun: id)
        let tasks = try daemon.tasks(id)
        let confined = try #require(tasks.first { $0.stage == "confined" })
        let pooled = try #require(tasks.first { $0.stage == "pooled" })
        let control = try #require(tasks.first { $0.stage == "control" })
        return (
            (confined, try #require(try daemon.output(id, confined.index))),
            (pooled, try #require(try daemon.output(id, pooled.index))),
            (control, try #require(try daemon.output(id, control.index)))
        )
    }

    @Test("an attack is stopped confined and gets through unconfined", arguments: attacks)
    func attack(_ attack: Attack) throws {
        let daemon = try Daemon(plugins: ["test-attacks"])
        let sacrifice = try Sacrifice()
        let listener = try Listener()
        let abstract = try Listener(abstract: "tessera-test-\(getpid())-\(attack.executor)")
        let pathname = try Listener(path: "/run/tessera-test-\(getpid())-\(attack.executor).sock")
        let directory = makeTemporaryDirectory("tessera-attack")
        defer { removeTree(directory) }
        chmod(directory, 0o777)
        let target: String
        switch attack.executor {
        case "read_file": target = "/etc/shadow"
        case "write_file": target = "/var/lib/tessera-attack-\(getpid())"
        case "connect_tcp": target = String(listener.port)
        case "connect_abstract": target = abstract.abstractName ?? ""
        case "connect_unix": target = pathname.path ?? ""
        case "ptrace", "kill", "proc_mem": target = String(sacrifice.pid)
        case "tiocsti": target = "0"
        case "mount": target = directory
        default: target = ""
        }
        defer { if attack.executor == "write_file" { unlink(target) } }

        let (confined, pooled, control) = try HostileSuiteTests.run(attack, target: target, in: daemon)
        for (how, task) in [("confined", confined), ("pooled", pooled)] {
            #expect(task.0.state == .failed, "\(how): \(task.1.stdout)\(task.1.stderr)")
            #expect(!task.1.stdout.contains("escaped"), "\(how)")
            if let error = attack.confinedError {
                #expect(task.0.exitCode == 2, "\(how): \(task.0.reason ?? "")")
                #expect(task.1.stderr.contains(error), "\(how) stderr: \(task.1.stderr)")
            }
            if let signal = attack.confinedSignal {
                #expect(task.0.signal == signal, "\(how): \(task.0.reason ?? "")")
            }
        }
        if attack.controlEscapes {
            #expect(control.1.stdout.contains("escaped"), "control: \(control.1.stdout)\(control.1.stderr)")
            #expect(control.0.state == .succeeded)
        } else if let error = attack.controlError {
            #expect(control.1.stderr.contains(error), "control stderr: \(control.1.stderr)")
        }
        #expect(daemon.isAlive)
        if attack.executor != "kill" { #expect(sacrifice.isAlive) }
    }

    @Test("a writable path can be written; the rest of the tree cannot")
    func writablePaths() throws {
        let directory = "/var/lib/tessera-writable-\(getpid())"
        mkdir(directory, 0o777)
        chmod(directory, 0o777)
        defer { removeTree(directory) }
        let daemon = try Daemon(
            jobs: [
                "w.yaml": """
                name: w
                executor: write_file
                params: {target: "\(directory)/inside"}
                sandbox: {filesystem: {writable: ["\(directory)"]}}
                """
            ], plugins: ["test-attacks"])
        let id = try daemon.startRun("w")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        #expect(readFile(directory + "/inside") == "tessera\n")
    }

    @Test("a file written to /tmp is gone for the next microtask")
    func privateTmp() throws {
        let marker = "/tmp/tessera-private-tmp-\(getpid())"
        defer { unlink(marker) }
        let daemon = try Daemon(
            jobs: [
                "tmp.yaml": """
                name: tmp
                stages:
                  - {name: write, executor: write_file, params: {target: "\(marker)"}}
                  - {name: read, after: [write], executor: read_file, params: {target: "\(marker)"}}
                """
            ], plugins: ["test-attacks"])
        let id = try daemon.startRun("tmp")
        _ = try daemon.wait(forRun: id)
        let tasks = try daemon.tasks(id)
        #expect(tasks[0].state == .succeeded, "the microtask can write its own /tmp")
        #expect(tasks[1].state == .failed)
        #expect(try daemon.output(id, 1)?.stderr.contains("No such file or directory") == true)
        #expect(access(marker, F_OK) != 0, "nothing reached the real /tmp")
    }

    @Test("a setsid'd, double-forked grandchild ends with its microtask")
    func nothingOutlivesItsMicrotask() throws {
        let daemon = try Daemon(
            jobs: [
                "d.yaml": """
                name: d
                stages:
                  - {name: confined, executor: daemonize}
                """
            ], plugins: ["test-attacks"])
        let id = try daemon.startRun("d")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        try waitUntil(timeout: 10, "the grandchild to be gone") {
            runProgram(["pgrep", "-x", "tessera-escapee"]).stdout.isEmpty
        }
        // Without the sandbox, the same grandchild survives: the test can fail.
        writeFile(daemon.jobsDirectory + "/u.yaml", "name: u\nexecutor: daemonize\nsandbox: none\n")
        _ = try daemon.call("Reload")
        let control = try daemon.startRun("u")
        _ = try daemon.wait(forRun: control)
        let survivors = runProgram(["pgrep", "-x", "tessera-escapee"]).stdout
        #expect(!survivors.isEmpty, "unconfined, the grandchild escapes the process group")
        _ = runProgram(["pkill", "-9", "-x", "tessera-escapee"])
    }

    @Test("a fork bomb is held by the process limit and cleaned up with its namespace")
    func forkBomb() throws {
        let daemon = try Daemon(
            jobs: [
                "bomb.yaml": """
                name: bomb
                executor: fork_bomb
                limits: {processes: 64, wall: 2s}
                sandbox: {user: 61000}
                """,
                "ok.yaml": "name: ok\nexecutor: read_file\nparams: {target: /etc/hostname}\n",
            ], plugins: ["test-attacks"])
        let id = try daemon.startRun("bomb")
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .failed)
        #expect(try daemon.tasks(id).first?.reason == "wall time limit 2s exceeded")
        try waitUntil(timeout: 10, "the bomb's processes to be gone") {
            // A uid of its own, so other tests' processes do not count.
            runProgram(["pgrep", "-u", "61000", "-c"]).stdout.trimmingWhitespace == "0"
        }
        #expect(try daemon.wait(forRun: try daemon.startRun("ok")).state == .succeeded)
    }

    @Test("file-size and descriptor limits hold under the sandbox")
    func fileAndDescriptorLimits() throws {
        let daemon = try Daemon(
            jobs: [
                "files.yaml": """
                name: files
                stages:
                  - {name: size, executor: file_bomb, limits: {file_size: 1MiB}}
                  - {name: fds, executor: fd_exhaustion, limits: {open_files: 32}}
                """
            ], plugins: ["test-attacks"])
        let id = try daemon.startRun("files")
        _ = try daemon.wait(forRun: id)
        let tasks = try daemon.tasks(id)
        #expect(tasks[0].reason == "file size limit 1MiB exceeded")
        let opened = Int(tasks[1].result ?? "") ?? 999
        #expect(opened < 32, "opened \(opened) descriptors under a limit of 32")
    }
}

extension String {
    /// Job names allow [a-z0-9_-]; executor names here use underscores.
    var replacingUnderscores: String { String(map { $0 == "_" ? "-" : $0 }) }
}

@Suite("Sandbox: rootless")
struct RootlessTests {
    @Test("an unprivileged tesserad confines its microtasks with a user namespace")
    func rootless() throws {
        let nobody = (uid: uid_t(65534), gid: gid_t(65534))
        let daemon = try Daemon(
            jobs: [
                "who.yaml": """
                name: who
                stages:
                  - name: inside
                    executor: shell
                    params: {command: [sh, -c, "id -u; cat /proc/net/dev | tail -n +3 | cut -d: -f1; touch /etc/x"]}
                """
            ], runAs: nobody)
        let id = try daemon.startRun("who")
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .failed, "touch /etc/x must fail")
        let output = try #require(try daemon.output(id, 0))
        let lines = output.stdout.split(separator: "\n").map { String($0).trimmingWhitespace }
        #expect(lines.first == "65534", "\(output.stdout)\(output.stderr)")
        #expect(Array(lines.dropFirst()) == ["lo"], "only loopback in the empty network namespace")
        #expect(output.stderr.contains("Read-only file system"), "\(output.stderr)")
        #expect(daemon.log.contains("not root: microtasks get a user namespace"))
    }
}

@Suite("Sandbox: dynamic users")
struct DynamicUserTests {
    @Test(
        "microtasks running at once get a uid and gid of their own, from the dynamic range",
        arguments: ["sandbox: {user: dynamic}", "# user: dynamic is the default for a root daemon"])
    func distinctUsers(_ sandbox: String) throws {
        let daemon = try Daemon(
            jobs: [
                "dyn.yaml": """
                name: dyn
                executor: shell
                params: {command: [sh, -c, "id -u; id -g; sleep 0.5"]}
                range: {from: 0, to: 4}
                \(sandbox)
                """
            ], slots: 4)
        let id = try daemon.startRun("dyn")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        var uids: Set<Int> = []
        for index in 0..<4 {
            let lines = try #require(try daemon.output(id, index)).stdout.split(separator: "\n")
            let uid = try #require(Int(lines.first ?? ""))
            #expect(lines.count == 2 && Int(lines[1]) == uid, "the gid is the uid")
            #expect((61184...65519).contains(uid))
            uids.insert(uid)
        }
        #expect(uids.count == 4, "four microtasks ran at once, so four uids: \(uids)")
        let check = runProgram(["\(binDirectory)/tesserad", "--check", "--config", daemon.configPath])
        #expect(check.stdout.contains("user: dynamic: a uid and gid of its own"), "\(check.stdout)")
    }

    @Test("two daemons at once lend different uids, each locked as systemd's DynamicUser= locks its own, until exit")
    func twoDaemons() throws {
        let gate = makeTemporaryDirectory("tessera-gate")
        chmod(gate, 0o777)
        defer { removeTree(gate) }
        func job(_ tag: String) -> String {
            """
            name: dyn
            executor: shell
            params: {command: [sh, -c, 'id -u > \(gate)/\(tag)-$1; while [ ! -e \(gate)/go ]; do sleep 0.02; done', sh, "{{item}}"]}
            items: [a, b]
            sandbox: {filesystem: {writable: ["\(gate)"]}}
            """
        }
        let first = try Daemon(jobs: ["dyn.yaml": job("first")], slots: 2)
        let second = try Daemon(jobs: ["dyn.yaml": job("second")], slots: 2)
        let runs = (try first.startRun("dyn"), try second.startRun("dyn"))
        let files = ["first-a", "first-b", "second-a", "second-b"].map { gate + "/" + $0 }
        try waitUntil("all four microtasks have written their uid") {
            files.allSatisfy { Int(readFile($0).split(separator: "\n").first ?? "") != nil }
        }
        let uids = files.map { Int(readFile($0).split(separator: "\n").first ?? "") ?? -1 }
        #expect(Set(uids).count == 4, "four microtasks of two daemons ran at once: \(uids)")
        var inodes: [Int: UInt] = [:]
        for uid in uids {
            // Held: the file exists and its lock cannot be taken.
            let fd = open("/run/systemd/dynamic-uid/\(uid)", O_RDWR | O_CLOEXEC)
            #expect(fd >= 0, "uid \(uid) has its lock file")
            guard fd >= 0 else { continue }
            #expect(flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK, "uid \(uid) is locked")
            var status = stat()
            if fstat(fd, &status) == 0 { inodes[uid] = UInt(status.st_ino) }
            close(fd)
        }
        writeFile(gate + "/go", "")
        #expect(try first.wait(forRun: runs.0).state == .succeeded)
        #expect(try second.wait(forRun: runs.1).state == .succeeded)
        #expect(first.stop() == 0)
        for uid in uids[0..<2] {
            // Its file is gone; another daemon of the test suite may have
            // taken the uid since, with a new file.
            var status = stat()
            let present = stat("/run/systemd/dynamic-uid/\(uid)", &status) == 0
            #expect(!present || UInt(status.st_ino) != inodes[uid], "the first daemon let go of \(uid)")
        }
        for uid in uids[2..<4] {
            #expect(access("/run/systemd/dynamic-uid/\(uid)", F_OK) == 0, "the second daemon still holds \(uid)")
        }
    }
}

@Suite("Sandbox: file capabilities")
struct FileCapabilityTests {
    @Test("a binary with file capabilities gains none of them in a microtask")
    func fileCapabilities() throws {
        let directory = "/var/lib/tessera-caps-\(getpid())"
        mkdir(directory, 0o755)
        defer { removeTree(directory) }
        let binary = directory + "/capcat"
        copyFile("/bin/cat", binary, mode: 0o755)
        let setcap = runProgram(["setcap", "cap_dac_read_search+ep", binary])
        try #require(setcap.status == 0, "setcap (libcap2-bin, installed by make test): \(setcap.stderr)")
        // Outside Tessera the capability is real: nobody reads /etc/shadow with it.
        let outside = runProgram(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary, "/etc/shadow"])
        #expect(outside.status == 0, "the control must read the file: \(outside.stderr)")

        let daemon = try Daemon(jobs: [
            "caps.yaml": "name: caps\nexecutor: shell\nparams: {command: [\(binary), /etc/shadow]}\n"
        ])
        let id = try daemon.startRun("caps")
        #expect(try daemon.wait(forRun: id).state == .failed)
        let output = try #require(try daemon.output(id, 0))
        #expect(output.stdout.isEmpty)
        #expect(output.stderr.contains("Permission denied"), "\(output.stderr)")
    }
}

@Suite("Sandbox: the daemon and its worker")
struct DaemonTargetTests {
    @Test("a confined microtask can neither ptrace nor kill the daemon or its worker")
    func attacksOnTheDaemon() throws {
        let daemon = try Daemon(plugins: ["test-attacks"])
        let worker = runProgram(["pgrep", "-f", "-P", String(daemon.pid), "tessera-worker zygote"]).stdout
        let workerPID = try #require(Int32(worker.split(separator: "\n").first ?? ""))
        var stages: [String] = []
        for (name, target) in [("daemon", daemon.pid), ("worker", workerPID)] {
            for attack in ["ptrace", "kill"] {
                stages.append("  - {name: \(attack)-\(name), executor: \(attack), params: {target: \"\(target)\"}}")
            }
        }
        writeFile(daemon.jobsDirectory + "/d.yaml", "name: d\nstages:\n" + stages.joined(separator: "\n") + "\n")
        _ = try daemon.call("Reload")
        let id = try daemon.startRun("d")
        _ = try daemon.wait(forRun: id)
        for task in try daemon.tasks(id) {
            #expect(task.state == .failed && task.exitCode == 2, "\(task.stage): \(task.reason ?? "")")
            #expect(try daemon.output(id, task.index)?.stdout.contains("escaped") == false)
        }
        #expect(daemon.isAlive)
        #expect(kill(workerPID, 0) == 0, "the worker is still there")
    }
}
