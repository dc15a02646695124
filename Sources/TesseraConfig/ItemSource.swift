// ItemSource.swift
//
// Why this file exists: a stage is split into microtasks, one per item. The
// items are a list written in the job file, a numeric range, or nothing (one
// microtask). This file holds that choice, how `items:` and `range:` are
// read, and how many items there are and what the n-th one is, without
// materialising a range.

/// Where a stage's items come from.
public enum ItemSource: Sendable, Equatable {
    /// The items as written; scalars of any type, kept as their text.
    case list([String])
    /// `from`, `from + step`, … up to but not including `to`. `step` is never
    /// zero; it is positive when `from < to` and negative when `from > to`.
    case range(from: Int64, to: Int64, step: Int64)
    /// No items given: the stage runs as one microtask whose item is "".
    case none

    /// The most microtasks a stage may have. A run's microtasks are all
    /// written to the store when it starts, so this bounds the work one
    /// StartRun can ask of the daemon.
    public static let maximumCount = 1_000_000

    /// The number of items (microtasks).
    public var count: Int {
        switch self {
        case .list(let items):
            return items.count
        case .range(let from, let to, let step):
            return Int(clamping: Self.rangeCount(from: from, to: to, step: step))
        case .none:
            return 1
        }
    }

    /// The item at `index`, which must be below `count`. A range's items are
    /// decimal integers.
    public func item(at index: Int) -> String {
        precondition(index >= 0 && index < count, "item index \(index) out of 0..<\(count)")
        switch self {
        case .list(let items):
            return items[index]
        case .range(let from, _, let step):
            return String(Int128(from) + Int128(index) * Int128(step))
        case .none:
            return ""
        }
    }

    /// The number of items of a range, 0 when `step` leads away from `to`.
    static func rangeCount(from: Int64, to: Int64, step: Int64) -> Int128 {
        let span = Int128(to) - Int128(from)
        guard step != 0, span != 0, (span > 0) == (step > 0) else { return 0 }
        let step = Int128(step)
        return (span + step - (step > 0 ? 1 : -1)) / step
    }
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
