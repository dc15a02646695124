// ConfigNode.swift
//
// Why this file exists: it is the toolkit every decoder (server config, job,
// limits, parameters) is written with. A `ConfigNode` is a YAML node together
// with its key path and the file's diagnostics; its accessors return a typed
// value or report `expected …, found …` at the node and return nil, so a
// decoder goes on and collects every problem of the file. A `KnownKey` table
// lists the keys a mapping accepts, so adding a key is one line.

#if canImport(Glibc)
    internal import Glibc
#endif

/// The diagnostics of one file, in the order they were found.
final class DiagnosticCollector {
    let file: String
    private(set) var diagnostics: [Diagnostic] = []

    init(file: String) {
        self.file = file
    }

    func report(_ message: String, at position: Mark?, path: ConfigPath) {
        diagnostics.append(Diagnostic(file: file, position: position, path: path.description, message: message))
    }
}

/// A YAML node at its path in the file being decoded.
struct ConfigNode {
    let node: YAMLNode
    let path: ConfigPath
    /// Where the key of this value is written, when it is a mapping's value.
    let keyMark: Mark?
    let diagnostics: DiagnosticCollector

    init(_ node: YAMLNode, path: ConfigPath, keyMark: Mark? = nil, diagnostics: DiagnosticCollector) {
        self.node = node
        self.path = path
        self.keyMark = keyMark
        self.diagnostics = diagnostics
    }

    var mark: Mark { node.mark }

    /// The absolute directory of the file being decoded: relative paths in
    /// a job file are relative to it.
    var jobDirectory: String {
        var directory = diagnostics.file
        if let slash = directory.lastIndex(of: "/") {
            directory = String(directory[..<slash])
            if directory.isEmpty { directory = "/" }
        } else {
            directory = "."
        }
        if directory.hasPrefix("/") { return directory }
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return directory }
        let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if directory == "." { return cwd }
        return cwd + "/" + (directory.hasPrefix("./") ? String(directory.dropFirst(2)) : directory)
    }

    /// Reports `message` at this node.
    func report(_ message: String) {
        diagnostics.report(message, at: mark, path: path)
    }

    /// Reports `expected <what>, found <this node>`.
    func reportExpected(_ what: String) {
        report("expected \(what), found \(node.foundDescription)")
    }

    // MARK: Scalars

    /// The text of any scalar but null: `4` and `true` are text too.
    func string(expected: String = "a string") -> String? {
        guard case .scalar(let scalar) = node, !scalar.isNull else {
            reportExpected(expected)
            return nil
        }
        return scalar.value
    }

    /// A plain decimal integer such as `42` or `-7`.
    func integer(expected: String = "an integer") -> Int64? {
        guard let text = plainScalarText(expected: expected) else { return nil }
        let digits = text.first == "-" || text.first == "+" ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            reportExpected(expected)
            return nil
        }
        guard let value = Int64(text) else {
            report("expected \(expected), found \(node.foundDescription), which is out of range")
            return nil
        }
        return value
    }

    /// A plain integer greater than zero that fits an `Int`.
    func positiveInteger() -> Int? {
        guard let value = integer(expected: "a positive integer") else { return nil }
        guard value > 0 else {
            reportExpected("a positive integer")
            return nil
        }
        return Int(value)
    }

    /// A plain decimal number such as `1.5`, `-2` or `1e3`.
    func number() -> Double? {
        guard let text = plainScalarText(expected: "a number") else { return nil }
        guard let value = parseNumber(text) else {
            reportExpected("a number")
            return nil
        }
        return value
    }

    /// A plain `true` or `false`. YAML 1.1's `yes`, `on` and friends are refused.
    func boolean() -> Bool? {
        guard let text = plainScalarText(expected: "true or false") else { return nil }
        switch text {
        case "true": return true
        case "false": return false
        default:
            reportExpected("true or false")
            return nil
        }
    }

    /// A duration such as `30s`, in milliseconds, greater than zero.
    func duration() -> UInt64? {
        quantity(QuantityParser.parseDuration, expected: QuantityParser.durationExample, noun: "a duration")
    }

    /// A size such as `256MiB`, in bytes, greater than zero.
    func size() -> UInt64? {
        quantity(QuantityParser.parseSize, expected: QuantityParser.sizeExample, noun: "a size")
    }

    /// A percentage such as `50%`, greater than zero.
    func percentage() -> UInt64? {
        quantity(QuantityParser.parsePercentage, expected: QuantityParser.percentageExample, noun: "a percentage")
    }

    private func quantity(
        _ parse: (String) throws(QuantityError) -> UInt64, expected: String, noun: String
    ) -> UInt64? {
        guard case .scalar(let scalar) = node, !scalar.isNull else {
            reportExpected(expected)
            return nil
        }
        do {
            let value = try parse(scalar.value)
            guard value > 0 else {
                reportExpected("\(noun) greater than zero")
                return nil
            }
            return value
        } catch {
            report(error.message)
            return nil
        }
    }

    /// The text of a plain scalar; a quoted one is reported as
    /// `expected an integer, found the string "4"`.
    private func plainScalarText(expected: String) -> String? {
        guard case .scalar(let scalar) = node, !scalar.isNull else {
            reportExpected(expected)
            return nil
        }
        guard scalar.style == .plain else {
            report("expected \(expected), found the string \(quoted(scalar.value))")
            return nil
        }
        return scalar.value
    }

    // MARK: Collections

    /// The items of a list, each at its own path.
    func list(expected: String = "a list") -> [ConfigNode]? {
        guard case .sequence(let sequence) = node else {
            reportExpected(expected)
            return nil
        }
        return sequence.items.enumerated().map { index, item in
            ConfigNode(item, path: path.index(index), diagnostics: diagnostics)
        }
    }

    /// A list whose items `decode` takes each; nil when it refuses one
    /// (after reporting every item it refuses).
    func list<Item>(expected: String, _ decode: (ConfigNode) -> Item?) -> [Item]? {
        guard let items = list(expected: expected) else { return nil }
        let values = items.compactMap(decode)
        return values.count == items.count ? values : nil
    }

    /// A list of scalars, each kept as its text.
    func stringList() -> [String]? {
        list(expected: "a list of strings") { $0.string() }
    }

    /// A mapping of scalars, each value kept as its text, in the order written.
    func stringMap() -> [MapEntry]? {
        guard let mapping = mapping(expected: "a mapping of strings") else { return nil }
        let entries = mapping.entries.compactMap { key, value in
            value.string().map { MapEntry(key: key.value, value: $0) }
        }
        return entries.count == mapping.entries.count ? entries : nil
    }

    /// A mapping.
    func mapping(expected: String = "a mapping") -> ConfigMapping? {
        guard case .mapping(let mapping) = node else {
            reportExpected(expected)
            return nil
        }
        return ConfigMapping(mapping: mapping, node: self)
    }
}

/// A mapping at its path in the file being decoded.
struct ConfigMapping {
    let mapping: YAMLMapping
    let node: ConfigNode

    var path: ConfigPath { node.path }
    var mark: Mark { mapping.mark }

    /// The entries in file order, each value at its own path.
    var entries: [(key: YAMLScalar, value: ConfigNode)] {
        mapping.entries.map { ($0.key, value(of: $0)) }
    }

    /// The value under `key`, if present.
    subscript(key: String) -> ConfigNode? {
        mapping[key].map(value(of:))
    }

    /// Decodes every key of `keys` present in the mapping into `target`,
    /// reports required keys that are missing, and reports every other key
    /// as unknown (with a suggestion) unless it is in `alsoAllowed`.
    func decode<Target>(_ keys: [KnownKey<Target>], into target: inout Target, alsoAllowed: [String] = []) {
        rejectUnknownKeys(allowed: keys.map(\.name) + alsoAllowed)
        decodeKnownKeys(keys, into: &target)
    }

    /// As `decode`, but leaves other keys alone: for a mapping that two
    /// tables share, whose unknown keys were reported already.
    func decodeKnownKeys<Target>(_ keys: [KnownKey<Target>], into target: inout Target) {
        for key in keys {
            if let value = self[key.name] {
                key.decode(&target, value)
            } else if key.isRequired {
                reportMissing(key.name)
            }
        }
    }

    /// Reports each key not in `allowed` as unknown, suggesting the closest allowed key.
    func rejectUnknownKeys(allowed: [String]) {
        for entry in mapping.entries where !allowed.contains(entry.key.value) {
            let key = entry.key.value
            node.diagnostics.report(
                "unknown key \(quoted(key))\(didYouMean(key, among: allowed))", at: entry.key.mark, path: path)
        }
    }

    /// Reports `missing required key "<key>"` at the start of the mapping.
    func reportMissing(_ key: String) {
        node.diagnostics.report("missing required key \(quoted(key))", at: mark, path: path)
    }

    private func value(of entry: YAMLMapping.Entry) -> ConfigNode {
        ConfigNode(entry.value, path: path.key(entry.key.value), keyMark: entry.key.mark, diagnostics: node.diagnostics)
    }
}

/// One key a mapping accepts and how its value is decoded into `Target`.
struct KnownKey<Target>: Sendable {
    let name: String
    let isRequired: Bool
    let decode: @Sendable (inout Target, ConfigNode) -> Void

    /// A key whose value is decoded by `decode`, which reports any problem itself.
    init(_ name: String, required: Bool = false, decode: @escaping @Sendable (inout Target, ConfigNode) -> Void) {
        self.name = name
        self.isRequired = required
        self.decode = decode
    }

    /// A key whose decoded value, when valid, is stored at `property`.
    init<Value>(
        _ name: String, required: Bool = false, _ property: WritableKeyPath<Target, Value> & Sendable,
        _ decode: @escaping @Sendable (ConfigNode) -> Value?
    ) {
        self.init(name, required: required) { target, node in
            if let value = decode(node) {
                target[keyPath: property] = value
            }
        }
    }

    /// A key whose decoded value, when valid, is stored at the optional `property`.
    init<Value>(
        _ name: String, required: Bool = false, _ property: WritableKeyPath<Target, Value?> & Sendable,
        _ decode: @escaping @Sendable (ConfigNode) -> Value?
    ) {
        self.init(name, required: required) { target, node in
            if let value = decode(node) {
                target[keyPath: property] = value
            }
        }
    }
}

/// A decimal number as YAML writes one (`1.5`, `-2`, `1e3`); not `inf`,
/// `nan` or hexadecimal.
func parseNumber(_ text: String) -> Double? {
    guard text.contains(where: \.isNumber),
        text.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }),
        let value = Double(text), value.isFinite
    else { return nil }
    return value
}
