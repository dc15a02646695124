// Retries on the real daemon: attempts recorded one by one, permanent
// failures tried once, what `tessera tasks` and `tessera attempts` say.

import Testing

@testable import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Retries")
struct RetryIntegrationTests {
    func attempts(_ daemon: Daemon, _ run: Int64, _ index: Int) throws -> [AttemptInfo] {
        (try daemon.call("ListAttempts", ["run": .int(run), "index": .int(Int64(index))])["attempts"]?.arrayValue ?? [])
            .compactMap(AttemptInfo.init(json:))
    }

    @Test("a microtask that fails until its third attempt ends succeeded, with three attempts recorded")
    func thirdAttempt() throws {
        let job = """
            name: flaky
            executor: shell
            params: {command: [sh, -c, 'echo "try $TESSERA_ATTEMPT" >&2; test "$TESSERA_ATTEMPT" -ge 3']}
            retry: {attempts: 3, backoff: 50ms}

            """
        let daemon = try Daemon(jobs: ["flaky.yaml": job])
        let id = try daemon.startRun("flaky")
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .succeeded)
        let task = try #require(try daemon.tasks(id).first)
        #expect(task.attempt == 3 && task.state == .succeeded)
        let history = try attempts(daemon, id, 0)
        #expect(history.map(\.attempt) == [1, 2, 3])
        #expect(history.map(\.state) == [.failed, .failed, .succeeded])
        #expect(history.prefix(2).allSatisfy { $0.exitCode == 1 && $0.reason?.hasPrefix("exited with code 1") == true })
        #expect(history.allSatisfy { $0.startedAt != nil && $0.finishedAt != nil })
        // Each attempt started after the one before had ended.
        for (before, after) in zip(history, history.dropFirst()) {
            #expect((after.startedAt ?? 0) >= (before.finishedAt ?? .infinity))
        }

        let table = daemon.cli(["tasks", String(id)])
        let header = table.stdout.split(separator: "\n").first.map(String.init) ?? ""
        #expect(header.contains("TRIES"), "\(table.stdout)")
        let json = try JSON.parse(Array(daemon.cli(["tasks", String(id), "--json"]).stdout.utf8))
        let record = try #require(json.arrayValue?.first)
        #expect(record["attempt"]?.intValue == 3)
        #expect(record["startedAt"]?.doubleValue != nil && record["finishedAt"]?.doubleValue != nil)
        let listed = daemon.cli(["attempts", String(id), "0"])
        #expect(listed.status == 0)
        #expect(listed.stdout.split(separator: "\n").count == 4, "a heading and three attempts:\n\(listed.stdout)")
    }

    @Test("a permanent failure is tried once: an exit code the policy names, or an executor that says so")
    func permanent() throws {
        let daemon = try Daemon(
            jobs: [
                "code.yaml": """
                name: code
                executor: shell
                params: {command: [sh, -c, 'exit 2']}
                retry: {attempts: 5, backoff: 10ms, permanent_exit_codes: [2]}

                """,
                "abi.yaml": """
                name: abi
                executor: permanent
                retry: {attempts: 5, backoff: 10ms}

                """,
                "plain.yaml": """
                name: plain
                executor: shell
                params: {command: [sh, -c, 'exit 3']}
                retry: {attempts: 2, backoff: 10ms}

                """,
            ], plugins: ["shell", "test-hostile"])
        let code = try daemon.startRun("code")
        let abi = try daemon.startRun("abi")
        let plain = try daemon.startRun("plain")
        for id in [code, abi, plain] { #expect(try daemon.wait(forRun: id).state == .failed) }

        #expect(try attempts(daemon, code, 0).count == 1)
        #expect(try daemon.tasks(code).first?.reason == "exited with code 2 (permanent failure, not retried)")

        #expect(try attempts(daemon, abi, 0).count == 1)
        let reason = try daemon.tasks(abi).first?.reason ?? ""
        #expect(reason.contains("the item is malformed; retrying will not help"), "\(reason)")
        #expect(reason.hasSuffix("(permanent failure, not retried)"), "\(reason)")

        // The control: the same failure without the word is retried.
        #expect(try attempts(daemon, plain, 0).map(\.exitCode) == [3, 3])
        #expect(try daemon.tasks(plain).first?.reason?.hasSuffix("(attempt 2 of 2)") == true)
    }

    @Test("a waiting retry is shown with when it is due, and is cancelled with its run")
    func waitingRetry() throws {
        let job = """
            name: later
            executor: shell
            params: {command: [sh, -c, 'exit 1']}
            retry: {attempts: 3, backoff: 1h, jitter: false}

            """
        let daemon = try Daemon(jobs: ["later.yaml": job])
        let id = try daemon.startRun("later")
        try waitUntil("the first attempt to fail and wait") {
            try daemon.tasks(id).first?.retryAt != nil
        }
        let task = try #require(try daemon.tasks(id).first)
        #expect(task.state == .queued && task.attempt == 1)
        #expect(task.reason?.hasPrefix("exited with code 1") == true)
        let table = daemon.cli(["tasks", String(id)]).stdout
        #expect(table.contains("retry in 59m") || table.contains("retry in 1h"), "\(table)")
        _ = try daemon.call("CancelRun", ["id": .int(id)])
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .cancelled)
        #expect(try daemon.tasks(id).first?.retryAt == nil)
    }
}
