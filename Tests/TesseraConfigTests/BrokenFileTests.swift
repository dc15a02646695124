// BrokenFileTests.swift
//
// Why this file exists: the diagnostics are the user interface of the
// configuration layer. Each case is a broken job or server file and the
// exact lines an operator would read, position, key path and wording included.

import TesseraConfig
import Testing

struct BrokenFile: Sendable, CustomTestStringConvertible {
    enum Kind: Sendable {
        case job
        case server
    }

    let name: String
    let kind: Kind
    let text: String
    let expected: [String]

    var testDescription: String { name }

    static func job(_ name: String, _ text: String, _ expected: String...) -> BrokenFile {
        BrokenFile(name: name, kind: .job, text: text, expected: expected)
    }

    static func server(_ name: String, _ text: String, _ expected: String...) -> BrokenFile {
        BrokenFile(name: name, kind: .server, text: text, expected: expected)
    }
}

let brokenFiles: [BrokenFile] = [
    // MARK: YAML itself
    .job(
        "YAML syntax error: unclosed flow list",
        """
        name: hello
        executor: shell
        params: {command: [sh, -c}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:26: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at 3:19)"
    ),
    .job(
        "YAML syntax error: a value after a value",
        """
        name: hello
        executor: shell: x
        """,
        "etc/tessera/jobs.d/hello.yaml:2:16: invalid YAML: mapping values are not allowed in this context"),
    .job(
        "tab indentation",
        "name: hello\nstages:\n\t- name: greet\n",
        "etc/tessera/jobs.d/hello.yaml:3:1: invalid YAML: found character that cannot start any token (while scanning for the next token); indent with spaces, YAML does not allow tabs here"
    ),
    .job(
        "duplicate keys",
        """
        name: hello
        executor: noop
        limits:
          wall: 10s
          wall: 20s
        name: again
        """,
        "etc/tessera/jobs.d/hello.yaml:5:3: limits: duplicate key \"wall\" (first given at 4:3)",
        "etc/tessera/jobs.d/hello.yaml:6:1: duplicate key \"name\" (first given at 1:1)"),
    .job(
        "two documents",
        """
        name: hello
        executor: noop
        ---
        name: other
        """,
        "etc/tessera/jobs.d/hello.yaml:3:1: expected one document in the file, found a second one"),
    .job(
        "anchors and aliases",
        """
        name: hello
        stages:
          - name: a
            executor: noop
            limits: &shared {wall: 10s}
          - name: b
            executor: noop
            limits: *shared
        """,
        "etc/tessera/jobs.d/hello.yaml:5:13: stages[0].limits: anchors and aliases are not supported; write the value out in full",
        "etc/tessera/jobs.d/hello.yaml:8:13: stages[1].limits: anchors and aliases are not supported; write the value out in full"
    ),
    .job(
        "a tag other than !!str",
        """
        name: hello
        concurrency: !!int 4
        executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:2:14: concurrency: unsupported tag \"!!int\"; only \"!!str\" may be written"),
    .job(
        "empty file",
        "# nothing here yet\n",
        "etc/tessera/jobs.d/hello.yaml: expected a job definition, found an empty file"),
    .job(
        "a file that is a list",
        """
        - name: hello
          executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:1:1: expected a mapping, found a list"),

    // MARK: Keys
    .job(
        "unknown key with a suggestion",
        """
        name: hello
        stages:
          - name: greet
            executor: noop
            limts: {wall: 10s}
        """,
        "etc/tessera/jobs.d/hello.yaml:5:5: stages[0]: unknown key \"limts\"; did you mean \"limits\"?"),
    .job(
        "unknown key without a suggestion",
        """
        name: hello
        colour: blue
        executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:2:1: unknown key \"colour\""),
    .job(
        "a misspelt retry",
        """
        name: hello
        stages:
          - name: greet
            executor: noop
            retries: 3
        """,
        "etc/tessera/jobs.d/hello.yaml:5:5: stages[0]: unknown key \"retries\"; did you mean \"retry\"?"),
    .job(
        "missing job name",
        """
        description: no name
        executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:1:1: missing required key \"name\""),
    .job(
        "missing executor in a stage",
        """
        name: hello
        stages:
          - name: greet
            params: {text: hi}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:5: stages[0]: missing required key \"executor\""),
    .job(
        "neither stages nor executor",
        """
        name: hello
        description: does nothing at all
        """,
        "etc/tessera/jobs.d/hello.yaml:1:1: missing required key \"stages\" (or \"executor\" for a single-stage job)"),
    .job(
        "mixing the single-stage form and stages",
        """
        name: hello
        executor: noop
        stages:
          - name: greet
            executor: noop
        limits: {wall: 1s}
        """,
        "etc/tessera/jobs.d/hello.yaml:2:1: \"executor\" cannot be used together with \"stages\"; move it into a stage",
        "etc/tessera/jobs.d/hello.yaml:6:1: \"limits\" cannot be used together with \"stages\"; move it into a stage"),

    // MARK: Values
    .job(
        "invalid job name",
        """
        name: Hello World
        executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:1:7: name: expected a name of lowercase letters, digits, \"_\" and \"-\" that starts with a letter or digit, found \"Hello World\""
    ),
    .job(
        "job name too long",
        """
        name: \(String(repeating: "a", count: 65))
        executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:1:7: name: expected a name of at most 64 characters, found one of 65"),
    .job(
        "concurrency is not a number",
        """
        name: hello
        concurrency: four
        executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:2:14: concurrency: expected a positive integer, found \"four\""),
    .job(
        "concurrency 0",
        """
        name: hello
        concurrency: 0
        executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:2:14: concurrency: expected a positive integer, found \"0\""),
    .job(
        "stages is a mapping",
        """
        name: hello
        stages:
          greet: {executor: noop}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:3: stages: expected a list of stages, found a mapping"),
    .job(
        "bad duration",
        """
        name: hello
        executor: noop
        limits:
          wall: 10 minutes
        """,
        "etc/tessera/jobs.d/hello.yaml:4:9: limits.wall: expected a duration such as 30s or 500ms, found \"10 minutes\""
    ),
    .job(
        "duration units out of order",
        """
        name: hello
        executor: noop
        limits: {cpu: 1m1h}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:15: limits.cpu: expected a duration such as 30s or 500ms, found \"1m1h\"; write the units from largest to smallest, each once"
    ),
    .job(
        "zero duration",
        """
        name: hello
        executor: noop
        limits: {cpu: 0s}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:15: limits.cpu: expected a duration greater than zero, found \"0s\""),
    .job(
        "cpu quota without a percent sign",
        """
        name: hello
        executor: noop
        limits: {cpu_quota: 50}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:21: limits.cpu_quota: expected a percentage such as 50%, found \"50\""),
    .job(
        "bad size",
        """
        name: hello
        stages:
          - name: greet
            executor: noop
            limits: {memory: lots}
        """,
        "etc/tessera/jobs.d/hello.yaml:5:22: stages[0].limits.memory: expected a size such as 256MiB, found \"lots\""),
    .job(
        "size without a unit",
        """
        name: hello
        executor: noop
        limits: {file_size: 4096}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:21: limits.file_size: expected a size such as 256MiB, found \"4096\"; add a unit: B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
    ),
    .job(
        "size overflow",
        """
        name: hello
        executor: noop
        limits: {memory: 16777216TiB}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:18: limits.memory: expected a size such as 256MiB, found \"16777216TiB\", which is too large"
    ),
    .job(
        "open_files negative",
        """
        name: hello
        executor: noop
        limits: {open_files: -1}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:22: limits.open_files: expected a positive integer, found \"-1\""),
    .job(
        "limits is not a mapping",
        """
        name: hello
        executor: noop
        limits: 10s
        """,
        "etc/tessera/jobs.d/hello.yaml:3:9: limits: expected a mapping, found \"10s\""),

    // MARK: Items
    .job(
        "items and range both",
        """
        name: hello
        executor: noop
        items: [a, b]
        range: {from: 0, to: 10}
        """,
        "etc/tessera/jobs.d/hello.yaml:4:1: a stage has exactly one source of items; \"items\" and \"range\" cannot both be given"
    ),
    .job(
        "glob and lines both",
        """
        name: hello
        executor: noop
        glob: /data/*.txt
        lines: /data/list
        """,
        "etc/tessera/jobs.d/hello.yaml:4:1: a stage has exactly one source of items; \"glob\" and \"lines\" cannot both be given"
    ),
    .job(
        "from a stage that does not exist",
        """
        name: hello
        stages:
          - {name: list, executor: noop}
          - {name: each, executor: noop, from: lsit}
        """,
        "etc/tessera/jobs.d/hello.yaml:4:40: stages[1].from: unknown stage \"lsit\"; did you mean \"list\"?"),
    .job(
        "reduce of a stage that does not exist, written as one name",
        """
        name: hello
        stages:
          - {name: map, executor: noop}
          - {name: sum, executor: noop, reduce: mpa}
        """,
        "etc/tessera/jobs.d/hello.yaml:4:41: stages[1].reduce: unknown stage \"mpa\"; did you mean \"map\"?"),
    .job(
        "reduce naming a stage twice",
        """
        name: hello
        stages:
          - {name: map, executor: noop}
          - {name: sum, executor: noop, reduce: [map, map]}
        """,
        "etc/tessera/jobs.d/hello.yaml:4:47: stages[1].reduce[1]: stage \"map\" is already listed (at 4:42)"),
    .job(
        "from and reduce forming a cycle",
        """
        name: hello
        stages:
          - {name: a, executor: noop, from: b}
          - {name: b, executor: noop, reduce: [a]}
        """,
        "etc/tessera/jobs.d/hello.yaml:4:40: stages[1].reduce[0]: \"reduce\" forms a cycle: a after b after a"),
    .job(
        "priority over 100",
        """
        name: hello
        priority: 101
        executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:2:11: priority: expected a priority from 0 to 100, found \"101\""),
    .job(
        "a request of no CPUs",
        """
        name: hello
        executor: noop
        requests: {cpu: 0, memory: lots}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:17: requests.cpu: expected a number of CPUs greater than 0, such as 2 or 0.5, "
            + "found \"0\"",
        "etc/tessera/jobs.d/hello.yaml:3:28: requests.memory: expected a size such as 256MiB, found \"lots\""),
    .job(
        "a cron field out of range",
        """
        name: hello
        executor: noop
        schedule: "0 25 * * *"
        """,
        "etc/tessera/jobs.d/hello.yaml:3:14: schedule: hour \"25\": 25 is out of range (0-23)"),
    .job(
        "an unknown time zone, overlap and catch-up",
        """
        name: hello
        executor: noop
        schedule: 0 3 * * *
        timezone: Europe/Pariss
        overlap: wait
        catch_up: some
        """,
        "etc/tessera/jobs.d/hello.yaml:4:11: timezone: unknown time zone \"Europe/Pariss\" (no such zone in "
            + "/usr/share/zoneinfo)",
        "etc/tessera/jobs.d/hello.yaml:5:10: overlap: expected skip, queue, allow or replace, found \"wait\"",
        "etc/tessera/jobs.d/hello.yaml:6:11: catch_up: expected none, one or all, found \"some\""),
    .job(
        "a schedule mapping with both triggers",
        """
        name: hello
        executor: noop
        schedule: {cron: "@daily", every: 1h}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:35: schedule.every: a schedule has \"cron\" or \"every\", not both"),
    .job(
        "schedule keys without a schedule",
        """
        name: hello
        overlap: skip
        stages:
          - name: a
            executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:2:1: overlap: \"overlap\" only means something with \"schedule\""),
    .job(
        "every with a time zone",
        """
        name: hello
        executor: noop
        schedule: {every: 10m, timezone: Europe/Paris}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:34: schedule.timezone: \"timezone\" has no meaning for \"every\", which "
            + "counts time, not the clock"),
    .job(
        "no attempts at all",
        """
        name: hello
        executor: noop
        retry: {attempts: 0, backoff: soon}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:19: retry.attempts: expected a number of attempts from 1 to 100 (the first "
            + "included), found \"0\"",
        "etc/tessera/jobs.d/hello.yaml:3:31: retry.backoff: expected a duration such as 30s or 500ms, found \"soon\""),
    .job(
        "a retry policy with an unknown failure kind, a bad exit code and a short max_backoff",
        """
        name: hello
        executor: noop
        retry:
          attempts: 3
          backoff: 10s
          max_backoff: 1s
          on: [failed, timout]
          permanent_exit_codes: [2, 256]
        """,
        "etc/tessera/jobs.d/hello.yaml:7:16: retry.on[1]: unknown failure kind \"timout\"; did you mean "
            + "\"timeout\"? (the kinds: failed, timeout, signal, memory, lost)",
        "etc/tessera/jobs.d/hello.yaml:8:29: retry.permanent_exit_codes[1]: expected an exit code from 1 to 255, "
            + "found \"256\""),
    .job(
        "a max_backoff shorter than the backoff",
        """
        name: hello
        executor: noop
        retry: {attempts: 2, backoff: 10s, max_backoff: 1s}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:49: retry.max_backoff: max_backoff (1s) is shorter than backoff (10s)"),
    .job(
        "an isolation mode that does not exist",
        """
        name: hello
        executor: noop
        isolation: pool
        """,
        "etc/tessera/jobs.d/hello.yaml:3:12: isolation: expected process (a process per microtask) or pooled (a "
            + "process per slot, reused), found \"pool\""),
    .job(
        "recycle_after out of range, and for a process per microtask",
        """
        name: hello
        stages:
          - {name: a, executor: noop, isolation: {mode: pooled, recycle_after: 0}}
          - {name: b, executor: noop, isolation: {mode: process, recycle_after: 5}}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:72: stages[0].isolation.recycle_after: expected a number of microtasks from 1 to "
            + "1000000, found \"0\"",
        "etc/tessera/jobs.d/hello.yaml:4:73: stages[1].isolation.recycle_after: recycle_after is for isolation "
            + "mode pooled"),
    .job(
        "isolation: pooled without the sandbox",
        """
        name: hello
        executor: noop
        sandbox: none
        isolation: pooled
        """,
        "etc/tessera/jobs.d/hello.yaml:4:12: isolation: isolation: pooled needs the sandbox (its pid namespace ends "
            + "what a microtask leaves running); this stage has sandbox: none"),
    .job(
        "a retry policy without attempts",
        """
        name: hello
        executor: noop
        retry: {backoff: 1s, max_backoff: 500ms}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:8: retry: missing required key \"attempts\""),
    .job(
        "chunk 0",
        """
        name: hello
        executor: noop
        range: {from: 0, to: 10}
        chunk: 0
        """,
        "etc/tessera/jobs.d/hello.yaml:4:8: chunk: expected a positive integer, found \"0\""),
    .job(
        "an unknown template, at its column",
        """
        name: hello
        executor: shell
        params:
          command: [echo, "{{item}} {{colour}}"]
        items: [a]
        """,
        "etc/tessera/jobs.d/hello.yaml:4:29: params.command[1]: unknown template {{colour}} (templates: item, "
            + "items, index, run, job, stage, attempt, run_dir)"),
    .job(
        "a matrix key misspelt",
        """
        name: hello
        executor: echo
        params: {text: "{{colr}}"}
        matrix: {color: [red, blue], size: [1, 2]}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:17: params.text: unknown template {{colr}}; did you mean \"color\"? "
            + "(templates: item, items, index, run, job, stage, attempt, run_dir; the items have the keys color, size)"),
    .job(
        "input outside a reduce stage",
        """
        name: hello
        executor: echo
        params: {text: "{{ input }}"}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:17: params.text: {{input}} is the input file of a reduce stage; this stage "
            + "has no \"reduce:\""),
    .job(
        "braces that are not a template",
        """
        name: hello
        executor: echo
        params: {text: "awk {{print}} {{ }}"}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:21: params.text: unknown template {{print}} (templates: item, items, "
            + "index, run, job, stage, attempt, run_dir)",
        "etc/tessera/jobs.d/hello.yaml:3:31: params.text: \"{{ }}\" does not start a template: write {{name}} "
            + "with a name such as item or index"),
    .job(
        "max_failures over 100%",
        """
        name: hello
        executor: noop
        max_failures: 120%
        """,
        "etc/tessera/jobs.d/hello.yaml:3:15: max_failures: expected a number of microtasks (0 or more) or a "
            + "percentage from 0% to 100%, such as 3 or 5%, found \"120%\""),
    .job(
        "range step 0",
        """
        name: hello
        executor: noop
        range: {from: 0, to: 10, step: 0}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:32: range.step: expected a step other than 0, found \"0\""),
    .job(
        "range step away from to",
        """
        name: hello
        executor: noop
        range: {from: 10, to: 0}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:8: range: range from 10 to 0 is empty with step 1; use a negative step to count down"
    ),
    .job(
        "range too large for one stage",
        """
        name: hello
        executor: noop
        range: {from: 0, to: 5000000000}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:8: range: range from 0 to 5000000000 with step 1 has 5000000000 items; "
            + "a stage may have at most 1000000"),
    .job(
        "range without to",
        """
        name: hello
        executor: noop
        range: {from: 0}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:8: range: missing required key \"to\""),
    .job(
        "empty items",
        """
        name: hello
        executor: noop
        items: []
        """,
        "etc/tessera/jobs.d/hello.yaml:3:8: items: expected at least one item, found an empty list"),

    // MARK: Executors and parameters
    .job(
        "unknown executor",
        """
        name: hello
        executor: shel
        """,
        "etc/tessera/jobs.d/hello.yaml:2:11: executor: unknown executor \"shel\"; did you mean \"shell\"? (loaded: echo, noop, shell)"
    ),
    .job(
        "undeclared parameter, so the required one is missing",
        """
        name: hello
        executor: shell
        params: {comand: [sh, -c, "echo hi"]}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:1: params: missing required parameter \"command\" for executor \"shell\"",
        "etc/tessera/jobs.d/hello.yaml:3:10: params: unknown parameter \"comand\" for executor \"shell\"; did you mean \"command\"?"
    ),
    .job(
        "missing required parameter without params",
        """
        name: hello
        stages:
          - name: greet
            executor: echo
        """,
        "etc/tessera/jobs.d/hello.yaml:3:5: stages[0]: missing required parameter \"text\" for executor \"echo\""),
    .job(
        "parameter for an executor that takes none",
        """
        name: hello
        executor: noop
        params:
          verbose: true
        """,
        "etc/tessera/jobs.d/hello.yaml:4:3: params: unknown parameter \"verbose\"; executor \"noop\" takes no parameters"
    ),
    .job(
        "string given to a string_list parameter",
        """
        name: hello
        executor: shell
        params:
          command: echo hello
        """,
        "etc/tessera/jobs.d/hello.yaml:4:12: params.command: expected a list of strings, found \"echo hello\""),
    .job(
        "list item of a string_list parameter is a list",
        """
        name: hello
        executor: shell
        params:
          command: [sh, -c, [echo, hi]]
        """,
        "etc/tessera/jobs.d/hello.yaml:4:21: params.command[2]: expected a string, found a list"),
    .job(
        "integer parameters need a plain integer",
        """
        name: hello
        stages:
          - name: one
            executor: echo
            params: {text: hi, count: "3"}
          - name: two
            executor: echo
            params: {text: hi, count: three}
        """,
        "etc/tessera/jobs.d/hello.yaml:5:31: stages[0].params.count: expected an integer, found the string \"3\"",
        "etc/tessera/jobs.d/hello.yaml:8:31: stages[1].params.count: expected an integer, found \"three\""),
    .job(
        "list given to a string parameter",
        """
        name: hello
        executor: echo
        params: {text: [a, b]}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:16: params.text: expected a string, found a list"),
    .job(
        "list given to a string_map parameter",
        """
        name: hello
        executor: shell
        params:
          command: [env]
          env: [LANG=C]
        """,
        "etc/tessera/jobs.d/hello.yaml:5:8: params.env: expected a mapping of strings, found a list"),

    // MARK: Stages together
    .job(
        "duplicate stage names",
        """
        name: hello
        stages:
          - name: greet
            executor: noop
          - name: greet
            executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:5:11: stages[1].name: duplicate stage name \"greet\" (first given at 3:11)"),
    .job(
        "after names a missing stage",
        """
        name: hello
        stages:
          - name: build
            executor: noop
          - name: test
            executor: noop
            after: [bulid]
        """,
        "etc/tessera/jobs.d/hello.yaml:7:13: stages[1].after[0]: unknown stage \"bulid\"; did you mean \"build\"?"),
    .job(
        "after names its own stage",
        """
        name: hello
        stages:
          - name: build
            executor: noop
            after: [build]
        """,
        "etc/tessera/jobs.d/hello.yaml:5:13: stages[0].after[0]: a stage cannot run after itself"),
    .job(
        "after lists a stage twice",
        """
        name: hello
        stages:
          - {name: build, executor: noop}
          - {name: test, executor: noop, after: [build, build]}
        """,
        "etc/tessera/jobs.d/hello.yaml:4:49: stages[1].after[1]: stage \"build\" is already listed (at 4:42)"),
    .job(
        "no stages at all",
        """
        name: hello
        stages: []
        """,
        "etc/tessera/jobs.d/hello.yaml:2:9: stages: expected at least one stage, found an empty list"),
    .job(
        "a quoted number for concurrency",
        """
        name: hello
        concurrency: "4"
        executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:2:14: concurrency: expected a positive integer, found the string \"4\""),
    .job(
        "unknown key in a range",
        """
        name: hello
        executor: noop
        range: {from: 0, to: 10, stp: 2}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:26: range: unknown key \"stp\"; did you mean \"step\"?"),
    .job(
        "a cycle",
        """
        name: hello
        stages:
          - name: build
            executor: noop
            after: [deploy]
          - name: test
            executor: noop
            after: [build]
          - name: deploy
            executor: noop
            after: [test]
        """,
        "etc/tessera/jobs.d/hello.yaml:8:13: stages[1].after[0]: \"after\" forms a cycle: build after deploy after test after build"
    ),
    .job(
        "after is not a list",
        """
        name: hello
        stages:
          - name: build
            executor: noop
          - name: test
            executor: noop
            after: build
        """,
        "etc/tessera/jobs.d/hello.yaml:7:12: stages[1].after: expected a list of stage names, found \"build\""),
    .job(
        "every problem of a file, in file order",
        """
        name: hello
        concurrency: -2
        stages:
          - name: greet
            executor: echo
            params: {text: hi, count: many}
            limits: {wall: soon, memory: 1GB}
          - executor: nope
        """,
        "etc/tessera/jobs.d/hello.yaml:2:14: concurrency: expected a positive integer, found \"-2\"",
        "etc/tessera/jobs.d/hello.yaml:6:31: stages[0].params.count: expected an integer, found \"many\"",
        "etc/tessera/jobs.d/hello.yaml:7:20: stages[0].limits.wall: expected a duration such as 30s or 500ms, found \"soon\"",
        "etc/tessera/jobs.d/hello.yaml:8:5: stages[1]: missing required key \"name\"",
        "etc/tessera/jobs.d/hello.yaml:8:15: stages[1].executor: unknown executor \"nope\"; did you mean \"noop\"? (loaded: echo, noop, shell)"
    ),

    // MARK: Sandbox
    .job(
        "unknown sandbox key with a suggestion",
        """
        name: hello
        executor: noop
        sandbox:
          netwrok: none
        """,
        "etc/tessera/jobs.d/hello.yaml:4:3: sandbox: unknown key \"netwrok\"; did you mean \"network\"?"),
    .job(
        "unknown filesystem key with a suggestion",
        """
        name: hello
        executor: noop
        sandbox:
          filesystem: {read_olny: [/]}
        """,
        "etc/tessera/jobs.d/hello.yaml:4:16: sandbox.filesystem: unknown key \"read_olny\"; did you mean \"read_only\"?"
    ),
    .job(
        "sandbox network off",
        """
        name: hello
        stages:
          - name: greet
            executor: noop
            sandbox: {network: off}
        """,
        "etc/tessera/jobs.d/hello.yaml:5:24: stages[0].sandbox.network: expected none or host, found \"off\""),
    .job(
        "sandbox tmp yes",
        """
        name: hello
        executor: noop
        sandbox:
          filesystem: {tmp: yes}
        """,
        "etc/tessera/jobs.d/hello.yaml:4:21: sandbox.filesystem.tmp: expected private or shared, found \"yes\""),
    .job(
        "sandbox tmp_size zero",
        """
        name: hello
        executor: noop
        sandbox:
          filesystem: {tmp_size: 0B}
        """,
        "etc/tessera/jobs.d/hello.yaml:4:26: sandbox.filesystem.tmp_size: expected a size greater than zero, found \"0B\""
    ),
    .job(
        "sandbox tmp_size without a unit",
        """
        name: hello
        executor: noop
        sandbox:
          filesystem: {tmp_size: lots}
        """,
        "etc/tessera/jobs.d/hello.yaml:4:26: sandbox.filesystem.tmp_size: expected a size such as 256MiB, found \"lots\""
    ),
    .job(
        "sandbox relative writable path",
        """
        name: hello
        executor: noop
        sandbox:
          filesystem:
            writable: [srv/out]
        """,
        "etc/tessera/jobs.d/hello.yaml:5:16: sandbox.filesystem.writable[0]: expected an absolute path, found \"srv/out\""
    ),
    .job(
        "sandbox writable path that does not exist",
        """
        name: hello
        executor: noop
        sandbox:
          filesystem:
            writable: [/tmp, /nonexistent/tessera-out]
        """,
        "etc/tessera/jobs.d/hello.yaml:5:22: sandbox.filesystem.writable[1]: \"/nonexistent/tessera-out\" does not exist"
    ),
    .job(
        "sandbox hidden is a path, not a list",
        """
        name: hello
        executor: noop
        sandbox:
          filesystem: {hidden: /home}
        """,
        "etc/tessera/jobs.d/hello.yaml:4:24: sandbox.filesystem.hidden: expected a list of absolute paths, found \"/home\""
    ),
    .job(
        "sandbox unknown user name",
        """
        name: hello
        executor: noop
        sandbox: {user: nobdy}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:17: sandbox.user: unknown user \"nobdy\""),
    .job(
        "sandbox uid -1",
        """
        name: hello
        executor: noop
        sandbox: {user: 4294967295}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:17: sandbox.user: expected a uid below 4294967295, found \"4294967295\""),
    .job(
        "sandbox unknown group name",
        """
        name: hello
        executor: noop
        sandbox: {user: 1000, group: nogrp}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:30: sandbox.group: unknown group \"nogrp\""),
    .job(
        "sandbox group without user",
        """
        name: hello
        executor: noop
        sandbox: {group: nogroup}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:11: sandbox: \"group\" cannot be given without \"user\""),
    .job(
        "sandbox group with the dynamic user",
        """
        name: hello
        executor: noop
        sandbox: {user: dynamic, group: 100}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:26: sandbox: \"group\" cannot be given with user \"dynamic\""),
    .job(
        "sandbox syscalls strict",
        """
        name: hello
        executor: noop
        sandbox: {syscalls: strict}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:21: sandbox.syscalls: expected default, compute or none, found \"strict\""),
    .job(
        "sandbox namespace cgroup",
        """
        name: hello
        executor: noop
        sandbox: {namespaces: [pid, cgroup]}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:29: sandbox.namespaces[1]: expected pid, ipc, uts, mount, user or net, found \"cgroup\""
    ),
    .job(
        "sandbox syscall names with a capital and a dash",
        """
        name: hello
        executor: noop
        sandbox:
          allow_syscalls: [Read]
          deny_syscalls: [ptrace, kexec-load]
        """,
        "etc/tessera/jobs.d/hello.yaml:4:20: sandbox.allow_syscalls[0]: expected a syscall name of lowercase letters, digits and \"_\", found \"Read\"",
        "etc/tessera/jobs.d/hello.yaml:5:27: sandbox.deny_syscalls[1]: expected a syscall name of lowercase letters, digits and \"_\", found \"kexec-load\""
    ),
    .job(
        "sandbox 5",
        """
        name: hello
        executor: noop
        sandbox: 5
        """,
        "etc/tessera/jobs.d/hello.yaml:3:10: sandbox: expected none or a mapping of sandbox settings, found \"5\""),
    .job(
        "sandbox off: only none is a scalar",
        """
        name: hello
        stages:
          - name: greet
            executor: noop
            sandbox: off
        """,
        "etc/tessera/jobs.d/hello.yaml:5:14: stages[0].sandbox: expected none or a mapping of sandbox settings, found \"off\""
    ),
    .job(
        "sandbox with nothing",
        """
        name: hello
        executor: noop
        sandbox:
        """,
        "etc/tessera/jobs.d/hello.yaml:3:9: sandbox: expected none or a mapping of sandbox settings, found nothing"),
    .job(
        "sandbox landlock maybe",
        """
        name: hello
        executor: noop
        sandbox: {landlock: maybe}
        """,
        "etc/tessera/jobs.d/hello.yaml:3:21: sandbox.landlock: expected true or false, found \"maybe\""),
    .job(
        "sandbox environment as a list",
        """
        name: hello
        executor: noop
        sandbox:
          environment: [LANG=C.UTF-8]
        """,
        "etc/tessera/jobs.d/hello.yaml:4:16: sandbox.environment: expected a mapping of strings, found a list"),
    .job(
        "sandbox at the top level together with stages",
        """
        name: hello
        sandbox: none
        stages:
          - name: greet
            executor: noop
        """,
        "etc/tessera/jobs.d/hello.yaml:2:1: \"sandbox\" cannot be used together with \"stages\"; move it into a stage"),

    // MARK: Server configuration
    .server(
        "server: unknown key with a suggestion",
        """
        socket: /run/tessera.sock
        slot: 4
        """,
        "etc/tessera/tessera.yaml:2:1: unknown key \"slot\"; did you mean \"slots\"?"),
    .server(
        "server: access entry with an unknown key",
        "access: {admin: [role: root]}\n",
        "etc/tessera/tessera.yaml:1:18: access.admin[0]: unknown key \"role\""),
    .server(
        "server: access entry with two keys",
        "access: {read: [{user: root, group: root}]}\n",
        "etc/tessera/tessera.yaml:1:17: access.read[0]: expected one of user: NAME or group: NAME, found a mapping"),
    .server(
        "server: access names an unknown group",
        "access: {read: [group: no-such-group-here]}\n",
        "etc/tessera/tessera.yaml:1:24: access.read[0].group: unknown group \"no-such-group-here\""),
    .server(
        "server: a log level that does not exist",
        "log_level: loud\n",
        "etc/tessera/tessera.yaml:1:12: log_level: expected error, warning, notice, info, debug, found \"loud\""),
    .server(
        "server: slots -1",
        "slots: -1\n",
        "etc/tessera/tessera.yaml:1:8: slots: expected a positive integer, found \"-1\""),
    .server(
        "server: defaults.memory lots",
        """
        defaults:
          memory: lots
          wal: 30s
        """,
        "etc/tessera/tessera.yaml:2:11: defaults.memory: expected a size such as 256MiB, found \"lots\"",
        "etc/tessera/tessera.yaml:3:3: defaults: unknown key \"wal\"; did you mean \"wall\"?"),
    .server(
        "server: defaults.sandbox with an unknown key",
        """
        defaults:
          cpu: 10s
          sandbox:
            network: none
            landlok: true
        """,
        "etc/tessera/tessera.yaml:5:5: defaults.sandbox: unknown key \"landlok\"; did you mean \"landlock\"?"),
    .server(
        "server: defaults with a misspelt sandbox",
        """
        defaults:
          wall: 30s
          sandbx: none
        """,
        "etc/tessera/tessera.yaml:3:3: defaults: unknown key \"sandbx\"; did you mean \"sandbox\"?"),
    .server(
        "server: defaults.sandbox and a limit both wrong",
        "defaults: {cpu: soon, sandbox: {filesystem: {tmp: public}}}\n",
        "etc/tessera/tessera.yaml:1:17: defaults.cpu: expected a duration such as 30s or 500ms, found \"soon\"",
        "etc/tessera/tessera.yaml:1:51: defaults.sandbox.filesystem.tmp: expected private or shared, found \"public\""),
    .server(
        "server: capacity with an unknown key and a bad size",
        "capacity: {cpus: 2, memory: much}\n",
        "etc/tessera/tessera.yaml:1:12: capacity: unknown key \"cpus\"; did you mean \"cpu\"?",
        "etc/tessera/tessera.yaml:1:29: capacity.memory: expected a size such as 256MiB, found \"much\""),
    .server(
        "server: a pressure threshold over 100%",
        "pressure: {memory: 120%, sources: /tmp}\n",
        "etc/tessera/tessera.yaml:1:20: pressure.memory: expected a percentage from 1% to 100%, found \"120%\"",
        "etc/tessera/tessera.yaml:1:26: pressure: unknown key \"sources\"; did you mean \"source\"?"),
    .server(
        "server: plugin_dirs is a string",
        "plugin_dirs: /opt/plugins\n",
        "etc/tessera/tessera.yaml:1:14: plugin_dirs: expected a list of paths, found \"/opt/plugins\""),
    .server(
        "server: empty socket path",
        "socket: \"\"\n",
        "etc/tessera/tessera.yaml:1:9: socket: expected a path, found \"\""),
    .server(
        "server: a list",
        "- slots: 4\n",
        "etc/tessera/tessera.yaml:1:1: expected a mapping, found a list"),
    .server(
        "server: YAML syntax error",
        "socket: \"/run/tessera.sock\nslots: 4\n",
        "etc/tessera/tessera.yaml:3:1: invalid YAML: found unexpected end of stream (while scanning a quoted scalar at 1:9)"
    ),
]

@Test(arguments: brokenFiles)
func brokenFileDiagnostics(_ file: BrokenFile) {
    let diagnostics =
        switch file.kind {
        case .job: jobDiagnostics(file.text)
        case .server: serverDiagnostics(file.text)
        }
    #expect(diagnostics == file.expected)
}
