// Feedback on the real daemon: the event log and its live stream, output
// followed as it is written, watch and wait from another terminal, runs
// deleted by hand and by retention, and followers that outlive a restart
// of tesserad.

import Testing

@testable import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// A CLI process started in the background, its output in files.
final class BackgroundCLI {
    let pid: pid_t
    let out: String
    let err: String
    private var status: Int32?

    init(_ daemon: Daemon, _ arguments: [String]) throws {
        let directory = makeTemporaryDirectory("tessera-cli")
        out = directory + "/out"
        err = directory + "/err"
        pid = try spawn(
            ["\(binDirectory)/tessera"] + arguments,
            environment: processEnvironment(setting: ["TESSERA_SOCKET": daemon.socket]), stdout: out, stderr: err)
    }

    var stdout: String { readFile(out) }
    var stderr: String { readFile(err) }

    /// The exit status once it has exited, else nil.
    var exitStatus: Int32? {
        if let status { return status }
        var raw: Int32 = 0
        guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
        status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        return status
    }

    func waitForExit(timeout: Double = 60) throws -> Int32 {
        try waitUntil(timeout: timeout, "tessera to exit") { exitStatus != nil }
        return exitStatus!
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            _ = exitStatus
        }
    }
}

@Suite("Feedback")
struct FeedbackTests {
    func events(_ daemon: Daemon, _ parameters: JSON = [:]) throws -> [JSON] {
        try daemon.call("ListEvents", parameters)["events"]?.arrayValue ?? []
    }

    @Test("the event log tells a run's life in order, with ids that follow each other, filtered and followed")
    func eventLog() throws {
        let daemon = try Daemon(jobs: [
            "mixed.yaml": """
            name: mixed
            executor: shell
            params: {command: [sh, -c, 'echo "bad $1" >&2; [ "$1" != b ]', sh, "{{item}}"]}
            items: [a, b]
            retry: {attempts: 2, backoff: 10ms}

            """
        ])
        let id = try daemon.startRun("mixed")
        #expect(try daemon.wait(forRun: id).state == .failed)
        let all = try events(daemon)
        let ids = all.compactMap { $0["id"]?.intValue }
        #expect(ids == Array(1...Int64(ids.count)), "ids follow each other: \(ids)")
        let kinds = all.compactMap { $0["kind"]?.stringValue }
        #expect(kinds.first == "daemon.started" && kinds.contains("worker.started"), "\(kinds)")
        let ofRun = try events(daemon, ["run": .int(id)])
        #expect(
            ofRun.compactMap { $0["kind"]?.stringValue }
                == ["run.created", "run.started", "task.retrying", "task.failed", "stage.finished", "run.finished"])
        let retrying = try #require(ofRun.first { $0["kind"] == "task.retrying" })
        #expect(retrying["fields"]?["index"]?.intValue == 1 && retrying["fields"]?["attempt"]?.intValue == 1)
        #expect(retrying["fields"]?["reason"]?.stringValue == "exited with code 1: bad b")
        #expect(retrying["fields"]?["retryAt"]?.doubleValue != nil)
        let failed = try #require(ofRun.first { $0["kind"] == "task.failed" })
        #expect(failed["fields"]?["reason"]?.stringValue?.contains("attempt 2 of 2") == true, "\(failed)")
        let finished = try #require(ofRun.last)
        #expect(finished["fields"]?["state"] == "failed" && finished["job"] == "mixed" && finished["run"] == .int(id))
        #expect(try events(daemon, ["job": "nosuchjob"]).isEmpty)
        #expect(try events(daemon, ["after": .int(ids.last! - 2)]).count == 2)
        #expect(try events(daemon, ["tail": 3]).compactMap { $0["id"]?.intValue } == Array(ids.suffix(3)))

        // The CLI: lines for people, JSON Lines for programs, a duration.
        let text = daemon.cli(["events", "--run", String(id)])
        #expect(text.status == 0 && text.stdout.split(separator: "\n").count == 6, "\(text.stdout)\(text.stderr)")
        #expect(text.stdout.contains("task.failed  job=mixed run=\(id) index=1 stage=main attempt=2"), "\(text.stdout)")
        let lines = daemon.cli(["events", "--json", "--since", "1h"]).stdout.split(separator: "\n")
        #expect(lines.count == ids.count)
        #expect(lines.allSatisfy { (try? JSON.parse(Array($0.utf8)))?["kind"]?.stringValue != nil })
        #expect(daemon.cli(["events", "--since", "2"]).stdout.split(separator: "\n").count == ids.count - 1)
        let bad = daemon.cli(["events", "--since", "yesterday"])
        #expect(bad.status == 64 && bad.stderr.contains("--since takes an event id or a duration"), "\(bad.stderr)")

        // Following one run: its history, then the stream ends with it.
        let followed = daemon.cli(["events", "-f", "--run", String(id)])
        #expect(followed.status == 0 && followed.stdout.split(separator: "\n").count == 6, "\(followed.stdout)")
    }

    @Test("events -f prints events as they are committed, and goes on after tesserad is killed and started again")
    func followEventsAcrossRestart() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob])
        let follower = try BackgroundCLI(daemon, ["events", "-f", "--json"])
        try waitUntil("the follower to print the start") { follower.stdout.contains("worker.started") }
        let first = try daemon.startRun("hello")
        try waitUntil("run.finished of run \(first)") { follower.stdout.contains("\"run.finished\"") }
        daemon.stop(signal: SIGKILL)
        try daemon.start()
        let second = try daemon.startRun("hello")
        _ = try daemon.wait(forRun: second)
        try waitUntil("run.finished of run \(second)") {
            follower.stdout.split(separator: "\n").contains {
                $0.contains("\"run.finished\"") && $0.contains("\"run\":\(second)")
            }
        }
        let ids = follower.stdout.split(separator: "\n").compactMap { try? JSON.parse(Array($0.utf8))["id"]?.intValue }
        #expect(ids == Array(1...Int64(ids.count)), "every event once, in order: \(ids)")
        #expect(
            follower.stderr.contains("reconnecting") && follower.stderr.contains("connected again"),
            "\(follower.stderr)")
        #expect(follower.exitStatus == nil, "it goes on following")
    }

    @Test("logs -f shows a running microtask's output as it is written, then the rest, once")
    func followOutputLive() throws {
        let gate = makeTemporaryDirectory("tessera-gate")
        chmod(gate, 0o777)
        defer { removeTree(gate) }
        let daemon = try Daemon(jobs: [
            "talk.yaml": """
            name: talk
            executor: shell
            params: {command: [sh, -c, 'echo "first $1"; while [ ! -e \(gate)/go ]; do sleep 0.02; done; echo "second $1"; echo "err $1" >&2', sh, "{{item}}"]}
            items: [a, b]
            sandbox: none

            """
        ])
        let id = try daemon.startRun("talk")
        let one = try BackgroundCLI(daemon, ["logs", String(id), "1", "-f"])
        let all = try BackgroundCLI(daemon, ["logs", String(id), "-f"])
        try waitUntil("the first lines while the microtasks run") {
            one.stdout == "first b\n" && all.stdout.contains("[0] first a\n") && all.stdout.contains("[1] first b\n")
        }
        #expect(try daemon.tasks(id).allSatisfy { $0.state == .running }, "shown while still running")
        // Without -f: what there is now, and it exits.
        let now = daemon.cli(["logs", String(id)])
        #expect(now.status == 0 && now.stdout.contains("[0] first a") && !now.stdout.contains("second"), "\(now)")
        writeFile(gate + "/go", "")
        #expect(try one.waitForExit() == 0)
        #expect(one.stdout == "first b\nsecond b\n")
        #expect(try all.waitForExit() == 0)
        let lines = all.stdout.split(separator: "\n").sorted()
        #expect(lines == ["[0] first a", "[0] second a", "[1] first b", "[1] second b"], "\(all.stdout)")
        #expect(daemon.cli(["logs", String(id), "0", "--stderr"]).stderr == "err a\n")
        #expect(daemon.cli(["logs", String(id), "--stage", "main"]).stdout.split(separator: "\n").count == 4)
        let missing = daemon.cli(["logs", String(id), "7"])
        #expect(missing.status == 1 && missing.stderr.contains("run \(id) has no task 7"), "\(missing.stderr)")
    }

    @Test("logs -f and watch take up again where they were when tesserad is killed and started again")
    func followOutputAcrossRestart() throws {
        let gate = makeTemporaryDirectory("tessera-gate")
        chmod(gate, 0o777)
        defer { removeTree(gate) }
        let daemon = try Daemon(jobs: [
            "talk.yaml": """
            name: talk
            executor: shell
            params: {command: [sh, -c, 'echo "attempt $TESSERA_ATTEMPT"; while [ ! -e \(gate)/go ]; do sleep 0.02; done; echo done']}
            items: [a]
            sandbox: none
            retry: {attempts: 2, on: [lost], backoff: 10ms}

            """
        ])
        let id = try daemon.startRun("talk")
        let logs = try BackgroundCLI(daemon, ["logs", String(id), "0", "-f"])
        let watch = try BackgroundCLI(daemon, ["watch", String(id)])
        try waitUntil("the first attempt's line, and watch following") {
            logs.stdout == "attempt 1\n" && !watch.stdout.isEmpty
        }
        daemon.stop(signal: SIGKILL)
        writeFile(gate + "/go", "")
        try daemon.start()
        #expect(try logs.waitForExit() == 0, "\(logs.stderr)")
        // The lost attempt's line, then the second attempt's whole output.
        #expect(logs.stdout == "attempt 1\nattempt 2\ndone\n", "\(logs.stdout)")
        #expect(logs.stderr.contains("reconnecting"), "\(logs.stderr)")
        #expect(try watch.waitForExit() == 0, "\(watch.stderr)")
        #expect(watch.stdout.contains("run \(id) succeeded"), "\(watch.stdout)")
        let attempts = try daemon.call("ListAttempts", ["run": .int(id), "index": 0])["attempts"]?.arrayValue ?? []
        #expect(attempts.compactMap { $0["reason"]?.stringValue }.first?.hasPrefix("lost:") == true)
    }

    @Test("wait exits with the run's outcome; watch shows the end of a run that has ended")
    func waitAndWatch() throws {
        let daemon = try Daemon(jobs: [
            "hello.yaml": helloJob,
            "fails.yaml": "name: fails\nexecutor: shell\nparams: {command: [\"false\"]}\n",
        ])
        let good = try daemon.startRun("hello")
        let bad = try daemon.startRun("fails")
        let waited = daemon.cli(["wait", String(good)])
        #expect(waited.status == 0 && waited.stdout.hasPrefix("run \(good) succeeded"), "\(waited)")
        let failed = daemon.cli(["wait", String(bad)])
        #expect(failed.status == 1 && failed.stdout.hasPrefix("run \(bad) failed"), "\(failed)")
        let watched = daemon.cli(["watch", String(good)])
        #expect(watched.status == 0 && watched.stdout.contains("3/3 done"), "\(watched.stdout)")
        let json = daemon.cli(["wait", String(bad), "--json"])
        #expect((try? JSON.parse(Array(json.stdout.utf8)))?["state"] == "failed", "\(json.stdout)")
        #expect(daemon.cli(["wait", "999"]).stderr.contains("no run with id 999"))
    }

    @Test(
        "delete and retention remove runs with their microtasks, outputs and events; runs filters by job, state, time")
    func deleteAndRetention() throws {
        let daemon = try Daemon(
            jobs: [
                "hello.yaml": helloJob,
                "kept.yaml": """
                name: kept
                executor: shell
                params: {command: [echo, kept]}
                retention: {max_runs: 1}

                """,
            ], extraConfig: "retention: {max_runs: 3}")
        var ids: [Int64] = []
        for _ in 0..<4 {
            let id = try daemon.startRun("hello")
            _ = try daemon.wait(forRun: id)
            ids.append(id)
        }
        let kept = [try daemon.startRun("kept"), try daemon.startRun("kept")]
        for id in kept { _ = try daemon.wait(forRun: id) }
        // Three runs in all; of kept, only the newest.
        try waitUntil("retention to delete the oldest runs") {
            let listed = (try daemon.call("ListRuns")["runs"]?.arrayValue ?? []).compactMap { $0["id"]?.intValue }
            return listed == [kept[1], ids[3], ids[2]]
        }
        try waitUntil("the deleted runs' events to go, and a run.deleted for each") {
            let all = try events(daemon)
            let deleted = Set(all.filter { $0["kind"] == "run.deleted" }.compactMap { $0["fields"]?["id"]?.intValue })
            return deleted == [ids[0], ids[1], kept[0]] && !all.contains { $0["run"] == .int(ids[0]) }
        }
        #expect(throws: VarlinkClientError.self) { try daemon.call("GetRun", ["id": .int(ids[0])]) }
        #expect(daemon.cli(["tasks", String(ids[0])]).stderr.contains("no run with id \(ids[0])"))

        let filtered = daemon.cli(["runs", "--job", "kept", "--state", "succeeded", "--since", "1h", "--json"])
        #expect(
            (try? JSON.parse(Array(filtered.stdout.utf8)))?.arrayValue?.compactMap { $0["id"]?.intValue } == [kept[1]],
            "\(filtered)")
        #expect(daemon.cli(["runs", "--state", "failed"]).stdout.split(separator: "\n").count == 1)
        #expect(daemon.cli(["runs", "--state", "done"]).status == 64)

        let deleted = daemon.cli(["delete", String(ids[3])])
        #expect(deleted.status == 0 && deleted.stdout == "run \(ids[3]) deleted\n", "\(deleted)")
        #expect(daemon.cli(["show", String(ids[3])]).status == 1)
        try waitUntil("its rows to go") {
            try events(daemon).contains { $0["kind"] == "run.deleted" && $0["fields"]?["id"] == .int(ids[3]) }
        }
        #expect(daemon.cli(["status"]).stdout.contains("store:"))
    }

    @Test("a run that has not ended cannot be deleted")
    func deleteActive() throws {
        let daemon = try Daemon(jobs: [
            "slow.yaml": "name: slow\nexecutor: shell\nparams: {command: [sleep, \"30\"]}\n"
        ])
        let id = try daemon.startRun("slow")
        let refused = daemon.cli(["delete", String(id)])
        #expect(refused.status == 1 && refused.stderr.contains("has not ended; cancel it first"), "\(refused.stderr)")
        _ = daemon.cli(["cancel", String(id)])
    }
}
