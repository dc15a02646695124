// JobDecoder.swift
//
// Why this file exists: it turns the YAML tree of one job file into a
// `JobDefinition`, checking the schema (required and unknown keys, names,
// items or range, limits), the parameters against the executor catalogue,
// and the rules that span stages (unique names, `after` references, no
// cycles). It reports every problem it finds, not only the first.
//
// A job file holds a list of stages, or the keys of a single stage at the top
// level (`executor`, `params`, a source of items, `limits`, `sandbox`), which
// make a stage named "main". A stage has exactly one source of items
// (ItemSource.swift); `from:` and `reduce:` also make it wait for the stages
// they name, so they take part in the check for cycles with `after:`.

struct JobDecoder {
    let catalog: ExecutorCatalog
    let diagnostics: DiagnosticCollector

    /// The job, or nil when a diagnostic was reported.
    func decode(_ root: YAMLNode?) -> JobDefinition? {
        guard let root else {
            diagnostics.report("expected a job definition, found an empty file", at: nil, path: .root)
            return nil
        }
        guard let mapping = ConfigNode(root, path: .root, diagnostics: diagnostics).mapping() else {
            return nil
        }
        var job = JobDraft()
        // `stages` and the short form's keys are decoded below, as stages.
        mapping.decode(
            Self.jobKeys, into: &job, alsoAllowed: ["stages"] + Self.shorthandKeys + ScheduleDefinition.siblingKeys)
        let schedule = ScheduleDefinition.decode(job.schedule, job: mapping)

        var stages: [StageDraft] = []
        let shorthandEntries = mapping.entries.filter { Self.shorthandKeys.contains($0.key.value) }
        if let stagesNode = mapping["stages"] {
            for (key, _) in shorthandEntries {
                diagnostics.report(
                    "\(quoted(key.value)) cannot be used together with \"stages\"; move it into a stage",
                    at: key.mark, path: .root)
            }
            stages = decodeStages(stagesNode)
        } else if shorthandEntries.isEmpty {
            diagnostics.report(
                "missing required key \"stages\" (or \"executor\" for a single-stage job)", at: mapping.mark,
                path: .root)
        } else {
            var stage = StageDraft(name: "main", mapping: mapping)
            mapping.decodeKnownKeys(Self.stageKeys.filter { Self.shorthandKeys.contains($0.name) }, into: &stage)
            stages = [stage]
        }

        let definitions = stages.compactMap(finish)
        checkStageNames(stages)
        checkAfter(stages)
        checkCycles(stages)

        guard diagnostics.diagnostics.isEmpty, let name = job.name, let nameMark = job.nameMark,
            definitions.count == stages.count
        else { return nil }
        var definition = JobDefinition(
            name: name, description: job.description, concurrency: job.concurrency, priority: job.priority,
            stages: definitions,
            file: diagnostics.file, nameMark: nameMark)
        definition.schedule = schedule
        definition.retention = job.retention ?? Retention()
        return definition
    }

    // MARK: Keys

    /// What the top level of a job file says, before the checks across keys.
    private struct JobDraft {
        var name: String?
        var nameMark: Mark?
        var description = ""
        var concurrency: Int?
        var priority = JobDefinition.defaultPriority
        var schedule: ConfigNode?
        var retention: Retention?
    }

    /// What one stage says, before it is checked against the catalogue and the other stages.
    private struct StageDraft {
        var name: String?
        var nameMark: Mark?
        let mapping: ConfigMapping
        var executor: ConfigNode?
        var params: ConfigNode?
        /// The sources written, in file order, with the key they were written under.
        var sources: [(key: String, source: ItemSource)] = []
        var references: [StageReference] = []
        var chunk: Int?
        var concurrency: Int?
        var requests = ResourceRequests()
        var maxFailures: FailureTolerance = .count(0)
        var retry: RetryPolicy = .none
        var result: ResultSource = .executor
        var limits = Limits()
        var sandbox = SandboxSettings()
        var isolation: Isolation = .process
        var after: [StageReference] = []

        init(name: String?, mapping: ConfigMapping) {
            self.name = name
            self.mapping = mapping
        }
    }

    /// A stage name written in `after`.
    private struct StageReference {
        let name: String
        let node: ConfigNode
        /// `after`, `from` or `reduce`.
        var key = "after"
    }

    /// The keys of the top level of a job file, besides `stages` and `shorthandKeys`.
    private static let jobKeys: [KnownKey<JobDraft>] = [
        KnownKey("name", required: true) { job, node in
            job.name = node.jobOrStageName()
            job.nameMark = node.mark
        },
        KnownKey("description", \.description) { $0.string() },
        KnownKey("concurrency", \.concurrency) { $0.positiveInteger() },
        KnownKey("priority", \.priority) { $0.priority() },
        KnownKey("schedule") { $0.schedule = $1 },
        KnownKey("retention", \.retention) { Retention.decode($0) },
    ]

    /// The keys of a stage.
    private static let stageKeys: [KnownKey<StageDraft>] = [
        KnownKey("name", required: true) { stage, node in
            stage.name = node.jobOrStageName()
            stage.nameMark = node.mark
        },
        KnownKey("executor", required: true) { $0.executor = $1 },
        KnownKey("params") { $0.params = $1 },
        KnownKey("items") { stage, node in node.items().map { stage.sources.append(("items", $0)) } },
        KnownKey("range") { stage, node in node.range().map { stage.sources.append(("range", $0)) } },
        KnownKey("matrix") { stage, node in node.matrix().map { stage.sources.append(("matrix", $0)) } },
        KnownKey("glob") { stage, node in
            node.glob(base: node.jobDirectory).map { stage.sources.append(("glob", $0)) }
        },
        KnownKey("lines") { stage, node in
            node.lines(base: node.jobDirectory).map { stage.sources.append(("lines", $0)) }
        },
        KnownKey("split") { stage, node in
            node.split(base: node.jobDirectory).map { stage.sources.append(("split", $0)) }
        },
        KnownKey("from") { stage, node in
            if let source = node.fromStage() {
                stage.sources.append(("from", source))
                stage.references.append(StageReference(name: source.upstream[0], node: node, key: "from"))
            }
        },
        KnownKey("reduce") { stage, node in
            if let source = node.reduceStages() {
                stage.sources.append(("reduce", source))
                var nodes = [node]
                if case .sequence = node.node, let items = node.list(), items.count == source.upstream.count {
                    nodes = items
                }
                for (name, item) in zip(source.upstream, nodes.count == source.upstream.count ? nodes : [node]) {
                    stage.references.append(StageReference(name: name, node: item, key: "reduce"))
                }
            }
        },
        KnownKey("chunk", \.chunk) { $0.positiveInteger() },
        KnownKey("concurrency", \.concurrency) { $0.positiveInteger() },
        KnownKey("requests", \.requests) { ResourceRequests.decode($0) },
        KnownKey("max_failures", \.maxFailures) { $0.failureTolerance() },
        KnownKey("retry", \.retry) { RetryPolicy.decode($0) },
        KnownKey("result", \.result) { node in
            guard let text = node.string(expected: "executor or stdout") else { return nil }
            guard let source = ResultSource(rawValue: text) else {
                node.reportExpected("executor (what the executor sets) or stdout (what it prints)")
                return nil
            }
            return source
        },
        KnownKey("limits", \.limits) { Limits.decode($0) },
        KnownKey("sandbox", \.sandbox) { SandboxSettings.decode($0) },
        KnownKey("isolation", \.isolation) { Isolation.decode($0) },
        KnownKey("after", \.after) { node in
            node.list(expected: "a list of stage names")?.compactMap { item in
                item.string(expected: "a stage name").map { StageReference(name: $0, node: item) }
            }
        },
    ]

    /// The stage keys that may stand at the top level of a single-stage job.
    private static let shorthandKeys = [
        "executor", "params", "items", "range", "matrix", "glob", "lines", "split", "chunk", "max_failures",
        "retry", "result", "requests", "limits", "sandbox", "isolation",
    ]

    // MARK: Stages

    private func decodeStages(_ node: ConfigNode) -> [StageDraft] {
        guard let items = node.list(expected: "a list of stages") else { return [] }
        if items.isEmpty {
            node.report("expected at least one stage, found an empty list")
        }
        return items.compactMap { item in
            guard let mapping = item.mapping(expected: "a stage (a mapping)") else { return nil }
            var stage = StageDraft(name: nil, mapping: mapping)
            mapping.decode(Self.stageKeys, into: &stage)
            return stage
        }
    }

    /// Checks a stage against the catalogue and makes its definition.
    private func finish(_ stage: StageDraft) -> StageDefinition? {
        if stage.sources.count > 1 {
            let keys = stage.sources.map(\.key)
            let second = stage.mapping[keys[1]]
            diagnostics.report(
                "a stage has exactly one source of items; \(quoted(keys[0])) and \(quoted(keys[1])) cannot both be "
                    + "given", at: second?.keyMark ?? stage.mapping.mark, path: stage.mapping.path)
        }
        let source = stage.sources.first?.source ?? .none
        if let chunk = stage.chunk, case .reduce = source {
            stage.mapping["chunk"]?.report("a reduce stage is one microtask; \"chunk: \(chunk)\" has nothing to group")
        }
        guard let executorNode = stage.executor, let executor = executorNode.string(expected: "an executor name") else {
            return nil
        }
        guard let spec = catalog[executor] else {
            let loaded =
                catalog.names.isEmpty
                ? "no executors are loaded" : "loaded: \(catalog.names.joined(separator: ", "))"
            executorNode.report(
                "unknown executor \(quoted(executor))\(didYouMean(executor, among: catalog.names)) (\(loaded))")
            return nil
        }
        guard let params = params(of: stage, spec: spec, executorNode: executorNode), let name = stage.name else {
            return nil
        }
        if let paramsNode = stage.params, let mapping = paramsNode.mapping() {
            var isReduce = false
            if case .reduce = source { isReduce = true }
            for (_, value) in mapping.entries {
                value.checkTemplates(keys: source.itemKeys, isReduce: isReduce, chunked: stage.chunk != nil)
            }
        }
        var definition = StageDefinition(
            name: name, executor: executor, params: params, items: source, limits: stage.limits,
            sandbox: stage.sandbox, after: stage.after.map(\.name), chunk: stage.chunk, concurrency: stage.concurrency,
            requests: stage.requests, maxFailures: stage.maxFailures,
            result: stage.result, mark: stage.mapping.mark)
        definition.requestsMark = stage.mapping["requests"]?.node.mark
        definition.retry = stage.retry
        definition.isolation = stage.isolation
        if stage.isolation.isPooled, stage.sandbox.disabled, let node = stage.mapping["isolation"] {
            node.report(
                "isolation: pooled needs the sandbox (its pid namespace ends what a microtask leaves running); "
                    + "this stage has sandbox: none")
            return nil
        }
        return definition
    }

    /// The stage's parameters checked against `spec`, with the declared
    /// defaults added for those not given; nil after a diagnostic.
    private func params(of stage: StageDraft, spec: ExecutorSpec, executorNode: ConfigNode) -> [Param]? {
        var params: [Param] = []
        var given: Set<String> = []
        var valid = true
        if let paramsNode = stage.params {
            guard let mapping = paramsNode.mapping() else { return nil }
            for (key, value) in mapping.entries {
                given.insert(key.value)
                guard let paramSpec = spec.params.first(where: { $0.name == key.value }) else {
                    let declared = spec.params.map(\.name)
                    let hint =
                        declared.isEmpty
                        ? "; executor \(quoted(spec.name)) takes no parameters"
                        : " for executor \(quoted(spec.name))\(didYouMean(key.value, among: declared))"
                    diagnostics.report(
                        "unknown parameter \(quoted(key.value))\(hint)", at: key.mark, path: mapping.path)
                    valid = false
                    continue
                }
                if let typed = value.paramValue(of: paramSpec.type) {
                    params.append(Param(name: key.value, value: typed))
                } else {
                    valid = false
                }
            }
        }
        for paramSpec in spec.params where !given.contains(paramSpec.name) {
            if paramSpec.required {
                diagnostics.report(
                    "missing required parameter \(quoted(paramSpec.name)) for executor \(quoted(spec.name))",
                    at: stage.params?.keyMark ?? stage.mapping.mark, path: stage.params?.path ?? stage.mapping.path)
                valid = false
            } else if let text = paramSpec.defaultValue {
                guard let typed = ParamValue(text: text, type: paramSpec.type) else {
                    executorNode.report(
                        "executor \(quoted(spec.name)) of plugin \(spec.pluginPath) declares the default "
                            + "\(quoted(text)) for parameter \(quoted(paramSpec.name)), "
                            + "which is not \(paramSpec.type.expectedDescription)")
                    valid = false
                    continue
                }
                params.append(Param(name: paramSpec.name, value: typed))
            }
        }
        return valid ? params : nil
    }

    // MARK: Rules across stages

    /// Stage names are unique within the job.
    private func checkStageNames(_ stages: [StageDraft]) {
        var firstMarks: [String: Mark] = [:]
        for stage in stages {
            guard let name = stage.name, let mark = stage.nameMark else { continue }
            if let first = firstMarks[name] {
                diagnostics.report(
                    "duplicate stage name \(quoted(name)) (first given at \(first))", at: mark,
                    path: stage.mapping.path.key("name"))
            } else {
                firstMarks[name] = mark
            }
        }
    }

    /// Every name in `after` is another stage of the job, listed once, and
    /// `from:` and `reduce:` name other stages.
    private func checkAfter(_ stages: [StageDraft]) {
        let names = stages.compactMap(\.name)
        for stage in stages {
            var seen: [String: Mark] = [:]
            for reference in stage.references {
                if let first = seen[reference.name] {
                    reference.node.report("stage \(quoted(reference.name)) is already listed (at \(first))")
                    continue
                }
                seen[reference.name] = reference.node.mark
                if reference.name == stage.name {
                    reference.node.report("a stage cannot take the results of itself")
                } else if !names.contains(reference.name) {
                    reference.node.report(
                        "unknown stage \(quoted(reference.name))\(didYouMean(reference.name, among: names))")
                }
            }
            var firstMarks: [String: Mark] = [:]
            for reference in stage.after {
                if let first = firstMarks[reference.name] {
                    reference.node.report("stage \(quoted(reference.name)) is already listed (at \(first))")
                } else if reference.name == stage.name {
                    reference.node.report("a stage cannot run after itself")
                } else if !names.contains(reference.name) {
                    reference.node.report(
                        "unknown stage \(quoted(reference.name))\(didYouMean(reference.name, among: names))")
                }
                firstMarks[reference.name] = firstMarks[reference.name] ?? reference.node.mark
            }
        }
    }

    /// `after` forms no cycle. Each cycle is reported once, at the reference
    /// that closes it, naming its stages: `a after b after a`.
    private func checkCycles(_ stages: [StageDraft]) {
        var indexByName: [String: Int] = [:]
        for (index, stage) in stages.enumerated() {
            if let name = stage.name, indexByName[name] == nil {
                indexByName[name] = index
            }
        }
        // Depth-first search without recursion: `path` holds the stages being
        // visited, each with the position of the next reference to follow.
        var finished = Array(repeating: false, count: stages.count)
        for start in stages.indices where !finished[start] && stages[start].name != nil {
            var path: [(stage: Int, nextReference: Int)] = [(start, 0)]
            var onPath: Set<Int> = [start]
            while let (stage, next) = path.last {
                let edges = stages[stage].after + stages[stage].references
                guard next < edges.count else {
                    path.removeLast()
                    onPath.remove(stage)
                    finished[stage] = true
                    continue
                }
                path[path.count - 1].nextReference += 1
                let reference = edges[next]
                guard let target = indexByName[reference.name], target != stage, !finished[target] else { continue }
                if onPath.contains(target) {
                    let cycle = path.drop { $0.stage != target }.map(\.stage) + [target]
                    let names = cycle.compactMap { stages[$0].name }
                    reference.node.report(
                        "\(quoted(reference.key)) forms a cycle: \(names.joined(separator: " after "))")
                } else {
                    path.append((target, 0))
                    onPath.insert(target)
                }
            }
        }
    }
}

extension ConfigNode {
    /// `priority:`, an integer from 0 to 100.
    func priority() -> Int? {
        guard let value = integer(expected: "a priority from 0 to 100") else { return nil }
        guard (0...100).contains(value) else {
            reportExpected("a priority from 0 to 100")
            return nil
        }
        return Int(value)
    }

    /// A job or stage name: `[a-z0-9][a-z0-9_-]*`, at most 64 characters.
    func jobOrStageName() -> String? {
        guard let name = string(expected: "a name") else { return nil }
        let isValid = name.utf8.enumerated().allSatisfy { offset, byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
            case UInt8(ascii: "_"), UInt8(ascii: "-"): offset > 0
            default: false
            }
        }
        guard !name.isEmpty, isValid else {
            reportExpected("a name of lowercase letters, digits, \"_\" and \"-\" that starts with a letter or digit")
            return nil
        }
        guard name.count <= 64 else {
            report("expected a name of at most 64 characters, found one of \(name.count)")
            return nil
        }
        return name
    }

}
