// What a microtask can learn from its own memory: a forked copy of the
// worker must not carry the daemon's environment, other stages'
// parameters and sandbox environment, or other microtasks' output.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Isolation between microtasks")
struct IsolationTests {
    @Test("an executor finds no other job's parameters, environment or output, nor the daemon's environment")
    func nothingOfOthersInMemory() throws {
        let tag = "\(getpid())x\(Int(now() * 1000) % 100_000)"
        let secrets = [
            "daemon": "daemon-environment-\(tag)", "param": "parameter-value-\(tag)",
            "environment": "sandbox-environment-\(tag)", "output": "captured-output-\(tag)",
        ]
        let daemon = try Daemon(
            jobs: [
                "secret.yaml": """
                name: secret
                executor: hold_secret
                params: {text: "\(secrets["param"]!)", output: "\(secrets["output"]!)"}
                sandbox: {environment: {SECRET_VALUE: "\(secrets["environment"]!)"}}
                limits: {wall: 60s}
                """,
                "scan.yaml": """
                name: scan
                executor: scan_memory
                params:
                  reversed_needles: [\(secrets.values.map { "\"\(String($0.reversed()))\"" }.joined(separator: ", "))]
                """,
            ], plugins: ["test-hostile"], start: false)
        try daemon.start(environment: ["TESSERA_TEST_SECRET": secrets["daemon"]!])
        let held = try daemon.startRun("secret")
        try waitUntil("the secret microtask to have printed its output") {
            try daemon.tasks(held).first?.progress == 0.5
        }
        let scan = try daemon.startRun("scan")
        #expect(try daemon.wait(forRun: scan).state == .succeeded)
        let scanner = try #require(try daemon.tasks(scan).first)
        let found = scanner.result ?? "?"
        let stderr = try daemon.output(scan, 0)?.stderr ?? ""
        #expect(scanner.state == .succeeded, "\(scanner.reason ?? ""): \(stderr)")
        #expect(found.isEmpty, "found in the scanner's memory: \(found)")
        _ = try daemon.call("CancelRun", ["id": .int(held)])
        #expect(try daemon.wait(forRun: held).state == .cancelled)
    }
}
