// Diagnostic.swift
//
// Why this file exists: every error the configuration layer finds is a
// `Diagnostic` that prints like a compiler's (`file:line:column: path: message`),
// so an operator can jump to the spot and read what was expected and found.
// `DiagnosticList` carries all of one load's diagnostics as a single error.

/// One problem found in a configuration or job file.
public struct Diagnostic: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file as the caller named it, e.g. `etc/tessera/jobs.d/hello.yaml`.
    public var file: String
    /// Where in the file, or nil when the problem concerns the whole file
    /// (it cannot be read, it is empty, …).
    public var position: Mark?
    /// The key path of the offending value, e.g. `stages[0].limits.memory`;
    /// empty at the top level of the file.
    public var path: String
    /// What was expected and what was found.
    public var message: String

    public init(file: String, position: Mark?, path: String = "", message: String) {
        self.file = file
        self.position = position
        self.path = path
        self.message = message
    }

    /// The 1-based line, if the diagnostic has a position.
    public var line: Int? { position?.line }
    /// The 1-based column, if the diagnostic has a position.
    public var column: Int? { position?.column }

    /// `file:line:column: path: message`; the position and the path are left
    /// out when absent, e.g. `file: message`.
    public var description: String {
        var text = file
        if let position {
            text += ":\(position.line):\(position.column)"
        }
        if !path.isEmpty {
            text += ": \(path)"
        }
        return text + ": \(message)"
    }
}

/// All the diagnostics of one load, in file order; one per line when printed.
public struct DiagnosticList: Error, Sendable, Equatable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics
    }

    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}

extension [Diagnostic] {
    /// The diagnostics in file order: those without a position first, then by
    /// line and column; diagnostics at the same spot keep the order found.
    func inFileOrder() -> [Diagnostic] {
        enumerated().sorted { left, right in
            let leftKey = (left.element.line ?? 0, left.element.column ?? 0, left.offset)
            let rightKey = (right.element.line ?? 0, right.element.column ?? 0, right.offset)
            return leftKey < rightKey
        }.map(\.element)
    }
}
