// ModelTests.swift
//
// Why this file exists: the small value types the daemon relies on (items,
// limits, run parameters) and the typo suggestions behave as documented.

import Testing

@testable import TesseraConfig

@Suite("Items, limits, run parameters and suggestions")
struct ModelTests {
    @Test(
        "a range counts and yields its items without materialising them",
        arguments: [
            (ItemSource.range(from: 0, to: 1000, step: 1), 1000, ["0", "500", "999"]),
            (ItemSource.range(from: 0, to: 10, step: 3), 4, ["0", "6", "9"]),
            (ItemSource.range(from: 10, to: 0, step: -3), 4, ["10", "4", "1"]),
            (ItemSource.range(from: -5, to: 5, step: 5), 2, ["-5", "0", "0"]),
            (
                ItemSource.range(from: Int64.min, to: Int64.max, step: Int64.max), 3,
                ["-9223372036854775808", "-1", "9223372036854775806"]
            ),
            (ItemSource.range(from: 0, to: 10, step: -1), 0, []),
            (ItemSource.list(["a", "b", "c"]), 3, ["a", "b", "c"]),
            (ItemSource.none, 1, ["", "", ""]),
        ])
    func itemSource(source: ItemSource, count: Int, firstMiddleLast: [String]) {
        #expect(source.knownCount == count)
        if count > 0 {
            #expect([source.item(at: 0), source.item(at: count / 2), source.item(at: count - 1)] == firstMiddleLast)
        }
    }

    @Test("overlaid limits: the set values of the top win, the rest come from the base")
    func overlaidLimits() {
        let defaults = Limits(cpu: 60_000, wall: 300_000, memory: 1 << 30, openFiles: 256)
        let stage = Limits(wall: 30_000, memory: 256 << 20, processes: 16)
        #expect(
            stage.overlaid(on: defaults)
                == Limits(cpu: 60_000, wall: 30_000, memory: 256 << 20, openFiles: 256, processes: 16))
        #expect(Limits().overlaid(on: defaults) == defaults)
        #expect(defaults.overlaid(on: Limits()) == defaults)
    }

    @Test(
        "run parameters convert per type",
        arguments: [
            ("hello, world", ParamType.string, ParamValue.string("hello, world")),
            ("-42", .integer, .integer(-42)),
            ("1.5", .number, .number(1.5)),
            ("1e3", .number, .number(1000)),
            ("true", .boolean, .boolean(true)),
            ("false", .boolean, .boolean(false)),
            ("sh,-c,echo hi", .stringList, .list(["sh", "-c", "echo hi"])),
            ("a,,b", .stringList, .list(["a", "", "b"])),
            ("", .stringList, .list([])),
            (
                "LANG=C,EQ=a=b", .stringMap,
                .map([MapEntry(key: "LANG", value: "C"), MapEntry(key: "EQ", value: "a=b")])
            ),
            ("", .stringMap, .map([])),
        ] as [(String, ParamType, ParamValue)])
    func runParam(text: String, type: ParamType, value: ParamValue) {
        #expect(ConfigLoader.convertRunParam(text, to: type) == value)
    }

    @Test(
        "run parameters that do not fit their type are refused",
        arguments: [
            ("4.5", ParamType.integer), ("99999999999999999999", .integer), ("four", .integer),
            ("nan", .number), ("inf", .number), ("0x10", .number), ("yes", .boolean), ("True", .boolean),
            ("LANG", .stringMap), ("=C", .stringMap), ("A=1,A=2", .stringMap), ("A=1,", .stringMap),
        ])
    func invalidRunParam(text: String, type: ParamType) {
        #expect(ConfigLoader.convertRunParam(text, to: type) == nil)
    }

    @Test("parameter types are named as plugins name them")
    func paramTypeNames() {
        #expect(
            ParamType.allCases.map(\.rawValue) == [
                "string", "integer", "number", "boolean", "string_list", "string_map",
            ])
    }

    @Test(
        "suggestions: edit distance up to 2 or a shared prefix, else none",
        arguments: [
            ("limts", "limits"), ("exector", "executor"), ("concurrent", "concurrency"), ("proc", "processes"),
            ("open_file_limit", "open_files"), ("mem", "memory"), ("colour", nil), ("retries", nil), ("x", nil),
        ] as [(String, String?)])
    func suggestions(word: String, expected: String?) {
        let keys = ["name", "description", "concurrency", "executor", "limits", "memory", "open_files", "processes"]
        #expect(suggestion(for: word, among: keys) == expected)
    }

    @Test("the catalogue finds executors by name and lists them sorted")
    func catalog() {
        #expect(testCatalog.names == ["echo", "noop", "shell"])
        #expect(testCatalog["shell"]?.params.map(\.name) == ["command", "env", "cwd"])
        #expect(testCatalog["shel"] == nil)
    }

    @Test("a diagnostic prints like a compiler's, leaving out what it lacks")
    func diagnosticDescription() {
        let mark = Mark(line: 3, column: 7)
        #expect(
            Diagnostic(file: "a.yaml", position: mark, path: "stages[0].limits.memory", message: "m").description
                == "a.yaml:3:7: stages[0].limits.memory: m")
        #expect(Diagnostic(file: "a.yaml", position: mark, message: "m").description == "a.yaml:3:7: m")
        #expect(Diagnostic(file: "a.yaml", position: nil, message: "m").description == "a.yaml: m")
        let list = DiagnosticList([
            Diagnostic(file: "a.yaml", position: mark, message: "one"),
            Diagnostic(file: "a.yaml", position: nil, message: "two"),
        ])
        #expect(list.description == "a.yaml:3:7: one\na.yaml: two")
    }
}
