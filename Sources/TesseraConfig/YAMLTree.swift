// YAMLTree.swift
//
// Why this file exists: it turns libyaml's events into a `YAMLNode` tree and
// enforces the rules Tessera sets for YAML beyond the syntax: one document
// per file, unique keys, scalar keys, no anchors or aliases, no tags but
// `!!str`, and bounded nesting.
//
// Anchors and aliases are rejected rather than resolved: a configuration
// gains little from them, `defaults:` covers the shared-limits case, and
// rejecting them rules out alias bombs.

extension YAMLNode {
    /// Parses one YAML document. The result is nil when the text holds no
    /// document (it is empty or only comments), and a list of diagnostics
    /// when it is not valid YAML or breaks one of the rules above; all such
    /// diagnostics are collected up to the first syntax error.
    public static func parse(_ text: String, file: String) -> Result<YAMLNode?, DiagnosticList> {
        parse(bytes: Array(text.utf8), file: file)
    }

    static func parse(bytes: [UInt8], file: String) -> Result<YAMLNode?, DiagnosticList> {
        var builder = YAMLTreeBuilder(parser: YAMLEventParser(bytes), file: file)
        let root: YAMLNode?
        do {
            root = try builder.document()
        } catch {
            builder.diagnostics.append(Diagnostic(file: file, position: error.mark, message: error.message))
            return .failure(DiagnosticList(builder.diagnostics.inFileOrder()))
        }
        if builder.diagnostics.isEmpty {
            return .success(root)
        }
        return .failure(DiagnosticList(builder.diagnostics.inFileOrder()))
    }
}

/// Builds the tree of one document from the parser's events.
private struct YAMLTreeBuilder {
    /// Deeper nesting than this is refused: no configuration needs it, and
    /// the tree is walked (and freed) recursively.
    static let maximumDepth = 64

    let parser: YAMLEventParser
    let file: String
    var diagnostics: [Diagnostic] = []

    init(parser: YAMLEventParser, file: String) {
        self.parser = parser
        self.file = file
    }

    /// The document's root node, or nil if the stream holds no document.
    mutating func document() throws(YAMLSyntaxError) -> YAMLNode? {
        guard case .documentStart = try parser.next() else {
            return nil
        }
        let root = try node(from: parser.next(), path: .root, depth: 1)
        guard case .documentEnd = try parser.next() else {
            preconditionFailure("libyaml ended a document without a document end event")
        }
        if case .documentStart(let mark) = try parser.next() {
            report("expected one document in the file, found a second one", at: mark, path: .root)
        }
        return root
    }

    private mutating func node(
        from event: YAMLEvent, path: ConfigPath, depth: Int
    ) throws(YAMLSyntaxError) -> YAMLNode {
        switch event {
        case .scalar(let value, var style, let tag, let hasAnchor, let mark):
            if hasAnchor {
                rejectAnchorOrAlias(at: mark, path: path)
            }
            if let tag {
                if tag == "!" || tag == "tag:yaml.org,2002:str" {
                    style = .quoted
                } else {
                    rejectTag(tag, at: mark, path: path)
                }
            }
            return .scalar(YAMLScalar(value: value, style: style, mark: mark))

        case .alias(let mark):
            rejectAnchorOrAlias(at: mark, path: path)
            return .scalar(YAMLScalar(value: "", style: .plain, mark: mark))

        case .sequenceStart(let tag, let hasAnchor, let mark):
            try checkCollection(tag: tag, hasAnchor: hasAnchor, depth: depth, at: mark, path: path)
            var items: [YAMLNode] = []
            while true {
                let event = try parser.next()
                if case .sequenceEnd = event { break }
                items.append(try node(from: event, path: path.index(items.count), depth: depth + 1))
            }
            return .sequence(YAMLSequence(items: items, mark: mark))

        case .mappingStart(let tag, let hasAnchor, let mark):
            try checkCollection(tag: tag, hasAnchor: hasAnchor, depth: depth, at: mark, path: path)
            var entries: [YAMLMapping.Entry] = []
            var firstMarks: [String: Mark] = [:]
            while true {
                let event = try parser.next()
                if case .mappingEnd = event { break }
                let keyNode = try node(from: event, path: path, depth: depth + 1)
                guard case .scalar(let key) = keyNode else {
                    report("expected a key, found \(keyNode.foundDescription)", at: keyNode.mark, path: path)
                    _ = try node(from: parser.next(), path: path, depth: depth + 1)
                    continue
                }
                let value = try node(from: parser.next(), path: path.key(key.value), depth: depth + 1)
                if let first = firstMarks[key.value] {
                    report("duplicate key \(quoted(key.value)) (first given at \(first))", at: key.mark, path: path)
                    continue
                }
                firstMarks[key.value] = key.mark
                entries.append(YAMLMapping.Entry(key: key, value: value))
            }
            return .mapping(YAMLMapping(entries: entries, mark: mark))

        case .documentStart, .documentEnd, .sequenceEnd, .mappingEnd, .streamEnd:
            preconditionFailure("libyaml returned \(event) where a node must start")
        }
    }

    private mutating func checkCollection(
        tag: String?, hasAnchor: Bool, depth: Int, at mark: Mark, path: ConfigPath
    ) throws(YAMLSyntaxError) {
        if depth > Self.maximumDepth {
            throw YAMLSyntaxError(
                message: "lists and mappings nested deeper than \(Self.maximumDepth) levels are not supported",
                mark: mark)
        }
        if hasAnchor {
            rejectAnchorOrAlias(at: mark, path: path)
        }
        if let tag {
            rejectTag(tag, at: mark, path: path)
        }
    }

    private mutating func rejectAnchorOrAlias(at mark: Mark, path: ConfigPath) {
        report("anchors and aliases are not supported; write the value out in full", at: mark, path: path)
    }

    private mutating func rejectTag(_ tag: String, at mark: Mark, path: ConfigPath) {
        let standardPrefix = "tag:yaml.org,2002:"
        let written = tag.hasPrefix(standardPrefix) ? "!!" + tag.dropFirst(standardPrefix.count) : tag
        report("unsupported tag \(quoted(written)); only \"!!str\" may be written", at: mark, path: path)
    }

    private mutating func report(_ message: String, at mark: Mark, path: ConfigPath) {
        diagnostics.append(Diagnostic(file: file, position: mark, path: path.description, message: message))
    }
}
