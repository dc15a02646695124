// YAMLNodeTests.swift
//
// Why this file exists: every position in every diagnostic comes from this
// tree, so it is checked directly: 1-based marks counted in characters, the
// plain/quoted distinction, key order, and the YAML rules Tessera adds.

import TesseraConfig
import Testing

@Suite("The YAML node tree")
struct YAMLNodeTests {
    private func parse(_ text: String) throws -> YAMLNode? {
        try YAMLNode.parse(text, file: "t.yaml").get()
    }

    private func diagnostics(_ text: String) -> [String] {
        if case .failure(let list) = YAMLNode.parse(text, file: "t.yaml") {
            list.diagnostics.map(\.description)
        } else {
            []
        }
    }

    @Test("scalars keep their text, style and 1-based mark; keys keep their order")
    func tree() throws {
        let root = try parse(
            """
            zeta: 123
            alpha: "123"
            list:
              - plain
              - 'single'
              - |
                literal
            tagged: !!str 4
            """)
        let expected = YAMLNode.mapping(
            YAMLMapping(
                entries: [
                    .init(
                        key: YAMLScalar(value: "zeta", style: .plain, mark: Mark(line: 1, column: 1)),
                        value: .scalar(YAMLScalar(value: "123", style: .plain, mark: Mark(line: 1, column: 7)))),
                    .init(
                        key: YAMLScalar(value: "alpha", style: .plain, mark: Mark(line: 2, column: 1)),
                        value: .scalar(YAMLScalar(value: "123", style: .quoted, mark: Mark(line: 2, column: 8)))),
                    .init(
                        key: YAMLScalar(value: "list", style: .plain, mark: Mark(line: 3, column: 1)),
                        value: .sequence(
                            YAMLSequence(
                                items: [
                                    .scalar(YAMLScalar(value: "plain", style: .plain, mark: Mark(line: 4, column: 5))),
                                    .scalar(
                                        YAMLScalar(value: "single", style: .quoted, mark: Mark(line: 5, column: 5))),
                                    .scalar(
                                        YAMLScalar(value: "literal\n", style: .quoted, mark: Mark(line: 6, column: 5))),
                                ], mark: Mark(line: 4, column: 3)))),
                    .init(
                        key: YAMLScalar(value: "tagged", style: .plain, mark: Mark(line: 8, column: 1)),
                        value: .scalar(YAMLScalar(value: "4", style: .quoted, mark: Mark(line: 8, column: 9)))),
                ], mark: Mark(line: 1, column: 1)))
        #expect(root == expected)
    }

    @Test("columns count characters, not bytes")
    func unicodeColumns() {
        #expect(diagnostics("{ärger: ü, ärger: x}") == ["t.yaml:1:12: duplicate key \"ärger\" (first given at 1:2)"])
    }

    @Test("empty input and comments alone hold no document")
    func noDocument() throws {
        #expect(try parse("") == nil)
        #expect(try parse("# just a comment\n\n") == nil)
    }

    @Test("null scalars are recognised")
    func nulls() throws {
        guard case .mapping(let mapping) = try parse("a:\nb: ~\nc: null\nd: 'null'\n") else {
            Issue.record("expected a mapping")
            return
        }
        let values = mapping.entries.map { entry in
            if case .scalar(let scalar) = entry.value { scalar.isNull } else { false }
        }
        #expect(values == [true, true, true, false])
    }

    @Test("control characters are a YAML error at their position")
    func controlCharacter() {
        #expect(diagnostics("a: b\nc: d\u{07}\n") == ["t.yaml:2:5: invalid YAML: control characters are not allowed"])
    }

    @Test("nesting is bounded")
    func deepNesting() {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(diagnostics(deep) == ["t.yaml:1:65: lists and mappings nested deeper than 64 levels are not supported"])
        #expect(diagnostics(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)) == [])
    }

    @Test("keys must be scalars")
    func complexKey() {
        #expect(diagnostics("? [a, b]\n: c\n") == ["t.yaml:1:3: expected a key, found a list"])
    }
}
