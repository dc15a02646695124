// SandboxTests.swift
//
// Why this file exists: it pins what valid `sandbox:` sections decode to, in
// a stage, in the single-stage short form and under the server's `defaults`,
// how users and groups are resolved when the file is loaded, and how a
// stage's settings combine with the defaults.

import Foundation
import TesseraConfig
import Testing

@Suite("Sandbox settings")
struct SandboxTests {
    private func decode(_ text: String) throws -> JobDefinition {
        try ConfigLoader.parseJob(text: text, file: jobFile, catalog: testCatalog).get()
    }

    /// The sandbox of a single-stage job with `sandbox` written as `text`.
    private func sandbox(_ text: String) throws -> SandboxSettings {
        try decode("name: hello\nexecutor: noop\nsandbox: \(text)\n").stages[0].sandbox
    }

    /// The uid and primary gid of `name`, as the system's user database has them.
    // The reentrant lookups: tests run in parallel, and getpwnam's and
    // getgrnam's static buffers are shared (a gid read while another test
    // looked up "video" came back 44).
    private func userIDs(_ name: String) throws -> (uid: UInt32, gid: UInt32) {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        getpwnam_r(name, &entry, &buffer, buffer.count, &found)
        _ = try #require(found)
        return (entry.pw_uid, entry.pw_gid)
    }

    /// The gid of the group `name`, as the system's group database has it.
    private func groupID(_ name: String) throws -> UInt32 {
        var entry = group()
        var found: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        getgrnam_r(name, &entry, &buffer, buffer.count, &found)
        _ = try #require(found)
        return entry.gr_gid
    }

    @Test("the full example decodes to the expected values")
    func fullExample() throws {
        try withTemporaryDirectory { directory in
            try FileManager.default.createDirectory(atPath: "\(directory)/out", withIntermediateDirectories: false)
            let job = try decode(
                """
                name: hello
                stages:
                  - name: greet
                    executor: noop
                    sandbox:
                      user: nobody
                      group: nogroup
                      network: none
                      filesystem:
                        read_only: [/]
                        writable: [\(directory)/out]
                        hidden: [/home, /root]
                        tmp: private
                        tmp_size: 64MiB
                      namespaces: [pid, ipc, uts, mount]
                      syscalls: default
                      allow_syscalls: [ptrace]
                      deny_syscalls: [personality, io_uring_setup]
                      landlock: true
                      environment: {LANG: C.UTF-8, TZ: UTC}
                """)
            var expected = SandboxSettings()
            expected.user = .id(uid: try userIDs("nobody").uid, gid: try groupID("nogroup"))
            expected.network = SandboxSettings.Network.none
            expected.readOnly = ["/"]
            expected.writable = ["\(directory)/out"]
            expected.hidden = ["/home", "/root"]
            expected.tmp = .private
            expected.tmpSize = 64 << 20
            expected.namespaces = [.pid, .ipc, .uts, .mount]
            expected.syscalls = .default
            expected.allowSyscalls = ["ptrace"]
            expected.denySyscalls = ["personality", "io_uring_setup"]
            expected.landlock = true
            expected.environment = [MapEntry(key: "LANG", value: "C.UTF-8"), MapEntry(key: "TZ", value: "UTC")]
            #expect(job.stages[0].sandbox == expected)
            #expect(job.stages[0].sandbox.disabled == false)
        }
    }

    @Test("a user name gives its uid and primary gid; a uid gives the same gid; group overrides the gid")
    func users() throws {
        let nobody = try userIDs("nobody")
        #expect(try sandbox("{user: nobody}").user == .id(uid: nobody.uid, gid: nobody.gid))
        #expect(try sandbox("{user: 1000}").user == .id(uid: 1000, gid: 1000))
        #expect(try sandbox("{user: 1000, group: 100}").user == .id(uid: 1000, gid: 100))
        #expect(try sandbox("{user: 0, group: nogroup}").user == .id(uid: 0, gid: try groupID("nogroup")))
        #expect(try sandbox("{user: dynamic}").user == .dynamic)
    }

    @Test("sandbox: none disables the sandbox; an empty mapping sets nothing")
    func noneAndEmpty() throws {
        var disabled = SandboxSettings()
        disabled.disabled = true
        #expect(try sandbox("none") == disabled)
        #expect(try sandbox("{}") == SandboxSettings())
        #expect(try decode("name: hello\nexecutor: noop\n").stages[0].sandbox == SandboxSettings())
    }

    @Test("the single-stage short form takes sandbox at the top level")
    func shorthand() throws {
        let job = try decode(
            """
            name: hello
            executor: noop
            sandbox:
              network: host
              namespaces: []
              syscalls: compute
              filesystem: {tmp: shared}
            """)
        var expected = SandboxSettings()
        expected.network = .host
        expected.namespaces = []
        expected.syscalls = .compute
        expected.tmp = .shared
        #expect(job.stages.map(\.name) == ["main"])
        #expect(job.stages[0].sandbox == expected)
    }

    @Test("the server's defaults hold the limits and the sandbox side by side")
    func serverDefaults() throws {
        let config = try ConfigLoader.parseServerConfig(
            text: """
                defaults:
                  cpu: 10s
                  sandbox: {user: dynamic, landlock: false, syscalls: none}
                """, file: serverFile
        ).get()
        var sandbox = SandboxSettings()
        sandbox.user = .dynamic
        sandbox.landlock = false
        sandbox.syscalls = SandboxSettings.SyscallProfile.none
        #expect(config == ServerConfig(file: serverFile, defaults: Limits(cpu: 10_000), defaultSandbox: sandbox))

        let disabled = try ConfigLoader.parseServerConfig(text: "defaults: {sandbox: none}\n", file: serverFile).get()
        #expect(disabled.defaultSandbox.disabled)
        #expect(disabled.defaults == Limits())
    }

    @Test("overlaid: a stage's settings win, none wins, and a stage mapping over none starts afresh")
    func overlaid() {
        var defaults = SandboxSettings()
        defaults.user = .id(uid: 65534, gid: 65534)
        defaults.network = SandboxSettings.Network.none
        defaults.namespaces = [.pid, .mount]
        defaults.landlock = true

        var stage = SandboxSettings()
        stage.network = .host
        stage.writable = ["/srv/out"]

        var combined = defaults
        combined.network = .host
        combined.writable = ["/srv/out"]
        #expect(stage.overlaid(on: defaults) == combined)
        #expect(SandboxSettings().overlaid(on: defaults) == defaults)
        #expect(defaults.overlaid(on: SandboxSettings()) == defaults)

        var none = SandboxSettings()
        none.disabled = true
        #expect(none.overlaid(on: defaults) == none)
        #expect(stage.overlaid(on: none) == stage)
        #expect(stage.overlaid(on: none).disabled == false)
        #expect(SandboxSettings().overlaid(on: none) == none)
    }
}
