// Isolation.swift
//
// Why this file exists: a stage says whether each of its microtasks gets a
// process of its own (`isolation: process`, the default) or runs in a
// pooled one (`isolation: pooled`, or `isolation: {mode: pooled,
// recycle_after: 500}`): a sandboxed process per slot that runs many
// microtasks of the stage one after another, so that the sandbox and the
// fork are paid once per process instead of once per microtask. What that
// gives up is written in tesserad(8) and ARCHITECTURE.md.

/// How a stage's microtasks are given processes.
public enum Isolation: Sendable, Equatable {
    /// A process of its own for every microtask (the default).
    case process
    /// A pooled process runs microtasks of the stage in turn, and is
    /// replaced after `recycleAfter` of them, after one that fails, or when
    /// its memory has grown past a bound.
    case pooled(recycleAfter: Int)

    public static let defaultRecycleAfter = 1000
    public static let maximumRecycleAfter = 1_000_000

    public var isPooled: Bool {
        if case .pooled = self { return true }
        return false
    }

    static func decode(_ node: ConfigNode) -> Isolation? {
        let modes = "process (a process per microtask) or pooled (a process per slot, reused)"
        if case .scalar = node.node {
            guard let text = node.string(expected: modes) else { return nil }
            return mode(text, recycleAfter: defaultRecycleAfter, node: node, modes: modes)
        }
        guard let mapping = node.mapping(expected: "\(modes), or a mapping such as {mode: pooled, recycle_after: 500}")
        else { return nil }
        var draft = Draft()
        mapping.decode(Draft.knownKeys, into: &draft)
        guard draft.valid, let mode = draft.mode, let modeNode = mapping["mode"] else { return nil }
        if draft.recycleAfter != nil && mode != "pooled", let node = mapping["recycle_after"] {
            node.report("recycle_after is for isolation mode pooled")
            return nil
        }
        return self.mode(mode, recycleAfter: draft.recycleAfter ?? defaultRecycleAfter, node: modeNode, modes: modes)
    }

    private static func mode(_ text: String, recycleAfter: Int, node: ConfigNode, modes: String) -> Isolation? {
        switch text {
        case "process": return .process
        case "pooled": return .pooled(recycleAfter: recycleAfter)
        default:
            node.reportExpected(modes)
            return nil
        }
    }

    private struct Draft {
        var mode: String?
        var recycleAfter: Int?
        var valid = true

        static let knownKeys: [KnownKey<Draft>] = [
            KnownKey("mode", required: true) { draft, node in
                guard let text = node.string(expected: "process or pooled") else {
                    draft.valid = false
                    return
                }
                draft.mode = text
            },
            KnownKey("recycle_after") { draft, node in
                let expected = "a number of microtasks from 1 to \(maximumRecycleAfter)"
                guard let value = node.integer(expected: expected) else {
                    draft.valid = false
                    return
                }
                guard (1...Int64(maximumRecycleAfter)).contains(value) else {
                    node.reportExpected(expected)
                    draft.valid = false
                    return
                }
                draft.recycleAfter = Int(value)
            },
        ]
    }
}
