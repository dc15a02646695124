// ExecutorCatalog.swift
//
// Why this file exists: job files are checked against what the loaded plugins
// declare, when the file is loaded rather than when a task runs. These types
// describe those declarations; the plugin loader fills them in and hands the
// catalogue to `ConfigLoader`.

/// The type of an executor parameter, named as plugins and messages name it.
public enum ParamType: String, Sendable, Equatable, CaseIterable {
    case string
    case integer
    case number
    case boolean
    case stringList = "string_list"
    case stringMap = "string_map"

    /// How a message names a value of this type: `expected a list of strings, …`.
    var expectedDescription: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .number: "a number"
        case .boolean: "true or false"
        case .stringList: "a list of strings"
        case .stringMap: "a mapping of strings"
        }
    }
}

/// One parameter an executor declares.
public struct ParamSpec: Sendable, Equatable {
    public var name: String
    public var type: ParamType
    public var required: Bool
    /// The value used when a stage does not give one, written as
    /// `tessera run --param` would write it (see `ConfigLoader.convertRunParam`).
    public var defaultValue: String?
    public var description: String

    public init(
        name: String, type: ParamType, required: Bool = false, defaultValue: String? = nil, description: String = ""
    ) {
        self.name = name
        self.type = type
        self.required = required
        self.defaultValue = defaultValue
        self.description = description
    }
}

/// One executor, as a plugin declares it.
public struct ExecutorSpec: Sendable, Equatable {
    public var name: String
    /// The plugin's name, e.g. `shell`.
    public var plugin: String
    /// The shared object the plugin was loaded from.
    public var pluginPath: String
    public var description: String
    public var params: [ParamSpec]

    public init(name: String, plugin: String, pluginPath: String, description: String = "", params: [ParamSpec] = []) {
        self.name = name
        self.plugin = plugin
        self.pluginPath = pluginPath
        self.description = description
        self.params = params
    }
}

/// The executors of all loaded plugins, by name.
public struct ExecutorCatalog: Sendable {
    private let executorsByName: [String: ExecutorSpec]

    /// The executor names, sorted.
    public let names: [String]

    /// A catalogue of `executors`. Names are expected to be unique (the plugin
    /// loader refuses duplicates); should one repeat, the first is kept.
    public init(_ executors: [ExecutorSpec]) {
        var executorsByName: [String: ExecutorSpec] = [:]
        for executor in executors where executorsByName[executor.name] == nil {
            executorsByName[executor.name] = executor
        }
        self.executorsByName = executorsByName
        self.names = executorsByName.keys.sorted()
    }

    public subscript(name: String) -> ExecutorSpec? {
        executorsByName[name]
    }
}
