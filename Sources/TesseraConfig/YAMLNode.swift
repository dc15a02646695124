// YAMLNode.swift
//
// Why this file exists: the decoders need YAML as a tree that remembers where
// each value was written, so that every diagnostic can name a line and column.
// This is that tree: scalars that keep their text and whether they were
// quoted, lists, and mappings that keep their keys in file order.

/// A 1-based position in a file.
public struct Mark: Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// `line:column`.
    public var description: String { "\(line):\(column)" }
}

/// How a scalar was written. Only plain scalars can be integers, numbers or
/// booleans: `count: 123` is an integer, `count: "123"` is a string.
public enum ScalarStyle: Sendable, Equatable {
    /// Unquoted, e.g. `123` or `hello`.
    case plain
    /// Single- or double-quoted, a literal (`|`) or folded (`>`) block, or
    /// tagged `!!str`: always a string.
    case quoted
}

/// A scalar: its text as written (after YAML's unescaping and folding).
public struct YAMLScalar: Sendable, Equatable {
    public var value: String
    public var style: ScalarStyle
    public var mark: Mark

    public init(value: String, style: ScalarStyle, mark: Mark) {
        self.value = value
        self.style = style
        self.mark = mark
    }

    /// Whether this is YAML's null: a plain `~`, `null`, `Null`, `NULL` or
    /// nothing at all (as in `key:` with no value).
    public var isNull: Bool {
        style == .plain && ["", "~", "null", "Null", "NULL"].contains(value)
    }
}

/// A list, `[a, b]` or `- a` lines.
public struct YAMLSequence: Sendable, Equatable {
    public var items: [YAMLNode]
    public var mark: Mark

    public init(items: [YAMLNode], mark: Mark) {
        self.items = items
        self.mark = mark
    }
}

/// A mapping, its keys unique and in file order.
public struct YAMLMapping: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var key: YAMLScalar
        public var value: YAMLNode

        public init(key: YAMLScalar, value: YAMLNode) {
            self.key = key
            self.value = value
        }
    }

    public var entries: [Entry]
    public var mark: Mark

    public init(entries: [Entry], mark: Mark) {
        self.entries = entries
        self.mark = mark
    }

    /// The entry whose key is `key`, if any.
    public subscript(key: String) -> Entry? {
        entries.first { $0.key.value == key }
    }
}

/// A node of a YAML document.
public indirect enum YAMLNode: Sendable, Equatable {
    case scalar(YAMLScalar)
    case sequence(YAMLSequence)
    case mapping(YAMLMapping)

    /// Where the node starts.
    public var mark: Mark {
        switch self {
        case .scalar(let scalar): scalar.mark
        case .sequence(let sequence): sequence.mark
        case .mapping(let mapping): mapping.mark
        }
    }

    /// How a diagnostic names this node after "found": `a list`, `a mapping`,
    /// `nothing`, `null` or the scalar's text in quotes.
    var foundDescription: String {
        switch self {
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        case .scalar(let scalar):
            if scalar.isNull {
                return scalar.value.isEmpty ? "nothing" : "null"
            }
            return quoted(scalar.value)
        }
    }
}

/// `text` in double quotes with quotes, backslashes and control characters
/// escaped, shortened to 60 characters, for use in a message.
func quoted(_ text: String) -> String {
    let limit = 60
    var shown = text.count > limit ? String(text.prefix(limit - 1)) + "…" : text
    shown = shown.unicodeScalars.map { scalar -> String in
        switch scalar {
        case "\"": return "\\\""
        case "\\": return "\\\\"
        case "\n": return "\\n"
        case "\t": return "\\t"
        case _ where scalar.value < 0x20 || scalar.value == 0x7F:
            return "\\u{\(String(scalar.value, radix: 16))}"
        default: return String(scalar)
        }
    }.joined()
    return "\"\(shown)\""
}
