// ItemSource.swift
//
// Why this file exists: a stage is partitioned into microtasks, one per item
// (or per chunk of items). A stage has exactly one source of items: a list
// written in the job file, a numeric range, a parameter sweep (`matrix`),
// files (`glob`, `lines`, `split`) read when a run starts, or the results of
// other stages (`from`, `reduce`), known only when those stages end. This
// file holds that choice and how each is written in a job file. Producing
// the items is the engine's (TesseraEngine's Partition.swift): the sources
// here are descriptions, never item lists materialised from files.

/// Where a stage's items come from.
public enum ItemSource: Sendable, Equatable {
    /// The items as written; scalars of any type, kept as their text.
    case list([String])
    /// `from`, `from + step`, … up to but not including `to`. `step` is never
    /// zero; it is positive when `from < to` and negative when `from > to`.
    case range(from: Int64, to: Int64, step: Int64)
    /// No items given: the stage runs as one microtask whose item is "".
    case none
    /// The cartesian product of the axes, the first axis varying slowest;
    /// each item is a JSON object with one key per axis. Values are JSON
    /// texts (`1`, `"a"`, `true`).
    case matrix([MatrixAxis])
    /// The files matching any of the absolute patterns, sorted bytewise.
    case glob([String])
    /// The non-empty lines of a file (an absolute path).
    case lines(String)
    /// Byte ranges of about `block` bytes of one file, cut after a newline.
    case split(file: String, block: UInt64)
    /// The results of a stage's succeeded microtasks (dynamic fan-out).
    case from(String)
    /// One microtask over the results of these stages.
    case reduce([String])

    /// The most items a stage may have. Every microtask is written to the
    /// store when its stage is partitioned, so this bounds the work one run
    /// can ask of the daemon; a source that yields more fails the run.
    public static let maximumCount = 1_000_000

    /// The number of items when the job file alone decides it; nil for
    /// sources read at run time.
    public var knownCount: Int? {
        switch self {
        case .list(let items): return items.count
        case .range(let from, let to, let step): return Int(clamping: Self.rangeCount(from: from, to: to, step: step))
        case .none: return 1
        case .matrix(let axes): return Int(clamping: Self.matrixCount(axes))
        case .reduce: return 1
        case .glob, .lines, .split, .from: return nil
        }
    }

    /// The item at `index` of a source whose items the job file decides
    /// (a list, range, matrix or none); `index` must be below knownCount.
    public func item(at index: Int) -> String {
        switch self {
        case .list(let items):
            return items[index]
        case .range(let from, _, let step):
            return String(Int128(from) + Int128(index) * Int128(step))
        case .none:
            return ""
        case .matrix(let axes):
            var rest = index
            var values: [String] = Array(repeating: "", count: axes.count)
            for (position, axis) in axes.enumerated().reversed() {
                values[position] = axis.values[rest % axis.values.count]
                rest /= axis.values.count
            }
            let members = zip(axes, values).map { axis, value in jsonStringLiteral(axis.key) + ":" + value }
            return "{" + members.joined(separator: ",") + "}"
        default:
            preconditionFailure("item(at:) of a source read at run time")
        }
    }

    /// The stages whose results this source reads.
    public var upstream: [String] {
        switch self {
        case .from(let stage): return [stage]
        case .reduce(let stages): return stages
        default: return []
        }
    }

    /// The keys every item of this source has when items are JSON objects
    /// known from the job file; nil when the items may be objects of any
    /// shape (their keys are then checked as each microtask runs).
    var itemKeys: [String]? {
        switch self {
        case .matrix(let axes): return axes.map(\.key)
        case .split: return ["path", "offset", "length"]
        case .from, .lines: return nil
        default: return []
        }
    }

    /// One line saying where the items come from, for `tessera show`,
    /// `tesserad --check` and the store's record of each stage.
    public var summary: String {
        switch self {
        case .list(let items): return "items: \(items.count) listed"
        case .range(let from, let to, let step): return "range: from \(from) to \(to) step \(step)"
        case .none: return "none: one microtask"
        case .matrix(let axes):
            return "matrix: " + axes.map { "\($0.key) (\($0.values.count))" }.joined(separator: " x ")
        case .glob(let patterns): return "glob: " + patterns.joined(separator: " ")
        case .lines(let path): return "lines: \(path)"
        case .split(let file, let block): return "split: \(file) in blocks of \(block) bytes"
        case .from(let stage): return "from: the results of stage \(stage)"
        case .reduce(let stages): return "reduce: the results of stage " + stages.joined(separator: ", ")
        }
    }

    /// The number of items of a range, 0 when `step` leads away from `to`.
    static func rangeCount(from: Int64, to: Int64, step: Int64) -> Int128 {
        let span = Int128(to) - Int128(from)
        guard step != 0, span != 0, (span > 0) == (step > 0) else { return 0 }
        let step = Int128(step)
        return (span + step - (step > 0 ? 1 : -1)) / step
    }

    static func matrixCount(_ axes: [MatrixAxis]) -> Int128 {
        axes.reduce(Int128(1)) { product, axis in
            let next = product * Int128(axis.values.count)
            return next > Int128(maximumCount) ? Int128(maximumCount) + 1 : next
        }
    }
}

/// One axis of a `matrix:` sweep: a key and its values as JSON texts.
public struct MatrixAxis: Sendable, Equatable {
    public var key: String
    public var values: [String]

    public init(key: String, values: [String]) {
        self.key = key
        self.values = values
    }
}

/// How much of a stage may fail while the stage still succeeds.
public enum FailureTolerance: Sendable, Equatable {
    case count(Int)
    /// Percent of the stage's microtasks (rounded down).
    case percent(Double)

    /// The failures allowed among `total` microtasks.
    public func allowed(of total: Int) -> Int {
        switch self {
        case .count(let n): return n
        case .percent(let p): return Int((Double(total) * p / 100).rounded(.down))
        }
    }
}

/// What a microtask's result is.
public enum ResultSource: String, Sendable, Equatable {
    /// What the executor sets with host->set_result (the default).
    case executor
    /// What the microtask writes on its standard output.
    case stdout
}

/// The JSON text of a string: quoted, with the escapes JSON requires.
public func jsonStringLiteral(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

extension ConfigNode {
    /// `items:`, a list of scalars of any type, kept as their text.
    func items() -> ItemSource? {
        guard let nodes = list(expected: "a list of items") else { return nil }
        guard !nodes.isEmpty else {
            report("expected at least one item, found an empty list")
            return nil
        }
        let items = nodes.compactMap { $0.string(expected: "an item (a string or a number)") }
        return items.count == nodes.count ? .list(items) : nil
    }

    /// `range:`, a mapping `{from: 0, to: 100, step: 1}`; `to` is exclusive
    /// and `step` defaults to 1. An empty range is refused.
    func range() -> ItemSource? {
        guard let mapping = mapping(expected: "a range such as {from: 0, to: 10}") else { return nil }
        var range = RangeDraft()
        mapping.decode(RangeDraft.knownKeys, into: &range)
        guard let from = range.from, let to = range.to, range.stepIsValid else { return nil }
        let step = range.step
        let stepNode = range.stepNode ?? self
        if step == 0 {
            stepNode.reportExpected("a step other than 0")
            return nil
        }
        if from == to {
            report("range from \(from) to \(to) is empty; \"to\" is exclusive")
            return nil
        }
        if (from < to) != (step > 0) {
            let advice = step > 0 ? "use a negative step to count down" : "use a positive step to count up"
            stepNode.report("range from \(from) to \(to) is empty with step \(step); \(advice)")
            return nil
        }
        let count = ItemSource.rangeCount(from: from, to: to, step: step)
        guard count <= Int128(ItemSource.maximumCount) else {
            report(
                "range from \(from) to \(to) with step \(step) has \(count) items; "
                    + "a stage may have at most \(ItemSource.maximumCount)")
            return nil
        }
        return .range(from: from, to: to, step: step)
    }

    /// `matrix:`, a mapping of keys to non-empty lists of scalars.
    func matrix() -> ItemSource? {
        guard let mapping = mapping(expected: "a mapping of keys to lists, such as {x: [1, 2], y: [a, b]}") else {
            return nil
        }
        guard !mapping.entries.isEmpty else {
            report("expected at least one key, found an empty mapping")
            return nil
        }
        var axes: [MatrixAxis] = []
        var valid = true
        for (key, node) in mapping.entries {
            guard let values = node.list(expected: "a list of values") else {
                valid = false
                continue
            }
            if values.isEmpty {
                node.report("expected at least one value, found an empty list")
                valid = false
            }
            let texts = values.compactMap { $0.matrixValue() }
            guard texts.count == values.count else {
                valid = false
                continue
            }
            axes.append(MatrixAxis(key: key.value, values: texts))
        }
        guard valid else { return nil }
        let count = ItemSource.matrixCount(axes)
        guard count <= Int128(ItemSource.maximumCount) else {
            report("matrix has more than \(ItemSource.maximumCount) combinations, the most a stage may have")
            return nil
        }
        return .matrix(axes)
    }

    /// A matrix value as JSON: plain integers, numbers and booleans keep
    /// their type, everything else is a string.
    private func matrixValue() -> String? {
        guard case .scalar(let scalar) = node else {
            reportExpected("a value (a string, number or boolean)")
            return nil
        }
        if scalar.style == .plain {
            if scalar.value == "true" || scalar.value == "false" { return scalar.value }
            // As JSON writes it: "+5" and "007" are 5 and 7.
            if let integer = Int64(scalar.value) { return String(integer) }
            if let number = parseNumber(scalar.value) { return "\(number)" }
            if scalar.isNull { return "null" }
        }
        return jsonStringLiteral(scalar.value)
    }

    /// `glob:`, a pattern or a list of them; relative patterns are relative
    /// to the job file's directory.
    func glob(base: String) -> ItemSource? {
        let nodes: [ConfigNode]
        if case .sequence = node {
            guard let list = list(expected: "a pattern or a list of patterns") else { return nil }
            nodes = list
        } else {
            nodes = [self]
        }
        guard !nodes.isEmpty else {
            report("expected at least one pattern, found an empty list")
            return nil
        }
        var patterns: [String] = []
        for node in nodes {
            guard let pattern = node.string(expected: "a pattern such as /data/**/*.txt") else { continue }
            guard !pattern.isEmpty else {
                node.reportExpected("a pattern such as /data/**/*.txt")
                continue
            }
            let absolute = resolvedPath(pattern, base: base)
            if absolute.hasSuffix("/") {
                node.report("a pattern matches files; remove the trailing \"/\" (or add \"*\" after it)")
                continue
            }
            patterns.append(absolute)
        }
        return patterns.count == nodes.count ? .glob(patterns) : nil
    }

    /// `lines:`, the path of a file.
    func lines(base: String) -> ItemSource? {
        guard let path = string(expected: "the path of a file"), !path.isEmpty else {
            if case .scalar = node { reportExpected("the path of a file") }
            return nil
        }
        return .lines(resolvedPath(path, base: base))
    }

    /// `split: {file: PATH, block: 64MiB}`.
    func split(base: String) -> ItemSource? {
        guard let mapping = mapping(expected: "a mapping such as {file: /data/big.txt, block: 64MiB}") else {
            return nil
        }
        var draft = SplitDraft()
        mapping.decode(SplitDraft.knownKeys, into: &draft)
        guard let file = draft.file else { return nil }
        return .split(file: resolvedPath(file, base: base), block: draft.block ?? 64 << 20)
    }

    /// `from:`, a stage name.
    func fromStage() -> ItemSource? {
        string(expected: "a stage name").map(ItemSource.from)
    }

    /// `reduce:`, a stage name or a list of them.
    func reduceStages() -> ItemSource? {
        if case .sequence = node {
            guard let names = list(expected: "a stage name or a list of them")?.compactMap({ $0.string() }),
                !names.isEmpty
            else {
                reportExpected("a stage name or a non-empty list of them")
                return nil
            }
            return .reduce(names)
        }
        return string(expected: "a stage name or a list of them").map { .reduce([$0]) }
    }

    /// `max_failures:`, a count (`3`) or a percentage (`5%`).
    func failureTolerance() -> FailureTolerance? {
        guard let text = string(expected: "a number of microtasks or a percentage, such as 3 or 5%") else {
            return nil
        }
        if text.hasSuffix("%"), let percent = Double(text.dropLast()), percent >= 0, percent <= 100 {
            return .percent(percent)
        }
        if let count = Int(text), count >= 0 { return .count(count) }
        reportExpected("a number of microtasks (0 or more) or a percentage from 0% to 100%, such as 3 or 5%")
        return nil
    }
}

/// `path` made absolute against `base` (a directory), if it is relative.
func resolvedPath(_ path: String, base: String) -> String {
    if path.hasPrefix("/") { return path }
    return (base.hasSuffix("/") ? base : base + "/") + path
}

/// What a `range:` mapping says, before its checks.
private struct RangeDraft {
    var from: Int64?
    var to: Int64?
    var step: Int64 = 1
    var stepNode: ConfigNode?
    var stepIsValid = true

    static let knownKeys: [KnownKey<RangeDraft>] = [
        KnownKey("from", required: true, \.from) { $0.integer() },
        KnownKey("to", required: true, \.to) { $0.integer() },
        KnownKey("step") { range, node in
            range.stepNode = node
            if let step = node.integer() {
                range.step = step
            } else {
                range.stepIsValid = false
            }
        },
    ]
}

/// What a `split:` mapping says.
private struct SplitDraft {
    var file: String?
    var block: UInt64?

    static let knownKeys: [KnownKey<SplitDraft>] = [
        KnownKey("file", required: true, \.file) { $0.string(expected: "the path of a file") },
        KnownKey("block", \.block) { $0.size() },
    ]
}
