// ConfigPath.swift
//
// Why this file exists: diagnostics name the value they are about by its key
// path, `stages[0].limits.memory`. The path is built while walking the tree;
// this is the one place that spells its syntax.

/// The key path of a node, from the document's root.
struct ConfigPath: Equatable, CustomStringConvertible {
    /// The root of the document: the empty path.
    static let root = ConfigPath(description: "")

    /// The rendered path, e.g. `stages[0].limits.memory`.
    let description: String

    /// The value under `key` of the mapping at this path.
    func key(_ key: String) -> ConfigPath {
        ConfigPath(description: description.isEmpty ? key : "\(description).\(key)")
    }

    /// The item at `index` of the list at this path.
    func index(_ index: Int) -> ConfigPath {
        ConfigPath(description: "\(description)[\(index)]")
    }
}
