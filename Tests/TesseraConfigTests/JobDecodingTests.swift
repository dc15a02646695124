// JobDecodingTests.swift
//
// Why this file exists: it pins what valid job files decode to: the full
// multi-stage form, the single-stage short form, declared defaults, and how
// values of each parameter type are taken from YAML.

import Foundation
import TesseraConfig
import Testing

@Suite("Decoding valid job files")
struct JobDecodingTests {
    private func decode(_ text: String, catalog: ExecutorCatalog = testCatalog) throws -> JobDefinition {
        try ConfigLoader.parseJob(text: text, file: jobFile, catalog: catalog).get()
    }

    @Test("the full example decodes to the expected values")
    func fullExample() throws {
        let job = try decode(
            """
            name: hello                 # required
            description: Greets each item
            concurrency: 4
            stages:
              - name: greet
                executor: shell
                params: {command: [sh, -c, "echo hello {{item}}"], env: {LANG: C, TZ: UTC}}
                items: [alpha, beta, gamma]
                limits: {cpu: 10s, memory: 256MiB, wall: 30s, open_files: 64, processes: 16, file_size: 64MiB, output: 1MiB, cpu_quota: 150%}
              - name: count
                executor: echo
                params:
                  text: done
                  count: 3
                range: {from: 0, to: 1000, step: 1}
                after: [greet]
            """)
        let expected = JobDefinition(
            name: "hello", description: "Greets each item", concurrency: 4,
            stages: [
                StageDefinition(
                    name: "greet", executor: "shell",
                    params: [
                        Param(name: "command", value: .list(["sh", "-c", "echo hello {{item}}"])),
                        Param(
                            name: "env",
                            value: .map([MapEntry(key: "LANG", value: "C"), MapEntry(key: "TZ", value: "UTC")])),
                    ],
                    items: .list(["alpha", "beta", "gamma"]),
                    limits: Limits(
                        cpu: 10_000, wall: 30_000, memory: 256 << 20, fileSize: 64 << 20, output: 1 << 20,
                        openFiles: 64, processes: 16, cpuQuota: 150),
                    mark: Mark(line: 5, column: 5)),
                StageDefinition(
                    name: "count", executor: "echo",
                    params: [Param(name: "text", value: .string("done")), Param(name: "count", value: .integer(3))],
                    items: .range(from: 0, to: 1000, step: 1), after: ["greet"],
                    mark: Mark(line: 10, column: 5)),
            ],
            file: jobFile, nameMark: Mark(line: 1, column: 7))
        #expect(job == expected)
    }

    @Test("retry, schedule and requests {memory: auto} decode to what they say")
    func engineKeys() throws {
        let job = try decode(
            """
            name: nightly
            executor: noop
            requests: {cpu: 0.5, memory: auto}
            retry: {attempts: 4, backoff: 2s, jitter: false, on: [timeout, lost], permanent_exit_codes: [2]}
            schedule: "30 2 * * 1-5"
            timezone: Europe/Paris
            overlap: queue
            catch_up: one
            """)
        let stage = try #require(job.stages.first)
        #expect(stage.requests == ResourceRequests(cpu: 0.5, learnsMemory: true))
        #expect(
            stage.retry
                == RetryPolicy(
                    attempts: 4, backoff: 2000, maxBackoff: 300_000, jitter: false, on: [.timeout, .lost],
                    permanentExitCodes: [2]))
        let schedule = try #require(job.schedule)
        #expect(schedule.summary == "30 2 * * 1-5 Europe/Paris")
        #expect(schedule.overlap == .queue && schedule.catchUp == .one)
        let every = try decode("name: often\nexecutor: noop\nschedule: {every: 90s, overlap: allow}\n")
        #expect(every.schedule?.trigger == .every(90_000) && every.schedule?.summary == "every 90s")
        #expect(try decode("name: once\nexecutor: noop\n").schedule == nil)
    }

    @Test("isolation decodes to a process per microtask by default, or pooled with its recycle_after")
    func isolation() throws {
        #expect(try decode("name: a\nexecutor: noop\n").stages.first?.isolation == .process)
        #expect(
            try decode("name: a\nexecutor: noop\nisolation: pooled\n").stages.first?.isolation
                == .pooled(recycleAfter: Isolation.defaultRecycleAfter))
        let job = try decode(
            """
            name: a
            stages:
              - {name: one, executor: noop, isolation: {mode: pooled, recycle_after: 50}}
              - {name: two, executor: noop, isolation: process}
            """)
        #expect(job.stages.map(\.isolation) == [.pooled(recycleAfter: 50), .process])
    }

    @Test("the single-stage short form makes a stage named main")
    func shorthand() throws {
        let job = try decode(
            """
            name: thumbnails
            executor: shell
            params:
              command: [convert, "{{item}}", -resize, 64x64, "{{item}}.thumb.png"]
            items: [a.png, b.png]
            limits: {wall: 1m30s}
            """)
        #expect(job.name == "thumbnails")
        #expect(job.description == "")
        #expect(job.concurrency == nil)
        #expect(
            job.stages == [
                StageDefinition(
                    name: "main", executor: "shell",
                    params: [
                        Param(
                            name: "command",
                            value: .list(["convert", "{{item}}", "-resize", "64x64", "{{item}}.thumb.png"]))
                    ],
                    items: .list(["a.png", "b.png"]), limits: Limits(wall: 90_000), mark: Mark(line: 1, column: 1))
            ])
    }

    @Test("declared defaults are added, typed, after the parameters written")
    func defaultsFilledIn() throws {
        let job = try decode(
            """
            name: hello
            executor: echo
            params: {text: hi}
            """)
        #expect(
            job.stages[0].params == [
                Param(name: "text", value: .string("hi")), Param(name: "count", value: .integer(1)),
            ])
        #expect(job.stages[0].items == ItemSource.none)
    }

    @Test("any scalar is text for a string parameter and for items")
    func scalarsAsText() throws {
        let job = try decode(
            """
            name: hello
            executor: echo
            params: {text: 4}
            items: [1, true, 2.5, "quoted", ~x]
            """)
        #expect(job.stages[0].params[0] == Param(name: "text", value: .string("4")))
        #expect(job.stages[0].items == .list(["1", "true", "2.5", "quoted", "~x"]))
    }

    @Test("number and boolean parameters take plain scalars only")
    func numberAndBooleanParameters() throws {
        let catalog = ExecutorCatalog([
            ExecutorSpec(
                name: "resize", plugin: "image", pluginPath: "/p/libimage.so",
                params: [
                    ParamSpec(name: "scale", type: .number, required: true),
                    ParamSpec(name: "sharpen", type: .boolean, defaultValue: "false"),
                ])
        ])
        let job = try decode("name: r\nexecutor: resize\nparams: {scale: 0.5}\n", catalog: catalog)
        #expect(
            job.stages[0].params == [
                Param(name: "scale", value: .number(0.5)), Param(name: "sharpen", value: .boolean(false)),
            ])

        let diagnostics = jobDiagnostics(
            "name: r\nexecutor: resize\nparams: {scale: half, sharpen: yes}\n", catalog: catalog)
        #expect(
            diagnostics == [
                "etc/tessera/jobs.d/hello.yaml:3:17: params.scale: expected a number, found \"half\"",
                "etc/tessera/jobs.d/hello.yaml:3:32: params.sharpen: expected true or false, found \"yes\"",
            ])
    }

    @Test("a plugin's default that does not fit its type is reported at the executor")
    func invalidDeclaredDefault() {
        let catalog = ExecutorCatalog([
            ExecutorSpec(
                name: "sleep", plugin: "sleep", pluginPath: "/p/libsleep.so",
                params: [ParamSpec(name: "seconds", type: .integer, defaultValue: "ten")])
        ])
        #expect(
            jobDiagnostics("name: nap\nexecutor: sleep\n", catalog: catalog) == [
                "etc/tessera/jobs.d/hello.yaml:2:11: executor: executor \"sleep\" of plugin /p/libsleep.so declares the default \"ten\" for parameter \"seconds\", which is not an integer"
            ])
    }

    @Test("with no plugins loaded, the message says so")
    func emptyCatalog() {
        #expect(
            jobDiagnostics("name: hello\nexecutor: shell\n", catalog: ExecutorCatalog([])) == [
                "etc/tessera/jobs.d/hello.yaml:2:11: executor: unknown executor \"shell\" (no executors are loaded)"
            ])
    }

    @Test("after may name a later stage, and a diamond is no cycle")
    func diamond() throws {
        let job = try decode(
            """
            name: diamond
            stages:
              - {name: join, executor: noop, after: [left, right]}
              - {name: left, executor: noop, after: [start]}
              - {name: right, executor: noop, after: [start]}
              - {name: start, executor: noop}
            """)
        #expect(job.stages.map(\.after) == [["left", "right"], ["start"], ["start"], []])
    }

    @Test("a negative range step counts down")
    func countingDown() throws {
        let job = try decode("name: down\nexecutor: noop\nrange: {from: 10, to: 0, step: -3}\n")
        #expect(job.stages[0].items == .range(from: 10, to: 0, step: -3))
    }

    @Test("a matrix keeps its values' types, written as JSON writes them")
    func matrixValues() throws {
        let job = try decode(
            "name: m\nexecutor: noop\nmatrix: {n: [+5, 007, -1, 2.5], b: [true], s: [\"007\", x, ~]}\n")
        #expect(job.stages[0].items.knownCount == 12)
        #expect(job.stages[0].items.item(at: 0) == #"{"n":5,"b":true,"s":"007"}"#)
        #expect(job.stages[0].items.item(at: 5) == #"{"n":7,"b":true,"s":null}"#)
        #expect(job.stages[0].items.item(at: 9) == #"{"n":2.5,"b":true,"s":"007"}"#)
    }

    @Test("every source and key of a stage decodes; relative paths are the job file's")
    func sources() throws {
        let job = try decode(
            """
            name: s
            stages:
              - {name: g, executor: noop, glob: [data/*.txt, /abs/**/x], chunk: 10, max_failures: 5%}
              - {name: l, executor: noop, lines: list.txt, max_failures: 3}
              - {name: p, executor: noop, split: {file: /big, block: 1MiB}, result: stdout}
              - {name: f, executor: noop, from: g}
              - {name: r, executor: noop, reduce: [f, l]}
            """)
        let stages = job.stages
        #expect(stages[0].items == .glob(["etc/tessera/jobs.d/data/*.txt".absoluteFromCwd, "/abs/**/x"]))
        #expect(stages[0].chunk == 10 && stages[0].maxFailures == .percent(5))
        #expect(stages[1].items == .lines("etc/tessera/jobs.d/list.txt".absoluteFromCwd))
        #expect(stages[1].maxFailures == .count(3))
        #expect(stages[2].items == .split(file: "/big", block: 1 << 20) && stages[2].result == .stdout)
        #expect(stages[3].items == .from("g") && stages[3].dependencies == ["g"])
        #expect(stages[4].items == .reduce(["f", "l"]) && stages[4].usesRunDirectory)
        #expect(!stages[3].usesRunDirectory)
    }
}

extension String {
    /// This relative path under the working directory.
    var absoluteFromCwd: String { FileManager.default.currentDirectoryPath + "/" + self }
}
