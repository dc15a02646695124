// TestSupport.swift
//
// Why this file exists: the executor catalogue the tests check job files
// against, and small helpers to decode text and collect diagnostic lines.

import Foundation
import TesseraConfig

/// The catalogue of the tests: `shell`, `noop` and `echo`.
let testCatalog = ExecutorCatalog([
    ExecutorSpec(
        name: "shell", plugin: "shell", pluginPath: "/usr/lib/tessera/plugins/libtessera-shell.so",
        description: "Runs a command",
        params: [
            ParamSpec(name: "command", type: .stringList, required: true, description: "argv"),
            ParamSpec(name: "env", type: .stringMap, description: "extra environment"),
            ParamSpec(name: "cwd", type: .string, description: "working directory"),
        ]),
    ExecutorSpec(
        name: "noop", plugin: "noop", pluginPath: "/usr/lib/tessera/plugins/libtessera-noop.so",
        description: "Does nothing"),
    ExecutorSpec(
        name: "echo", plugin: "noop", pluginPath: "/usr/lib/tessera/plugins/libtessera-noop.so",
        description: "Prints text",
        params: [
            ParamSpec(name: "text", type: .string, required: true, description: "what to print"),
            ParamSpec(name: "count", type: .integer, defaultValue: "1", description: "how many times"),
        ]),
])

let jobFile = "etc/tessera/jobs.d/hello.yaml"
let serverFile = "etc/tessera/tessera.yaml"

/// The diagnostics of a job file's text, one string each; empty if it decodes.
func jobDiagnostics(_ text: String, catalog: ExecutorCatalog = testCatalog) -> [String] {
    switch ConfigLoader.parseJob(text: text, file: jobFile, catalog: catalog) {
    case .success: []
    case .failure(let list): list.diagnostics.map(\.description)
    }
}

/// The diagnostics of a server configuration's text, one string each; empty if it decodes.
func serverDiagnostics(_ text: String) -> [String] {
    switch ConfigLoader.parseServerConfig(text: text, file: serverFile) {
    case .success: []
    case .failure(let list): list.diagnostics.map(\.description)
    }
}

/// A fresh directory under the system's temporary directory, removed by `body`'s end.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("tessera-config-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    return try body(directory)
}

/// Writes `text` to `directory/name`.
func write(_ text: String, to name: String, in directory: String) throws {
    try text.write(toFile: "\(directory)/\(name)", atomically: false, encoding: .utf8)
}
