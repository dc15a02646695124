// ServerConfigTests.swift
//
// Why this file exists: it pins the server configuration's defaults, how each
// key is read, and what loading a file that cannot be read reports.

import Foundation
import TesseraConfig
import Testing

@Suite("Server configuration")
struct ServerConfigTests {
    @Test("an empty file gives every default; slots are the online CPUs")
    func defaults() throws {
        let config = try ConfigLoader.parseServerConfig(text: "# all defaults\n", file: serverFile).get()
        #expect(config.socket == "/run/tessera/tessera.sock")
        #expect(config.stateDir == "/var/lib/tessera")
        #expect(config.pluginDirs == ["/usr/lib/tessera/plugins"])
        #expect(config.jobsDirs == ["/etc/tessera/jobs.d"])
        #expect(config.slots == ServerConfig.defaultSlots)
        #expect(config.slots >= 1)
        #expect(config.defaults == Limits())
        #expect(config.defaultSandbox == SandboxSettings())
        #expect(config.file == serverFile)
    }

    @Test("every key is read; relative paths stay as written")
    func everyKey() throws {
        let config = try ConfigLoader.parseServerConfig(
            text: """
                socket: run/tessera.sock
                state_dir: state
                plugin_dirs: [plugins, /usr/lib/tessera/plugins]
                jobs_dirs:
                  - jobs.d
                slots: 8
                defaults:
                  wall: 5m
                  memory: 1GiB
                  processes: 32
                """, file: serverFile
        ).get()
        #expect(
            config
                == ServerConfig(
                    file: serverFile, socket: "run/tessera.sock", stateDir: "state",
                    pluginDirs: ["plugins", "/usr/lib/tessera/plugins"], jobsDirs: ["jobs.d"], slots: 8,
                    defaults: Limits(wall: 300_000, memory: 1 << 30, processes: 32)))
    }

    @Test("the file is read from disk and named as given")
    func loadsFromDisk() throws {
        try withTemporaryDirectory { directory in
            try write("slots: 3\nsocket: /tmp/t.sock\n", to: "tessera.yaml", in: directory)
            let config = try ConfigLoader.loadServerConfig(path: "\(directory)/tessera.yaml").get()
            #expect(config.slots == 3)
            #expect(config.socket == "/tmp/t.sock")
            #expect(config.file == "\(directory)/tessera.yaml")

            try write("slots: many\n", to: "bad.yaml", in: directory)
            let failure = ConfigLoader.loadServerConfig(path: "\(directory)/bad.yaml")
            #expect(
                failure.diagnostics == ["\(directory)/bad.yaml:1:8: slots: expected a positive integer, found \"many\""]
            )
        }
    }

    @Test("a file that cannot be read is one diagnostic without a position")
    func unreadableFile() throws {
        try withTemporaryDirectory { directory in
            let missing = ConfigLoader.loadServerConfig(path: "\(directory)/missing.yaml")
            #expect(
                missing.diagnostics == ["\(directory)/missing.yaml: cannot read the file: No such file or directory"])

            let aDirectory = ConfigLoader.loadServerConfig(path: directory)
            #expect(aDirectory.diagnostics == ["\(directory): cannot read the file: Is a directory"])
        }
    }

    @Test("a file that is not UTF-8 is a YAML error at the first byte that does not fit")
    func invalidUTF8() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/latin1.yaml"
            try Data("socket: /run/caf".utf8 + [0xE9] + Array(".sock\n".utf8)).write(to: URL(fileURLWithPath: path))
            let result = ConfigLoader.loadServerConfig(path: path)
            // 0xE9 starts a three-byte sequence, which the "." after it cannot continue.
            #expect(result.diagnostics == ["\(path):1:18: invalid YAML: invalid trailing UTF-8 octet"])
        }
    }
}

extension Result where Success == ServerConfig, Failure == DiagnosticList {
    /// The diagnostic lines of a failed load; empty after a success.
    var diagnostics: [String] {
        if case .failure(let list) = self { list.diagnostics.map(\.description) } else { [] }
    }
}
