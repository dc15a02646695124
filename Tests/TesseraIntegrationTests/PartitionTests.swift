// Microtask computing on the real daemon: stages partitioned from files,
// sweeps and the caller's items; results flowing from stage to stage (map,
// then reduce); templates, the run directory and plugin ABI 1.1; partial
// success, reruns and results streamed out.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Writes `bytes` to `path`.
func writeBytes(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0, "cannot write \(path)")
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        precondition(n > 0)
        offset += n
    }
    close(fd)
}

@Suite("Partitioning and results on the real daemon")
struct PartitionTests {
    @Test("a word count of 50 MiB as split, map (wc -w, result: stdout), reduce gives what wc -w gives")
    func wordCount() throws {
        let data = makeTemporaryDirectory()
        defer { removeTree(data) }
        // Lines of varying length and spacing, so blocks end mid-way through lines.
        var text: [UInt8] = []
        text.reserveCapacity(51 << 20)
        var line = 0
        while text.count < 50 << 20 {
            line += 1
            let words = (0..<(line % 23 + 1)).map { "w\($0 * line % 9973)" }
            text += Array((words.joined(separator: line % 3 == 0 ? "  " : " ") + (line % 5 == 0 ? " \n" : "\n")).utf8)
        }
        writeBytes(data + "/text", text)
        let daemon = try Daemon(
            jobs: [
                "wc.yaml": """
                name: wc
                stages:
                  - name: count
                    executor: shell
                    split: {file: \(data)/text, block: 4MiB}
                    result: stdout
                    params:
                      command: [sh, -c, 'tail -c +$(($1 + 1)) "$2" | head -c "$3" | wc -w', sh, "{{offset}}", "{{path}}", "{{length}}"]
                    sandbox: {filesystem: {tmp: shared}}
                  - name: total
                    executor: shell
                    reduce: count
                    result: stdout
                    params:
                      command: [awk, '-F"result":', '{sub(/}$/, "", $2); s += $2} END {print s}', "{{input}}"]
                """
            ])
        let id = try daemon.startRun("wc")
        let run = try daemon.wait(forRun: id, timeout: 120)
        let tasks = try daemon.tasks(id)
        #expect(run.state == .succeeded, "\(tasks.filter { $0.state != .succeeded })")
        #expect(tasks.filter { $0.stage == "count" }.count == 13)
        let expected = runProgram(["sh", "-c", "wc -w < \(data)/text"]).stdout.trimmingWhitespace
        let total = try #require(tasks.last { $0.stage == "total" })
        #expect(total.result?.trimmingWhitespace == expected)
        #expect(!expected.isEmpty)
    }

    @Test("a glob over a tree of a few hundred files gives the digests sha256sum gives, in bytewise order")
    func globChecksums() throws {
        let data = makeTemporaryDirectory()
        defer { removeTree(data) }
        var files: [String] = []
        for a in ["A", "b", "b-c", "é"] {
            mkdir(data + "/" + a, 0o755)
            for b in 0..<8 {
                mkdir("\(data)/\(a)/\(b)", 0o755)
                for c in 0..<10 {
                    let path = "\(data)/\(a)/\(b)/f\(c).dat"
                    writeFile(path, String(repeating: "\(a)\(b)\(c)", count: c * 37 + 1))
                    files.append(path)
                }
                writeFile("\(data)/\(a)/\(b)/skip.txt", "not matched")
            }
        }
        // A relative link to a file matches (and is summed as its target);
        // a link to a directory is not followed.
        symlink("f3.dat", "\(data)/b/2/link.dat")
        files.append("\(data)/b/2/link.dat")
        symlink(data + "/A", data + "/b/loop")
        files.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let daemon = try Daemon(
            jobs: [
                "sum.yaml": """
                name: sum
                executor: checksum
                glob: \(data)/**/*.dat
                sandbox: {filesystem: {tmp: shared}}
                """
            ], plugins: ["checksum"])
        let id = try daemon.startRun("sum")
        #expect(try daemon.wait(forRun: id, timeout: 120).state == .succeeded)
        let tasks = try daemon.tasks(id)
        #expect(tasks.map(\.item) == files)
        let sums = runProgram(["sha256sum"] + files).stdout.split(separator: "\n").map { String($0.prefix(64)) }
        #expect(sums.count == 321)
        let digests = try tasks.map { try JSON.parse(try #require($0.result))["sha256"]?.stringValue ?? "" }
        #expect(digests == sums)
    }

    @Test("a shell command that prints file names partitions the next stage through from:")
    func shellPartitioner() throws {
        let data = makeTemporaryDirectory()
        defer { removeTree(data) }
        for name in ["one", "three", "two"] {
            writeFile("\(data)/\(name).txt", String(repeating: "x", count: name.count))
        }
        let daemon = try Daemon(
            jobs: [
                "fan.yaml": """
                name: fan
                stages:
                  - name: list
                    executor: shell
                    result: stdout
                    params: {command: [sh, -c, 'ls -1 "$1"/*.txt', sh, \(data)]}
                    sandbox: {filesystem: {tmp: shared}}
                  - name: size
                    executor: shell
                    from: list
                    result: stdout
                    params: {command: [sh, -c, 'wc -c < "$1"', sh, "{{item}}"]}
                    sandbox: {filesystem: {tmp: shared}}
                """
            ])
        let id = try daemon.startRun("fan")
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .succeeded && run.total == 4)
        let sizes = try daemon.tasks(id).filter { $0.stage == "size" }
        #expect(sizes.map(\.item) == ["\(data)/one.txt", "\(data)/three.txt", "\(data)/two.txt"])
        #expect(sizes.map { $0.result?.trimmingWhitespace } == ["3", "5", "3"])
    }

    @Test("templates, TESSERA_* variables and the ABI 1.1 host functions give a microtask the same values")
    func templatesAndABI() throws {
        let daemon = try Daemon(
            jobs: [
                "info.yaml": """
                name: info
                stages:
                  - name: sweep
                    executor: task_info
                    matrix: {x: [1, 2], y: [a]}
                  - name: args
                    executor: shell
                    matrix: {x: [7]}
                    result: stdout
                    params:
                      command: [sh, -c, 'printf "%s|" "$@"; printf "%s|" "$TESSERA_RUN" "$TESSERA_JOB" "$TESSERA_STAGE" "$TESSERA_INDEX" "$TESSERA_ATTEMPT" "$TESSERA_ITEM" "$TESSERA_RUN_DIR"', sh, "{{run}}", "{{job}}", "{{stage}}", "{{ index }}", "{{attempt}}", "{{x}}", "{{run_dir}}"]
                  - name: chunks
                    executor: shell
                    items: [p, q, r]
                    chunk: 2
                    result: stdout
                    params: {command: [sh, -c, 'printf "%s," "$@"', sh, "{{items}}"]}
                  - name: old
                    executor: abi10_echo
                    items: [z]
                    params: {text: "{{item}}-{{index}}"}
                  - name: gather
                    executor: read_input
                    reduce: [chunks]
                  - name: count
                    executor: shell
                    reduce: chunks
                    result: stdout
                    params: {command: [sh, -c, 'test "$TESSERA_INPUT" = "$1" && wc -l < "$1"', sh, "{{input}}"]}
                """
            ], plugins: ["shell", "test-hostile", "test-abi10"], slots: 4)
        let id = try daemon.startRun("info")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        let tasks = try daemon.tasks(id)
        let runDir = daemon.directory + "/state/runs/\(id)"
        let first = try JSON.parse(try #require(tasks[0].result))
        #expect(first["run"]?.intValue == id)
        #expect(first["job"]?.stringValue == "info" && first["stage"]?.stringValue == "sweep")
        #expect(first["attempt"]?.intValue == 1 && first["index"]?.intValue == 0)
        #expect(first["item"]?.stringValue == #"{"x":1,"y":"a"}"#)
        #expect(first["field_x"]?.stringValue == "1")
        // This stage names no {{run_dir}}: it is not given one.
        #expect(first["run_dir"] == .null)
        #expect(first["input"] == .null)
        #expect(try JSON.parse(try #require(tasks[1].result))["field_x"]?.stringValue == "2")
        let args = try #require(tasks.first { $0.stage == "args" })
        #expect(
            args.result
                == "\(id)|info|args|2|1|7|\(runDir)|\(id)|info|args|2|1|{\"x\":7}|\(runDir)|")
        #expect(tasks.filter { $0.stage == "chunks" }.map(\.result) == ["p,q,", "r,"])
        #expect(tasks.filter { $0.stage == "chunks" }.map(\.item) == [#"["p","q"]"#, #"["r"]"#])
        #expect(
            tasks.first { $0.stage == "old" }?.result == "z-5",
            "a plugin built for ABI 1.0 loads and gets its parameters substituted")
        // host->input_path and TESSERA_INPUT name the reduce input.
        #expect(
            tasks.first { $0.stage == "gather" }?.result == """
                {"stage":"chunks","index":3,"item":["p","q"],"result":"p,q,"}
                {"stage":"chunks","index":4,"item":["r"],"result":"r,"}

                """)
        #expect(tasks.first { $0.stage == "count" }?.result == "2\n")
    }

    @Test("the run directory carries files from one stage to the next and goes away with the run")
    func runDirectory() throws {
        let daemon = try Daemon(
            jobs: [
                "dir.yaml": """
                name: dir
                stages:
                  - name: write
                    executor: shell
                    range: {from: 0, to: 3}
                    params: {command: [sh, -c, 'echo "part $1" > "$2/part-$1"', sh, "{{item}}", "{{run_dir}}"]}
                  - name: read
                    executor: shell
                    after: [write]
                    result: stdout
                    params:
                      command: [sh, -c, 'cat "$TESSERA_RUN_DIR"/part-*']
                      env: {DIRECTORY: "{{run_dir}}"}
                  - name: elsewhere
                    executor: shell
                    after: [write]
                    result: stdout
                    params: {command: [sh, -c, 'echo "[$TESSERA_RUN_DIR]"']}
                """,
                "plain.yaml": "name: plain\nexecutor: shell\nitems: [a]\nparams: {command: [sleep, '0.5']}\n",
            ])
        // A run that gives no stage the directory has none, even while it runs.
        let plain = try daemon.startRun("plain")
        try waitUntil("the microtask of run \(plain) to run") { try daemon.tasks(plain).first?.state == .running }
        #expect(access(daemon.directory + "/state/runs/\(plain)", F_OK) != 0)
        #expect(try daemon.wait(forRun: plain).state == .succeeded)
        let id = try daemon.startRun("dir")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        let tasks = try daemon.tasks(id)
        #expect(tasks.first { $0.stage == "read" }?.result == "part 0\npart 1\npart 2\n")
        // A stage that does not name the run directory is not given it.
        #expect(tasks.first { $0.stage == "elsewhere" }?.result == "[]\n")
        #expect(access(daemon.directory + "/state/runs/\(id)", F_OK) != 0)
    }

    @Test("result: stdout past limits.result fails the microtask with that reason")
    func resultLimit() throws {
        let daemon = try Daemon(
            jobs: [
                "big.yaml": """
                name: big
                executor: shell
                result: stdout
                limits: {result: 1KiB}
                items: [1000, 2000]
                params: {command: [sh, -c, 'head -c "$1" /dev/zero | tr "\\\\0" x', sh, "{{item}}"]}
                """
            ])
        let id = try daemon.startRun("big")
        #expect(try daemon.wait(forRun: id).state == .failed)
        let tasks = try daemon.tasks(id)
        #expect(tasks[0].state == .succeeded && tasks[0].result?.count == 1000)
        #expect(tasks[1].state == .failed && tasks[1].reason == "result limit 1KiB exceeded")
    }

    @Test("items from the caller over the socket, from standard input and from a file for a named stage")
    func callerItems() throws {
        let daemon = try Daemon(
            jobs: [
                "take.yaml": """
                name: take
                stages:
                  - name: first
                    executor: shell
                    items: [unused]
                    chunk: 5000
                    result: stdout
                    params: {command: [sh, -c, 'echo "$#"; echo "$1"', sh, "{{items}}"]}
                  - name: second
                    executor: shell
                    result: stdout
                    params: {command: [echo, "{{item}}"]}
                """
            ])
        // 60,000 lines: several AddItems messages.
        let lines = (0..<60_000).map { "item-\($0)-" + String(repeating: "y", count: $0 % 20) }
        let fromStdin = runProgram(
            ["\(binDirectory)/tessera", "run", "take", "--items", "-", "--wait"],
            environment: ["TESSERA_SOCKET": daemon.socket], stdin: lines.joined(separator: "\n") + "\n\n")
        #expect(fromStdin.status == 0, "\(fromStdin.stderr)")
        let runs = try daemon.call("ListRuns")["runs"]?.arrayValue ?? []
        let id = try #require(runs.first?["id"]?.intValue)
        let tasks = try daemon.tasks(id)
        #expect(tasks.filter { $0.stage == "first" }.count == 12)
        #expect(tasks.first?.result == "5000\nitem-0-\n")
        #expect(
            tasks.filter { $0.stage == "first" }.last?.result
                == "5000\nitem-55000-\(String(repeating: "y", count: 0))\n")

        let file = daemon.directory + "/names"
        writeFile(file, "b\r\na\n")
        let named = daemon.cli(["run", "take", "--items", "second=\(file)", "--wait"])
        #expect(named.status == 0, "\(named.stderr)")
        let second = try #require(try daemon.call("ListRuns")["runs"]?.arrayValue?.first?["id"]?.intValue)
        #expect(try daemon.tasks(second).filter { $0.stage == "second" }.map(\.result) == ["b\n", "a\n"])
        let shown = daemon.cli(["show", String(second)])
        #expect(shown.stdout.contains("caller: 2 items"), "\(shown.stdout)")
        #expect(shown.stdout.contains("started by: root"))

        // A rerun takes the caller's items again from the run it reruns.
        #expect(daemon.cli(["rerun", String(second), "--wait"]).status == 0)
        let third = try #require(try daemon.call("ListRuns")["runs"]?.arrayValue?.first?["id"]?.intValue)
        #expect(try daemon.tasks(third).filter { $0.stage == "second" }.map(\.item) == ["b", "a"])

        // A template given at run time is checked as the job file's are.
        let badParam = daemon.cli(["run", "take", "--param", "command=echo,{{colour}}"])
        #expect(badParam.status == 1)
        #expect(badParam.stderr.contains("unknown template {{colour}}"), "\(badParam.stderr)")

        let wrong = daemon.cli(["run", "take", "--items", "nostage=\(file)"])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("job take has no stage \"nostage\""), "\(wrong.stderr)")
    }

    @Test("max_failures, rerun --failed and results streamed as jsonl, csv and tsv")
    func partialSuccessAndResults() throws {
        let daemon = try Daemon(
            jobs: [
                "flaky.yaml": """
                name: flaky
                stages:
                  - name: map
                    executor: shell
                    items: [a, b, c, d]
                    max_failures: 50%
                    result: stdout
                    params: {command: [sh, -c, 'test "$1" != b && printf "{\\"v\\": \\"%s\\"}" "$1"', sh, "{{item}}"]}
                  - name: sum
                    executor: shell
                    reduce: map
                    result: stdout
                    params: {command: [wc, -l, "{{input}}"]}
                """
            ])
        let id = try daemon.startRun("flaky")
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .succeeded && run.counts.failed == 1)
        #expect(run.reason == "stage map: 1 of 4 microtask(s) did not succeed, within max_failures (2)")
        #expect(try daemon.tasks(id).last?.result?.hasPrefix("3 ") == true)

        // tasks shows why a microtask failed, not the (empty) output it printed.
        let listed = daemon.cli(["tasks", String(id), "--state", "failed"])
        #expect(listed.stdout.contains("exited with code 1"), "\(listed.stdout)")

        let csv = daemon.cli(["results", String(id), "--format", "csv", "--stage", "map"])
        #expect(csv.status == 0)
        #expect(
            csv.stdout
                == "stage,index,item,state,result\r\nmap,0,a,succeeded,\"{\"\"v\"\": \"\"a\"\"}\"\r\n"
                + "map,1,b,failed,\r\nmap,2,c,succeeded,\"{\"\"v\"\": \"\"c\"\"}\"\r\n"
                + "map,3,d,succeeded,\"{\"\"v\"\": \"\"d\"\"}\"\r\n")
        let jsonl = daemon.cli(["results", String(id)]).stdout.split(separator: "\n")
        #expect(jsonl.count == 5)
        #expect(jsonl[0] == #"{"stage":"map","index":0,"item":"a","state":"succeeded","result":{"v":"a"}}"#)
        #expect(jsonl[1] == #"{"stage":"map","index":1,"item":"b","state":"failed","result":""}"#)
        let tsv = daemon.cli(["results", String(id), "--format", "tsv", "--stage", "sum"])
        #expect(tsv.stdout.hasPrefix("stage\tindex\titem\tstate\tresult\nsum\t4\t"))
        #expect(
            daemon.cli(["results", String(id), "--stage", "nope"]).stderr
                == "tessera: run \(id) has no stage \"nope\"\n")

        let rerun = daemon.cli(["rerun", String(id), "--failed", "--wait"])
        #expect(rerun.status == 1, "b fails again: the reduce over nothing but failures fails the stage")
        let again = try #require(try daemon.call("ListRuns")["runs"]?.arrayValue?.first?["id"]?.intValue)
        #expect(again != id)
        #expect(try daemon.tasks(again).filter { $0.stage == "map" }.map(\.item) == ["b"])
        let shown = daemon.cli(["show", String(again)])
        #expect(shown.stdout.contains("reruns:     run \(id)"), "\(shown.stdout)")

        let whole = daemon.cli(["rerun", String(id), "--wait"])
        #expect(whole.status == 0, "\(whole.stdout)\(whole.stderr)")
    }

    @Test("csv quotes and tsv escapes a result with CRLF line ends")
    func crlfResults() throws {
        let daemon = try Daemon(
            jobs: [
                "crlf.yaml": """
                name: crlf
                executor: shell
                result: stdout
                params: {command: [printf, 'a\\r\\nb']}
                """
            ])
        let id = try daemon.startRun("crlf")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        #expect(
            daemon.cli(["results", String(id), "--format", "csv"]).stdout
                == "stage,index,item,state,result\r\nmain,0,,succeeded,\"a\r\nb\"\r\n")
        #expect(
            daemon.cli(["results", String(id), "--format", "tsv"]).stdout
                == "stage\tindex\titem\tstate\tresult\nmain\t0\t\tsucceeded\ta\\r\\nb\n")
    }

    @Test("a high-priority run started after a long low-priority run finishes first")
    func priority() throws {
        let daemon = try Daemon(
            jobs: [
                "work.yaml": """
                name: work
                priority: 10
                executor: shell
                range: {from: 0, to: 12}
                params: {command: [sleep, '0.2']}
                """
            ], slots: 1)
        let low = try daemon.startRun("work")
        try waitUntil("the low run to start") { try daemon.tasks(low, state: .running).count == 1 }
        let started = daemon.cli(["run", "work", "--priority", "90", "--wait"])
        #expect(started.status == 0, "\(started.stderr)")
        let high = try #require(try daemon.call("ListRuns")["runs"]?.arrayValue?.first?["id"]?.intValue)
        let lowNow = try #require(RunInfo(json: try daemon.call("GetRun", ["id": .int(low)])["run"] ?? .null))
        #expect(!lowNow.state.isFinal && lowNow.counts.queued > 0, "the low run had work left when the high one ended")
        #expect(RunInfo(json: try daemon.call("GetRun", ["id": .int(high)])["run"] ?? .null)?.priority == 90)
        #expect(daemon.cli(["show", String(high)]).stdout.contains("priority:   90"))
        #expect(daemon.cli(["run", "work", "--priority", "101"]).stderr.contains("--priority must be from 0 to 100"))
        _ = try daemon.call("CancelRun", ["id": .int(low)])
    }

    @Test("with capacity.cpu 2 and requests.cpu 1 no more than two microtasks run at once, whatever slots say")
    func admission() throws {
        let daemon = try Daemon(
            jobs: [
                "heavy.yaml": """
                name: heavy
                executor: shell
                range: {from: 0, to: 8}
                requests: {cpu: 1, memory: 64MiB}
                params: {command: [sleep, '0.3']}
                """
            ], slots: 6, extraConfig: "capacity: {cpu: 2, memory: auto}")
        let id = try daemon.startRun("heavy")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        // From the recorded times: at no moment did three overlap.
        let spans = try daemon.tasks(id).compactMap { task in
            task.startedAt.flatMap { s in task.finishedAt.map { (s, $0) } }
        }
        #expect(spans.count == 8)
        let most = spans.map { span in spans.filter { $0.0 <= span.0 && span.0 < $0.1 }.count }.max() ?? 0
        #expect(most == 2, "\(most) microtasks ran at once")

        // A request larger than the whole capacity is an error when the job is loaded.
        writeFile(
            daemon.jobsDirectory + "/huge.yaml",
            "name: huge\nexecutor: noop\nrequests: {cpu: 4}\n")
        let check = runProgram(["\(binDirectory)/tesserad", "--check", "--config", daemon.configPath])
        #expect(check.status != 0)
        #expect(
            check.stderr.contains(
                "huge.yaml:3:11: stages[0].requests: each microtask requests 4 CPU(s), more than the server's "
                    + "capacity of 2"), "\(check.stderr)")
    }

    @Test("a high avg10 in the pressure files stops new starts; lowering it resumes them")
    func pressure() throws {
        let source = makeTemporaryDirectory("tessera-pressure")
        defer { removeTree(source) }
        func set(memory: Double) {
            writeFile(
                source + "/memory",
                "some avg10=\(memory) avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
        }
        set(memory: 55)
        let daemon = try Daemon(
            jobs: ["quick.yaml": "name: quick\nexecutor: noop\nrange: {from: 0, to: 3}\n"],
            extraConfig: "pressure: {memory: 20%, source: \(source)}")
        try waitUntil("admission to pause") {
            try daemon.call("GetStatus")["status"]?["admissionPaused"]?.stringValue != nil
        }
        #expect(daemon.cli(["status"]).stdout.contains("admission: paused: memory pressure 55% is over 20% since"))
        let id = try daemon.startRun("quick")
        // Dispatch runs before StartRun replies: had admission been open, they would be running.
        let run = try #require(RunInfo(json: try daemon.call("GetRun", ["id": .int(id)])["run"] ?? .null))
        #expect(run.counts.queued == 3 && run.counts.running == 0 && run.counts.succeeded == 0)
        set(memory: 10)
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        #expect(daemon.log.contains("admission paused: memory pressure 55% is over 20%"))
        #expect(daemon.log.contains("admission resumed (memory 10%)"))
    }

    @Test("tasks says when it shows part of a run")
    func tasksPaging() throws {
        let daemon = try Daemon(
            jobs: ["five.yaml": "name: five\nexecutor: noop\nrange: {from: 0, to: 5}\n"])
        let id = try daemon.startRun("five")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        let part = daemon.cli(["tasks", String(id), "--limit", "2", "--offset", "1"])
        #expect(part.status == 0)
        #expect(part.stderr == "showing 2-3 of 5; --limit/--offset for more\n")
        #expect(daemon.cli(["tasks", String(id)]).stderr.isEmpty)
    }

    @Test("a source that cannot be read fails the run at once; rerun --failed reads it again")
    func sourceFailsAtStart() throws {
        let list = "/tmp/tessera-lines-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(list) }
        let daemon = try Daemon(
            jobs: [
                "lines.yaml": "name: lines\nexecutor: noop\nlines: \(list)\n",
                "slow.yaml": "name: slow\nexecutor: shell\nparams: {command: [sleep, '30']}\n",
            ])
        let started = daemon.cli(["run", "lines"])
        #expect(started.status == 1)
        #expect(
            started.stdout.contains("failed at once: stage main: lines: \(list): No such file or directory"),
            "\(started.stdout)")
        writeFile(list, "x\ny\n")
        let rerun = daemon.cli(["rerun", "1", "--failed", "--wait"])
        #expect(rerun.status == 0, "\(rerun.stdout)\(rerun.stderr)")
        #expect(try daemon.tasks(2).map(\.item) == ["x", "y"])

        // A run that has not ended cannot be rerun yet.
        let slow = try daemon.startRun("slow")
        let early = daemon.cli(["rerun", String(slow)])
        #expect(early.status == 1)
        #expect(early.stderr.contains("run \(slow) has not ended"), "\(early.stderr)")
        _ = try daemon.call("CancelRun", ["id": .int(slow)])
    }
}
