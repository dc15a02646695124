// Templates.swift
//
// Why this file exists: parameters may say `{{item}}`, `{{index}}`,
// `{{run_dir}}` or the key of an item that is a JSON object, and the worker
// substitutes them in each microtask. A name the worker would not know must
// be refused when the job file is loaded, at the line and column it is
// written, never passed through to a command literally. This file is the
// syntax (`{{ name }}`, spaces allowed inside the braces) and the check.

/// The names every stage may use in its parameters.
public let builtinTemplateNames = ["item", "items", "index", "run", "job", "stage", "attempt", "run_dir", "input"]

/// A `{{…}}` found in a text: the name, and where it starts (in characters).
struct TemplateUse {
    let name: String?
    let offset: Int
    /// The text as written, `{{ x }}`.
    let text: String
}

/// Every `{{` of `text` with the name it opens, nil when what follows is
/// not `NAME }}` (NAME: a letter or `_`, then letters, digits, `_`, `-`).
func templateUses(in text: String) -> [TemplateUse] {
    let characters = Array(text)
    var uses: [TemplateUse] = []
    var i = 0
    while i + 1 < characters.count {
        guard characters[i] == "{", characters[i + 1] == "{" else {
            i += 1
            continue
        }
        let start = i
        var j = i + 2
        while j < characters.count, characters[j] == " " { j += 1 }
        let nameStart = j
        while j < characters.count,
            characters[j].isASCII
                && (characters[j].isLetter || characters[j] == "_"
                    || (j > nameStart && (characters[j].isNumber || characters[j] == "-")))
        {
            j += 1
        }
        let name = String(characters[nameStart..<j])
        while j < characters.count, characters[j] == " " { j += 1 }
        if !name.isEmpty, j + 1 < characters.count, characters[j] == "}", characters[j + 1] == "}" {
            uses.append(TemplateUse(name: name, offset: start, text: String(characters[start..<(j + 2)])))
            i = j + 2
        } else {
            let end = min(characters.count, start + 12)
            uses.append(TemplateUse(name: nil, offset: start, text: String(characters[start..<end])))
            i = start + 2
        }
    }
    return uses
}

extension StageDefinition {
    /// What is wrong with the templates of a value given at run time (a
    /// `--param`), in the words of the load-time check; nil when nothing.
    public func templateProblem(in text: String) -> String? {
        var isReduce = false
        if case .reduce = items { isReduce = true }
        for use in templateUses(in: text) {
            guard let name = use.name else { return "\(quoted(use.text)) does not start a template" }
            if name == "input" && !isReduce { return "{{input}} is the input file of a reduce stage" }
            if builtinTemplateNames.contains(name) { continue }
            if chunk != nil { return "unknown template {{\(name)}}: with \"chunk\" the item has no keys" }
            if let keys = items.itemKeys, !keys.contains(name) {
                return "unknown template {{\(name)}}\(didYouMean(name, among: builtinTemplateNames + keys))"
            }
        }
        return nil
    }
}

extension ConfigNode {
    /// Checks the templates of a parameter's value (a scalar, or the
    /// scalars of a list or mapping). `keys` are the item keys the stage's
    /// source gives (nil: any, checked when each microtask runs).
    func checkTemplates(keys: [String]?, isReduce: Bool, chunked: Bool) {
        switch node {
        case .scalar(let scalar):
            checkTemplates(in: scalar, keys: keys, isReduce: isReduce, chunked: chunked)
        case .sequence:
            list()?.forEach { $0.checkTemplates(keys: keys, isReduce: isReduce, chunked: chunked) }
        case .mapping:
            mapping()?.entries.forEach { $0.value.checkTemplates(keys: keys, isReduce: isReduce, chunked: chunked) }
        }
    }

    private func checkTemplates(in scalar: YAMLScalar, keys: [String]?, isReduce: Bool, chunked: Bool) {
        for use in templateUses(in: scalar.value) {
            // The column of the template itself, when the scalar is on one line.
            var at = scalar.mark
            if !scalar.value.contains("\n") {
                at.column += use.offset + (scalar.style == .quoted ? 1 : 0)
            }
            guard let name = use.name else {
                diagnostics.report(
                    "\(quoted(use.text)) does not start a template: write {{name}} with a name such as item "
                        + "or index", at: at, path: path)
                continue
            }
            if name == "input" && !isReduce {
                diagnostics.report(
                    "{{input}} is the input file of a reduce stage; this stage has no \"reduce:\"", at: at,
                    path: path)
                continue
            }
            if builtinTemplateNames.contains(name) { continue }
            if chunked {
                diagnostics.report(
                    "unknown template {{\(name)}}: with \"chunk\" the item is a JSON array of items, so it has no "
                        + "keys; use {{items}} or {{item}}", at: at, path: path)
                continue
            }
            guard let keys else { continue }
            if keys.contains(name) { continue }
            let known = builtinTemplateNames.filter { $0 != "input" || isReduce } + keys
            let hint = keys.isEmpty ? "" : "; the items have the keys " + keys.joined(separator: ", ")
            diagnostics.report(
                "unknown template {{\(name)}}\(didYouMean(name, among: known)) (templates: "
                    + builtinTemplateNames.filter { $0 != "input" || isReduce }.joined(separator: ", ") + hint + ")",
                at: at, path: path)
        }
    }
}
