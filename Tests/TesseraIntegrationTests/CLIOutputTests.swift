// What the tessera CLI shows people and gives programs: escaped control
// characters in tables and on terminals, the exact bytes in JSON and in
// pipes, options before or after the command, and errors that say what is
// wrong and what was meant.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The bytes hostile's raw_result executor sets and prints.
let rawResultBytes: [UInt8] =
    Array("ok\u{1b}[2J\u{1b}]0;owned\u{07}\r\n    7  fake  row  succeeded\n".utf8) + [0xff, 0xfe]

/// Runs the tessera CLI on a pseudo-terminal (through script(1)) and
/// returns what it wrote there.
func cliOnTerminal(_ daemon: Daemon, _ arguments: [String]) -> [UInt8] {
    let command = (["\(binDirectory)/tessera", "--socket", daemon.socket] + arguments).joined(separator: " ")
    let log = daemon.directory + "/terminal.log"
    _ = runProgram(["script", "--quiet", "--return", "--command", command, log])
    return readFileBytes(log)
}

@Suite("CLI output")
struct CLIOutputTests {
    @Test("a result or output with control characters cannot forge rows or take over a terminal")
    func controlCharactersAreEscaped() throws {
        let daemon = try Daemon(jobs: ["raw.yaml": "name: raw\nexecutor: raw_result\n"], plugins: ["test-hostile"])
        let id = try daemon.startRun("raw")
        #expect(try daemon.wait(forRun: id).state == .succeeded)

        let table = daemon.cli(["tasks", String(id)])
        let lines = table.stdout.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        #expect(lines.count == 2, "a header and one row: \(table.stdout)")
        #expect(!table.stdout.utf8.contains(0x1b) && !table.stdout.contains("\r"))
        #expect(table.stdout.contains("ok\\x1b[2J\\x1b]0;owned\\x07\\r\\n"), "\(table.stdout)")
        #expect(table.stdout.contains("\\xff\\xfe"), "bytes that are not UTF-8 are shown as such")

        let terminal = cliOnTerminal(daemon, ["output", String(id), "0"])
        #expect(!terminal.contains(0x1b), "\(String(decoding: terminal, as: UTF8.self))")
        #expect(String(decoding: terminal, as: UTF8.self).contains("fake  row"))

        let piped = runProgram(
            ["sh", "-c", "\(binDirectory)/tessera output \(id) 0 | od -An -tx1 -v"],
            environment: ["TESSERA_SOCKET": daemon.socket])
        let hex = rawResultBytes.map {
            String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16)
        }
        #expect(
            piped.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init) == hex,
            "a pipe gets the exact bytes")

        let json = try JSON.parse(daemon.cli(["tasks", String(id), "--json"]).stdout.trimmingWhitespace)
        let encoded = try #require(json.arrayValue?.first?["resultBase64"]?.stringValue)
        #expect(Base64.decode(encoded) == rawResultBytes, "--json keeps the exact bytes")
        let output = try daemon.call("GetTaskOutput", ["run": .int(id), "index": 0])["output"]
        #expect(output?["stdoutBase64"]?.stringValue.flatMap(Base64.decode) == rawResultBytes)
    }

    @Test("the shared options go before the command as well as after it")
    func optionsBeforeTheCommand() throws {
        let daemon = try Daemon()
        for arguments in [
            ["--socket", daemon.socket, "status"], ["--socket=\(daemon.socket)", "status"],
            ["status", "--socket", daemon.socket],
        ] {
            let result = runProgram(["\(binDirectory)/tessera"] + arguments)
            #expect(result.status == 0 && result.stdout.contains("slots"), "\(arguments): \(result.stderr)")
        }
        let json = daemon.cli(["--json", "status"])
        #expect(json.status == 0, "\(json.stderr)")
        #expect((try? JSON.parse(json.stdout.trimmingWhitespace))?["slots"]?.intValue == 2, "\(json.stdout)")
    }

    @Test("an unknown command, a misspelt job and bad numbers are named, with what was meant")
    func mistakesAreNamed() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob])
        let tail = daemon.cli(["tail", "11"])
        #expect(tail.status == 64)
        #expect(tail.stderr.contains("unknown command \"tail\""), "\(tail.stderr)")
        let typo = daemon.cli(["stauts"])
        #expect(typo.stderr.contains("unknown command \"stauts\"; did you mean \"status\"?"), "\(typo.stderr)")

        let job = daemon.cli(["run", "hell"])
        #expect(job.status == 1)
        #expect(job.stderr.contains("no job named \"hell\"; did you mean \"hello\"?"), "\(job.stderr)")

        let id = try daemon.startRun("hello")
        _ = try daemon.wait(forRun: id)
        let cancel = daemon.cli(["cancel", String(id)])
        #expect(cancel.stderr.contains("run \(id) has already ended (succeeded)"), "\(cancel.stderr)")

        let limit = daemon.cli(["runs", "--limit", "-1"])
        #expect(limit.status == 64)
        #expect(limit.stderr.contains("--limit must be positive, found -1"), "\(limit.stderr)")
        let offset = daemon.cli(["tasks", String(id), "--offset", "-3"])
        #expect(offset.stderr.contains("--offset must not be negative, found -3"), "\(offset.stderr)")
    }

    @Test("a running microtask's time is how long it has been running")
    func runningTime() throws {
        let daemon = try Daemon(jobs: ["slow.yaml": "name: slow\nexecutor: shell\nparams: {command: [sleep, '30']}\n"])
        let id = try daemon.startRun("slow")
        try waitUntil("the microtask to run for a while") {
            let task = try daemon.tasks(id).first
            return task?.state == .running && (task?.startedAt ?? now()) < wallClockNow() - 0.2
        }
        let lines = daemon.cli(["tasks", String(id)]).stdout.split(separator: "\n").map(String.init)
        let header = try #require(lines.first), row = try #require(lines.last)
        // TIME is right-aligned: the figure ends where its heading does.
        let words = header.split(separator: " ")
        let heading = try #require(words.first { $0 == "TIME" })
        let end = header.distance(from: header.startIndex, to: heading.endIndex)
        let time = try #require(row.prefix(end).split(separator: " ").last)
        #expect(time.hasSuffix("ms") || time.hasSuffix("s"), "TIME of a running microtask: \(row)")
        #expect(time != "-")
        _ = try daemon.call("CancelRun", ["id": .int(id)])
    }
}

func wallClockNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
