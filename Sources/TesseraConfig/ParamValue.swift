// ParamValue.swift
//
// Why this file exists: a stage's `params:` are typed by what its executor
// declares. This file holds the typed values and the two ways to make one:
// from a YAML value in a job file, and from the text of a declared default
// or of `tessera run --param name=value`.

/// One key and value of a `string_map` parameter.
public struct MapEntry: Sendable, Equatable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// The value of an executor parameter, of the type the executor declares.
public enum ParamValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case number(Double)
    case boolean(Bool)
    case list([String])
    /// Entries in the order written.
    case map([MapEntry])
}

/// A named parameter of a stage.
public struct Param: Sendable, Equatable {
    public var name: String
    public var value: ParamValue

    public init(name: String, value: ParamValue) {
        self.name = name
        self.value = value
    }
}

extension ParamValue {
    /// Converts the text of a command-line value or a declared default.
    /// See `ConfigLoader.convertRunParam` for the syntax of each type.
    init?(text: String, type: ParamType) {
        switch type {
        case .string:
            self = .string(text)
        case .integer:
            guard let value = Int64(text) else { return nil }
            self = .integer(value)
        case .number:
            guard let value = parseNumber(text) else { return nil }
            self = .number(value)
        case .boolean:
            switch text {
            case "true": self = .boolean(true)
            case "false": self = .boolean(false)
            default: return nil
            }
        case .stringList:
            self = .list(
                text.isEmpty ? [] : text.split(separator: ",", omittingEmptySubsequences: false).map(String.init))
        case .stringMap:
            var entries: [MapEntry] = []
            for pair in text.isEmpty ? [] : text.split(separator: ",", omittingEmptySubsequences: false) {
                guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else { return nil }
                let key = String(pair[..<equals])
                guard !entries.contains(where: { $0.key == key }) else { return nil }
                entries.append(MapEntry(key: key, value: String(pair[pair.index(after: equals)...])))
            }
            self = .map(entries)
        }
    }
}

extension ConfigNode {
    /// The value of a parameter of `type` as written in a job file. Any
    /// scalar will do for a string (`4` is the text "4"); integers, numbers
    /// and booleans must be plain scalars; lists and mappings hold scalars.
    func paramValue(of type: ParamType) -> ParamValue? {
        switch type {
        case .string:
            return string().map(ParamValue.string)
        case .integer:
            return integer().map(ParamValue.integer)
        case .number:
            return number().map(ParamValue.number)
        case .boolean:
            return boolean().map(ParamValue.boolean)
        case .stringList:
            return stringList().map(ParamValue.list)
        case .stringMap:
            return stringMap().map(ParamValue.map)
        }
    }
}
