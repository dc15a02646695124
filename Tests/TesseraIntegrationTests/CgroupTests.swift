// Per-microtask cgroups. On this build machine (a cgroup v1 host) the
// cgroup2 hierarchy has no memory, pids or cpu controller, so the tests of
// memory.max, pids.max and cpu.max are skipped with that reason; the
// cgroup itself, and cgroup.kill, are tested wherever a writable cgroup2
// hierarchy exists.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The cgroup2 mount point and the controllers of the root, read as
/// tesserad reads them.
enum CgroupHost {
    static let mount: String? = {
        for line in readFile("/proc/self/mountinfo").split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }()

    static var writable: Bool { mount.map { access($0, W_OK) == 0 } ?? false }

    static func hasController(_ name: String) -> Bool {
        guard let mount else { return false }
        return readFile(mount + "/cgroup.controllers").split(whereSeparator: \.isWhitespace).contains { $0 == name }
    }
}

@Suite("Cgroups", .enabled(if: CgroupHost.writable, "no writable cgroup2 hierarchy on this machine"))
struct CgroupTests {
    @Test("a sandboxed microtask runs in a cgroup of its own, removed when it ends")
    func ownCgroup() throws {
        let daemon = try Daemon(jobs: [
            // Without a pid namespace, the cgroup is what ends escapees, so
            // the microtask gets one even where no controller is delegated.
            "cg.yaml": """
            name: cg
            executor: shell
            params: {command: [cat, /proc/self/cgroup]}
            sandbox: {namespaces: [ipc, uts, mount]}
            """,
            "pidns.yaml": "name: pidns\nexecutor: shell\nparams: {command: [cat, /proc/self/cgroup]}\n",
            "plain.yaml": "name: plain\nexecutor: shell\nparams: {command: [cat, /proc/self/cgroup]}\nsandbox: none\n",
        ])
        let id = try daemon.startRun("cg")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        let line = try #require(
            try daemon.output(id, 0)?.stdout.split(separator: "\n").first { $0.hasPrefix("0::") })
        #expect(line.contains("/task-"), "\(line)")
        let path = (CgroupHost.mount ?? "") + line.dropFirst(3)
        try waitUntil(timeout: 10, "the microtask's cgroup \(path) to be removed") { access(path, F_OK) != 0 }

        let plain = try daemon.startRun("plain")
        #expect(try daemon.wait(forRun: plain).state == .succeeded)
        let plainLine = try daemon.output(plain, 0)?.stdout.split(separator: "\n").first { $0.hasPrefix("0::") }
        #expect(plainLine?.contains("/task-") == false, "sandbox: none gets no cgroup")

        // A pid namespace ends what is left, and this job sets no limit a
        // controller would enforce: no cgroup is made for it.
        let pidns = try daemon.startRun("pidns")
        #expect(try daemon.wait(forRun: pidns).state == .succeeded)
        let pidnsLine = try daemon.output(pidns, 0)?.stdout.split(separator: "\n").first { $0.hasPrefix("0::") }
        #expect(pidnsLine?.contains("/task-") == false, "\(pidnsLine ?? "")")
        #expect(daemon.log.contains("per-microtask cgroups in"))
    }

    @Test("cgroup.kill ends what a microtask leaves behind, even without a pid namespace")
    func killWithoutPidNamespace() throws {
        let daemon = try Daemon(
            jobs: [
                "d.yaml": """
                name: d
                executor: daemonize
                sandbox: {namespaces: [ipc, uts, mount]}
                """
            ], plugins: ["test-attacks"])
        let id = try daemon.startRun("d")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        try waitUntil(timeout: 10, "the setsid'd grandchild to be gone") {
            runProgram(["pgrep", "-x", "tessera-escapee"]).stdout.isEmpty
        }
    }

    @Test(
        "memory.max ends a balloon and says so",
        .enabled(
            if: CgroupHost.hasController("memory"),
            "the cgroup2 hierarchy has no memory controller here (a cgroup v1 host owns it)"))
    func memoryMax() throws {
        let daemon = try Daemon(
            jobs: ["b.yaml": "name: b\nexecutor: balloon\nlimits: {memory: 64MiB}\n"], plugins: ["test-hostile"])
        let id = try daemon.startRun("b")
        _ = try daemon.wait(forRun: id)
        #expect(try daemon.tasks(id).first?.reason?.hasPrefix("memory limit 64MiB exceeded") == true)
    }

    @Test(
        "pids.max holds a fork bomb",
        .enabled(
            if: CgroupHost.hasController("pids"),
            "the cgroup2 hierarchy has no pids controller here (a cgroup v1 host owns it)"))
    func pidsMax() throws {
        let daemon = try Daemon(
            jobs: [
                "f.yaml": "name: f\nexecutor: fork_bomb\nlimits: {processes: 16, wall: 2s}\nsandbox: {user: root}\n"
            ],
            plugins: ["test-attacks"])
        let id = try daemon.startRun("f")
        _ = try daemon.wait(forRun: id)
        let stderr = try daemon.output(id, 0)?.stderr ?? ""
        #expect(stderr.contains("blocked: fork after"), "root ignores RLIMIT_NPROC, so pids.max stopped it: \(stderr)")
    }

    @Test(
        "cpu.max holds a spinning microtask to its quota",
        .enabled(
            if: CgroupHost.hasController("cpu"),
            "the cgroup2 hierarchy has no cpu controller here (a cgroup v1 host owns it)"))
    func cpuMax() throws {
        let daemon = try Daemon(
            jobs: ["s.yaml": "name: s\nexecutor: spin\nlimits: {cpu_quota: 10%, wall: 2s}\n"], plugins: ["test-hostile"]
        )
        let id = try daemon.startRun("s")
        _ = try daemon.wait(forRun: id)
        let cpu = try #require(try daemon.tasks(id).first?.cpuSeconds)
        #expect(cpu < 0.5, "2 s at 10% of a CPU is about 0.2 s of CPU, found \(cpu)")
    }
}
