// `make install` and `make uninstall`, run for real into a temporary DESTDIR
// from the products of this build (BIN=, so nothing is rebuilt): the layout
// and modes, the installed tesserad running a job for the installed tessera
// CLI, with the capability bounding set and no_new_privs of the systemd unit,
// the units checked by systemd-analyze verify, and an uninstall that takes
// back exactly what the install put.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The top of the source tree, where the Makefile is: three levels above
/// this file (Tests/TesseraIntegrationTests/InstallTests.swift).
private let packageRoot: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) }
    return path
}()

/// Runs a target of the Makefile. MAKEFLAGS and friends are emptied: under
/// `make test` they describe the outer make, not this one.
private func make(_ target: String, destdir: String, prefix: String = "/usr", bin: String? = binDirectory)
    -> (status: Int32, stdout: String, stderr: String)
{
    var arguments = ["make", "--no-print-directory", "-s", "-C", packageRoot, target]
    arguments += ["PREFIX=\(prefix)", "DESTDIR=\(destdir)"]
    if let bin { arguments.append("BIN=\(bin)") }
    return runProgram(arguments, environment: ["MAKEFLAGS": "", "MFLAGS": "", "MAKELEVEL": ""])
}

/// A temporary DESTDIR, with `make install` done into it.
private final class Stage {
    let root: String
    let prefix: String
    let installOutput: String

    /// `prepare` runs on the empty DESTDIR before the install.
    init(prefix: String = "/usr", prepare: (String) -> Void = { _ in }) throws {
        root = makeTemporaryDirectory("tessera-destdir")
        self.prefix = prefix
        prepare(root)
        let result = make("install", destdir: root, prefix: prefix)
        installOutput = result.stdout
        guard result.status == 0 else {
            removeTree(root)
            throw HarnessError(description: "make install failed (\(result.status)):\n\(result.stdout)\(result.stderr)")
        }
    }

    func path(_ relative: String) -> String { root + "/" + relative }

    func uninstall() -> (status: Int32, stdout: String, stderr: String) {
        make("uninstall", destdir: root, prefix: prefix, bin: nil)
    }

    deinit { removeTree(root) }
}

/// Every path below `root`, relative to it; directories end in "/".
private func tree(_ root: String) -> Set<String> {
    var paths: Set<String> = []
    func walk(_ relative: String) {
        for name in directoryEntries(relative.isEmpty ? root : root + "/" + relative) {
            let path = relative.isEmpty ? name : relative + "/" + name
            var info = stat()
            guard lstat(root + "/" + path, &info) == 0 else { continue }
            if info.st_mode & S_IFMT == S_IFDIR {
                paths.insert(path + "/")
                walk(path)
            } else {
                paths.insert(path)
            }
        }
    }
    walk("")
    return paths
}

private func fileInfo(_ path: String) -> stat? {
    var info = stat()
    return lstat(path, &info) == 0 ? info : nil
}

/// The names in a directory of the source tree that end in one of `suffixes`.
private func sourceFiles(_ directory: String, endingIn suffixes: [String]) -> [String] {
    directoryEntries(packageRoot + "/" + directory).filter { name in suffixes.contains { name.hasSuffix($0) } }.sorted()
}

private let manPages = sourceFiles("man", endingIn: (1...8).map { ".\($0)" })
private let jobExamples = sourceFiles("etc/tessera/jobs.d", endingIn: [".yaml"])
private let plugins = ["shell", "noop", "checksum"]

/// What `make install PREFIX=/usr` puts in DESTDIR, with each file's mode.
private let expectedFiles: [String: mode_t] = {
    var files: [String: mode_t] = [
        "usr/bin/tessera": 0o755,
        "usr/sbin/tesserad": 0o755,
        "usr/lib/tessera/tessera-worker": 0o755,
        "usr/include/tessera/plugin.h": 0o644,
        "usr/lib/systemd/system/tesserad.service": 0o644,
        "usr/lib/systemd/system/tesserad.socket": 0o644,
        "usr/lib/sysusers.d/tessera.conf": 0o644,
        "usr/share/bash-completion/completions/tessera": 0o644,
        "usr/share/zsh/site-functions/_tessera": 0o644,
        "usr/share/fish/vendor_completions.d/tessera.fish": 0o644,
        "etc/tessera/tessera.yaml": 0o644,
        // The directories the install created, for the uninstall.
        "usr/lib/tessera/installed-directories": 0o644,
    ]
    for plugin in plugins { files["usr/lib/tessera/plugins/\(plugin).so"] = 0o755 }
    for page in manPages {
        files["usr/share/man/man\(page[page.index(after: page.lastIndex(of: ".")!)...])/\(page)"] = 0o644
    }
    for job in jobExamples { files["etc/tessera/jobs.d/\(job)"] = 0o644 }
    return files
}()

/// The values of every `key=` line of a unit file.
private func unitValues(_ unit: String, _ key: String) -> [String] {
    unit.split(separator: "\n").compactMap { line in
        line.hasPrefix(key + "=") ? String(line.dropFirst(key.count + 1)) : nil
    }
}

/// Capability names in the kernel's order (linux/capability.h), so that
/// bit n of a CapBnd mask is capabilityNames[n].
private let capabilityNames = [
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
    "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
    "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
    "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
    "checkpoint_restore",
]

/// A field of /proc/PID/status, such as "CapBnd".
private func procStatus(_ pid: pid_t, _ field: String) -> String? {
    for line in readFile("/proc/\(pid)/status").split(separator: "\n") where line.hasPrefix(field + ":") {
        return String(line.dropFirst(field.count + 1)).trimmingWhitespace
    }
    return nil
}

/// The executables of the children of `parent`, from /proc.
private func childExecutables(of parent: pid_t) -> [String] {
    directoryEntries("/proc").compactMap { entry -> String? in
        guard let pid = Int32(entry) else { return nil }
        let line = readFile("/proc/\(pid)/stat")
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        guard let close = line.lastIndex(of: ")") else { return nil }
        let fields = line[line.index(after: close)...].split(separator: " ")
        guard fields.count > 1, Int32(fields[1]) == parent else { return nil }
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        return count > 0 ? String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }
}

/// The installed tesserad, started the way its unit would start it, as far
/// as that can be done without systemd: as root, with the unit's capability
/// bounding set and no_new_privs (through setpriv); never with
/// $TESSERA_WORKER, so that it finds its worker as installed.
private final class InstalledDaemon {
    private(set) var pid: pid_t = 0
    let log: String

    init(arguments: [String], log: String) throws {
        self.log = log
        pid = try spawn(
            arguments,
            environment: processEnvironment(dropping: ["TESSERA_WORKER", "NOTIFY_SOCKET", "LISTEN_", "JOURNAL_STREAM"]),
            stdout: log, stderr: log)
    }

    var isAlive: Bool {
        guard pid > 0 else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            pid = 0
            return false
        }
        return true
    }

    /// Sends SIGTERM and returns the exit status.
    func stop() -> Int32 {
        guard pid > 0 else { return -1 }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        pid = 0
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    deinit {
        if pid > 0 {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }
}

private let makeRuns = runProgram(["make", "--version"]).status == 0

@Suite("make install", .enabled(if: makeRuns, "make is not installed"))
struct InstallTests {
    @Test("install puts every file in its place with its mode, and nothing else")
    func layout() throws {
        let stage = try Stage()
        let files = tree(stage.root).filter { !$0.hasSuffix("/") }
        #expect(files == Set(expectedFiles.keys), "unexpected: \(files.symmetricDifference(expectedFiles.keys))")
        for (file, mode) in expectedFiles {
            let info = fileInfo(stage.path(file))
            #expect(info.map { $0.st_mode & 0o7777 } == mode, "\(file)")
            #expect(info.map { $0.st_mode & S_IFMT } == S_IFREG, "\(file) is not a regular file")
        }

        // The products of the build, under their installed names.
        let products =
            [
                ("tessera", "usr/bin/tessera"), ("tesserad", "usr/sbin/tesserad"),
                ("tessera-worker", "usr/lib/tessera/tessera-worker"),
            ] + plugins.map { ("libtessera-\($0).so", "usr/lib/tessera/plugins/\($0).so") }
        for (product, installed) in products {
            #expect(
                runProgram(["cmp", "\(binDirectory)/\(product)", stage.path(installed)]).status == 0, "\(installed)")
        }
        #expect(
            readFile(stage.path("usr/include/tessera/plugin.h"))
                == readFile(packageRoot + "/Sources/TesseraPluginABI/include/tessera/plugin.h"))
        for page in manPages {
            let section = page[page.index(after: page.lastIndex(of: ".")!)...]
            #expect(
                readFile(stage.path("usr/share/man/man\(section)/\(page)")) == readFile(packageRoot + "/man/" + page))
        }

        // Completions are what the CLI generates.
        let completions = [
            ("bash", "usr/share/bash-completion/completions/tessera"), ("zsh", "usr/share/zsh/site-functions/_tessera"),
            ("fish", "usr/share/fish/vendor_completions.d/tessera.fish"),
        ]
        for (shell, installed) in completions {
            let generated = runProgram(["\(binDirectory)/tessera", "--generate-completion-script", shell])
            #expect(generated.status == 0)
            #expect(!generated.stdout.isEmpty && readFile(stage.path(installed)) == generated.stdout, "\(shell)")
        }
        #expect(readFile(stage.path("usr/share/zsh/site-functions/_tessera")).hasPrefix("#compdef tessera"))

        // With PREFIX=/usr the shipped files are installed as they are.
        #expect(readFile(stage.path("etc/tessera/tessera.yaml")) == readFile(packageRoot + "/etc/tessera/tessera.yaml"))
        for unit in ["tesserad.service", "tesserad.socket"] {
            #expect(
                readFile(stage.path("usr/lib/systemd/system/\(unit)")) == readFile(packageRoot + "/etc/systemd/\(unit)")
            )
        }
    }

    @Test("another PREFIX is written into the unit and the configuration; /etc stays /etc")
    func otherPrefix() throws {
        let stage = try Stage(prefix: "/usr/local")
        #expect(fileInfo(stage.path("usr/local/sbin/tesserad")) != nil)
        #expect(fileInfo(stage.path("usr/local/lib/tessera/plugins/shell.so")) != nil)
        let service = readFile(stage.path("usr/local/lib/systemd/system/tesserad.service"))
        #expect(unitValues(service, "ExecStart") == ["/usr/local/sbin/tesserad --config /etc/tessera/tessera.yaml"])
        let config = readFile(stage.path("etc/tessera/tessera.yaml"))
        #expect(config.contains("plugin_dirs: [/usr/local/lib/tessera/plugins]"))
        #expect(config.contains("jobs_dirs: [/etc/tessera/jobs.d]"))
        #expect(stage.uninstall().status == 0)
        #expect(tree(stage.root).isEmpty)
    }

    @Test("install refuses a BIN without the products, before writing anything")
    func missingProducts() {
        let destdir = makeTemporaryDirectory("tessera-destdir")
        defer { removeTree(destdir) }
        let result = make("install", destdir: destdir, bin: destdir)
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(destdir)/tessera is missing"))
        #expect(tree(destdir).isEmpty)
    }

    @Test("the installed tesserad runs a job for the installed tessera CLI, with the unit's capabilities")
    func installedDaemonRunsAJob() throws {
        let stage = try Stage()
        let work = makeTemporaryDirectory("tessera-installed")
        defer { removeTree(work) }

        // The shipped tessera.yaml, with the socket and the state moved into
        // `work` and the plugin and jobs directories into the stage.
        var config = readFile(stage.path("etc/tessera/tessera.yaml"))
        let moves = [
            ("/run/tessera/tessera.sock", "\(work)/tessera.sock"), ("/var/lib/tessera", "\(work)/state"),
            ("/usr/lib/tessera/plugins", stage.path("usr/lib/tessera/plugins")),
            ("/etc/tessera/jobs.d", stage.path("etc/tessera/jobs.d")),
        ]
        for (from, to) in moves {
            try #require(config.contains(from), "tessera.yaml names no \(from)")
            config = config.replacing(from, with: to)
        }
        writeFile(work + "/tessera.yaml", config)
        let socket = work + "/tessera.sock"

        var arguments = [stage.path("usr/sbin/tesserad"), "--config", work + "/tessera.yaml", "--log-level", "debug"]
        // As root, the unit's CapabilityBoundingSet= and NoNewPrivileges=.
        let service = readFile(stage.path("usr/lib/systemd/system/tesserad.service"))
        let unitCapabilities = unitValues(service, "CapabilityBoundingSet").flatMap {
            $0.split(separator: " ").map { $0.lowercased().replacing("cap_", with: "") }
        }
        let emulated = geteuid() == 0 && access("/usr/bin/setpriv", X_OK) == 0
        if emulated {
            try #require(!unitCapabilities.isEmpty, "the unit has no CapabilityBoundingSet=")
            var setpriv = [
                "/usr/bin/setpriv", "--bounding-set=-all," + unitCapabilities.map { "+" + $0 }.joined(separator: ","),
            ]
            if unitValues(service, "NoNewPrivileges") == ["yes"] { setpriv.append("--no-new-privs") }
            arguments = setpriv + ["--"] + arguments
        }
        let daemon = try InstalledDaemon(arguments: arguments, log: work + "/tesserad.log")
        try waitUntil(timeout: 20, "the installed tesserad to listen on \(socket)") {
            guard daemon.isAlive else {
                throw HarnessError(description: "the installed tesserad exited at start-up:\n\(readFile(daemon.log))")
            }
            return (try? VarlinkClient(path: socket)) != nil
        }

        if emulated {
            // The bounding set the unit asks for, within the one this test has.
            var unitMask: UInt64 = 0
            for name in unitCapabilities {
                let bit = try #require(capabilityNames.firstIndex(of: name), "unknown capability \(name)")
                unitMask |= 1 << UInt64(bit)
            }
            let own = UInt64(procStatus(getpid(), "CapBnd") ?? "", radix: 16) ?? 0
            #expect(UInt64(procStatus(daemon.pid, "CapBnd") ?? "", radix: 16) == unitMask & own)
            #expect(procStatus(daemon.pid, "NoNewPrivs") == "1")
        }

        let tessera = stage.path("usr/bin/tessera")
        let run = runProgram([tessera, "run", "hello", "--wait", "--socket", socket])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)\n\(readFile(daemon.log))")
        #expect(run.stdout.contains("run 1 succeeded: 3 succeeded, 0 failed"))
        let output = runProgram([tessera, "output", "1", "0", "--socket", socket])
        #expect(output.stdout == "hello alpha\n")

        // Every installed plugin and example job is loaded, and the worker
        // is the installed one, found beside the installed daemon.
        let status = runProgram([tessera, "status", "--json", "--socket", socket])
        let parsed = try JSON.parse(status.stdout.trimmingWhitespace)
        #expect(parsed["plugins"]?.intValue == Int64(plugins.count))
        #expect(parsed["jobs"]?.intValue == Int64(jobExamples.count))
        #expect(childExecutables(of: daemon.pid).contains(stage.path("usr/lib/tessera/tessera-worker")))

        // The worker traces microtasks with only the unit's capabilities
        // (no CAP_SYS_PTRACE): a command that sends itself SIGTERM, as pid
        // 1 of its namespace, is recorded as killed by it.
        writeFile(
            stage.path("etc/tessera/jobs.d/selfterm.yaml"),
            "name: selfterm\nexecutor: shell\nparams: {command: [sh, -c, 'kill -TERM $$']}\nrange: {from: 0, to: 4}\n")
        #expect(runProgram([tessera, "reload", "--socket", socket]).status == 0)
        _ = runProgram([tessera, "run", "selfterm", "--wait", "--socket", socket])
        let tasks = try JSON.parse(runProgram([tessera, "tasks", "2", "--json", "--socket", socket]).stdout)
        let signals = tasks.arrayValue?.compactMap { $0["signal"]?.stringValue } ?? []
        #expect(signals == Array(repeating: "SIGTERM", count: 4), "\(tasks.serialized())\n\(readFile(daemon.log))")
        #expect(!readFile(daemon.log).contains("cannot trace microtasks"))

        #expect(daemon.stop() == 0, "\(readFile(daemon.log))")
    }

    @Test("uninstall removes every file and directory the install made, and nothing else")
    func uninstall() throws {
        // Installed twice: the second install finds everything in place.
        let stage = try Stage()
        let again = make("install", destdir: stage.root)
        #expect(again.status == 0)
        #expect(again.stdout.contains("keeping \(stage.path("etc/tessera/tessera.yaml"))"))
        let result = stage.uninstall()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(tree(stage.root).isEmpty, "left behind: \(tree(stage.root).sorted())")
    }

    @Test("install keeps an operator's configuration, and uninstall keeps what it did not put")
    func operatorFiles() throws {
        let operatorConfig = "# the operator's\nslots: 3\n"
        let stage = try Stage { root in
            for directory in [
                "usr", "usr/bin", "usr/share", "usr/share/man", "etc", "etc/tessera", "etc/tessera/jobs.d",
            ] {
                mkdir(root + "/" + directory, 0o755)
            }
            writeFile(root + "/usr/bin/other-tool", "#!/bin/sh\n", mode: 0o755)
            writeFile(root + "/etc/tessera/tessera.yaml", operatorConfig)
            writeFile(root + "/etc/tessera/jobs.d/mine.yaml", "name: mine\n")
        }
        #expect(readFile(stage.path("etc/tessera/tessera.yaml")) == operatorConfig)
        #expect(stage.installOutput.contains("keeping \(stage.path("etc/tessera/tessera.yaml"))"))
        let edited = try #require(jobExamples.first)
        #expect(fileInfo(stage.path("etc/tessera/jobs.d/\(edited)")) != nil)
        writeFile(stage.path("etc/tessera/jobs.d/\(edited)"), "# edited\n")

        let result = stage.uninstall()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("keeping \(stage.path("etc/tessera/jobs.d/\(edited)")) (changed)"))
        let expected: Set<String> = [
            "usr/", "usr/bin/", "usr/bin/other-tool", "usr/share/", "usr/share/man/",
            "etc/", "etc/tessera/", "etc/tessera/tessera.yaml", "etc/tessera/jobs.d/",
            "etc/tessera/jobs.d/mine.yaml", "etc/tessera/jobs.d/\(edited)",
        ]
        #expect(tree(stage.root) == expected, "difference: \(tree(stage.root).symmetricDifference(expected).sorted())")
        #expect(readFile(stage.path("etc/tessera/tessera.yaml")) == operatorConfig)
    }
}

/// Whether systemd-analyze runs on this machine (it needs no running systemd
/// for `verify`).
private let systemdAnalyzeRuns = runProgram(["systemd-analyze", "--version"]).status == 0
private let systemdSysusersRuns = runProgram(["systemd-sysusers", "--version"]).status == 0

// Nested, so that `--filter InstallTests` runs these too.
extension InstallTests {
    @Suite("systemd units")
    struct SystemdUnits {
        @Test("the units say what the service needs")
        func unitSettings() throws {
            let stage = try Stage()
            let service = readFile(stage.path("usr/lib/systemd/system/tesserad.service"))
            let socket = readFile(stage.path("usr/lib/systemd/system/tesserad.socket"))
            let required = [
                ("Type", "notify"), ("ExecStart", "/usr/sbin/tesserad --config /etc/tessera/tessera.yaml"),
                ("ExecReload", "kill -HUP $MAINPID"), ("Delegate", "yes"), ("KillMode", "mixed"),
                ("StateDirectory", "tessera"), ("RuntimeDirectory", "tessera"), ("ConfigurationDirectory", "tessera"),
                ("NoNewPrivileges", "yes"),
            ]
            for (key, value) in required { #expect(unitValues(service, key) == [value], "\(key)=") }
            #expect(unitValues(service, "TimeoutStopSec").count == 1)
            // Root, and nothing that forbids namespaces or mounts.
            for key in [
                "User", "DynamicUser", "PrivateUsers", "RestrictNamespaces", "ProtectSystem", "SystemCallFilter",
            ] {
                #expect(unitValues(service, key).isEmpty, "\(key)= is set")
            }
            for (key, value) in [
                ("ListenStream", "/run/tessera/tessera.sock"), ("SocketMode", "0660"), ("SocketGroup", "tessera"),
            ] {
                #expect(unitValues(socket, key) == [value], "\(key)=")
            }
        }

        @Test(
            "systemd-analyze verify finds nothing to say about the installed units",
            .enabled(if: systemdAnalyzeRuns, "systemd-analyze does not run here"))
        func verify() throws {
            let stage = try Stage()
            let units = makeTemporaryDirectory("tessera-units")
            defer { removeTree(units) }
            // Verified as installed, but for ExecStart, which must name a file
            // that exists: the staged tesserad.
            let installed = stage.path("usr/lib/systemd/system/")
            let service = readFile(installed + "tesserad.service")
            try #require(service.contains("ExecStart=/usr/sbin/tesserad "))
            writeFile(
                units + "/tesserad.service",
                service.replacing(
                    "ExecStart=/usr/sbin/tesserad ", with: "ExecStart=\(stage.path("usr/sbin/tesserad")) "))
            writeFile(units + "/tesserad.socket", readFile(installed + "tesserad.socket"))
            let paths = [units + "/tesserad.socket", units + "/tesserad.service"]

            let result = runProgram(["systemd-analyze", "verify", "--man=no"] + paths)
            #expect(result.status == 0)
            #expect(result.stdout + result.stderr == "")

            // And it does look: a misspelt key is reported.
            writeFile(units + "/tesserad.service", readFile(units + "/tesserad.service") + "[Service]\nDelegat=yes\n")
            let broken = runProgram(["systemd-analyze", "verify", "--man=no"] + paths)
            #expect(broken.stderr.contains("Unknown key 'Delegat'"), "\(broken.stderr)")
        }

        @Test(
            "the sysusers.d file makes the tessera system user and group",
            .enabled(if: systemdSysusersRuns, "systemd-sysusers does not run here"))
        func sysusers() throws {
            let stage = try Stage()
            let root = makeTemporaryDirectory("tessera-sysroot")
            defer { removeTree(root) }
            mkdir(root + "/etc", 0o755)
            let result = runProgram([
                "systemd-sysusers", "--root=\(root)", stage.path("usr/lib/sysusers.d/tessera.conf"),
            ])
            #expect(result.status == 0, "\(result.stderr)")
            let group = readFile(root + "/etc/group").split(separator: "\n").first { $0.hasPrefix("tessera:") }
            let user = readFile(root + "/etc/passwd").split(separator: "\n").first { $0.hasPrefix("tessera:") }
            let gid = try #require(group?.split(separator: ":", omittingEmptySubsequences: false)[2])
            let fields = try #require(user?.split(separator: ":", omittingEmptySubsequences: false))
            #expect(fields[3] == gid)
            #expect(Int(fields[2]).map { $0 > 0 && $0 < 1000 } == true, "not a system uid: \(fields[2])")
            #expect(fields[6].hasSuffix("/nologin"))
        }
    }
}
