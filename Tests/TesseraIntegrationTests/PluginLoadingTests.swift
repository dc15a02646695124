// Plugins that must be refused: not ELF, no entry point, another ABI major,
// writable by others, a duplicate executor. Each is refused with a message
// naming the file and the reason; the daemon runs with the others.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Plugin loading")
struct PluginLoadingTests {
    /// A plugin directory with the good plugins and every kind of bad one.
    static func makeBadPlugins(in daemon: Daemon) {
        let dir = daemon.pluginDirectory
        writeFile(dir + "/text.so", "this is not a shared object\n", mode: 0o755)
        copyFile("\(binDirectory)/libtessera-test-noentry.so", dir + "/noentry.so", mode: 0o755)
        copyFile("\(binDirectory)/libtessera-test-wrongabi.so", dir + "/wrongabi.so", mode: 0o755)
        copyFile("\(binDirectory)/libtessera-test-dupexec.so", dir + "/dupexec.so", mode: 0o755)
        copyFile("\(binDirectory)/libtessera-noop.so", dir + "/writable.so", mode: 0o777)
    }

    static let expectedRefusals = [
        ("text.so", "not an ELF file"),
        ("noentry.so", "tessera_plugin_init"),
        ("wrongabi.so", "ABI 2"),
        ("dupexec.so", "declared twice"),
        ("writable.so", "writable by group or others"),
    ]

    @Test("bad plugins are refused with the file and the reason; the good ones load")
    func refusals() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob], start: false)
        PluginLoadingTests.makeBadPlugins(in: daemon)
        try daemon.start()
        let plugins = try daemon.call("ListPlugins")["plugins"]?.arrayValue ?? []
        #expect(Set(plugins.compactMap { $0["name"]?.stringValue }) == ["noop", "shell"])
        let log = daemon.log
        for (file, reason) in PluginLoadingTests.expectedRefusals {
            let line = log.split(separator: "\n").first { $0.contains("/\(file)") }
            #expect(line?.contains(reason) == true, "\(file): expected \"\(reason)\" in: \(line ?? "no line")")
        }
        let id = try daemon.startRun("hello")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
    }

    @Test("a plugin whose initialisation crashes is refused alone; the others load")
    func crashingInit() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob], start: false)
        copyFile("\(binDirectory)/libtessera-test-crashinit.so", daemon.pluginDirectory + "/crashinit.so", mode: 0o755)
        try daemon.start()
        let plugins = try daemon.call("ListPlugins")["plugins"]?.arrayValue ?? []
        #expect(Set(plugins.compactMap { $0["name"]?.stringValue }) == ["noop", "shell"])
        #expect(daemon.log.contains("crashinit.so: its initialisation crashed (SIGSEGV); refusing to load"))
        #expect(try daemon.wait(forRun: try daemon.startRun("hello")).state == .succeeded)
    }

    @Test("tesserad --check reports every problem and exits 1")
    func check() throws {
        let daemon = try Daemon(
            jobs: [
                "hello.yaml": helloJob,
                "broken.yaml": "name: broken\nexecutor: shel\n",
                "limits.yaml": "name: limits\nexecutor: noop\nlimits: {memory: lots}\n",
            ], start: false)
        PluginLoadingTests.makeBadPlugins(in: daemon)
        let result = runProgram(["\(binDirectory)/tesserad", "--check", "--config", daemon.configPath])
        #expect(result.status == 1)
        for (file, reason) in PluginLoadingTests.expectedRefusals {
            #expect(result.stderr.contains(file) && result.stderr.contains(reason), "\(file): \(reason)")
        }
        #expect(
            result.stderr.contains(
                "\(daemon.jobsDirectory)/broken.yaml:2:11: executor: unknown executor \"shel\"; did you mean \"shell\"?"
            ))
        #expect(
            result.stderr.contains(
                "\(daemon.jobsDirectory)/limits.yaml:3:18: limits.memory: expected a size such as 256MiB, found \"lots\""
            ))
        #expect(result.stdout.contains("job hello"))

        removeTree(daemon.pluginDirectory + "/text.so")
        let clean = try Daemon(jobs: ["hello.yaml": helloJob], start: false)
        let ok = runProgram(["\(binDirectory)/tesserad", "--check", "--config", clean.configPath])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("configuration OK"))
    }
}
