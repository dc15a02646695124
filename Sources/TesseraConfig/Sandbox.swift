// Sandbox.swift
//
// Why this file exists: how a microtask is isolated is written in two places,
// a stage's `sandbox:` and the server's `defaults.sandbox`, with the same
// keys. This file holds the type, its keys, the checks that need the system
// (user and group names are looked up, writable paths must exist when the
// file is loaded) and how a stage's settings combine with the defaults. What
// each setting does is the daemon's business; this layer only checks that it
// is well written.

/// How the microtasks of a stage are sandboxed. Nil means "not set here".
public struct SandboxSettings: Sendable, Equatable {
    /// Whom a microtask runs as.
    public enum User: Sendable, Equatable {
        /// A user and group by number; names are looked up when the file is loaded.
        case id(uid: UInt32, gid: UInt32)
        /// `user: dynamic`: the daemon picks the user.
        case dynamic
    }

    /// Whether a microtask shares the host's network or has none.
    public enum Network: String, Sendable, CaseIterable {
        case none
        case host
    }

    /// Whether a microtask's `/tmp` is its own or the host's.
    public enum Tmp: String, Sendable, CaseIterable {
        case `private`
        case shared
    }

    /// A kind of Linux namespace a microtask gets its own of.
    public enum Namespace: String, Sendable, CaseIterable {
        case pid
        case ipc
        case uts
        case mount
        case user
        /// The same as `network: none`.
        case net
    }

    /// The system calls a microtask may make, before `allowSyscalls` and `denySyscalls`.
    public enum SyscallProfile: String, Sendable, CaseIterable {
        case `default`
        case compute
        case none
    }

    /// `sandbox: none`: no sandbox, only the limits. The other settings are then nil.
    public var disabled: Bool
    /// `user`, with `group`.
    public var user: User?
    /// `network`.
    public var network: Network?
    /// `filesystem.read_only`: absolute paths.
    public var readOnly: [String]?
    /// `filesystem.writable`: absolute paths that existed when the file was loaded.
    public var writable: [String]?
    /// `filesystem.hidden`: absolute paths.
    public var hidden: [String]?
    /// `filesystem.tmp`.
    public var tmp: Tmp?
    /// `filesystem.tmp_size`: the size of the private /tmp, in bytes.
    public var tmpSize: UInt64?
    /// `namespaces`, in the order written.
    public var namespaces: [Namespace]?
    /// `syscalls`.
    public var syscalls: SyscallProfile?
    /// `allow_syscalls`: names of `[a-z0-9_]+`, not checked against a syscall table.
    public var allowSyscalls: [String]?
    /// `deny_syscalls`: names of `[a-z0-9_]+`, not checked against a syscall table.
    public var denySyscalls: [String]?
    /// `landlock`.
    public var landlock: Bool?
    /// `environment`: the microtask's whole environment (the daemon adds
    /// `PATH` when it is not given), in the order written.
    public var environment: [MapEntry]?

    /// Settings that set nothing.
    public init() {
        disabled = false
    }

    /// These settings on top of `base`: each setting set here wins, the
    /// others come from `base`. `sandbox: none` here wins over any base; over
    /// a base that is `none`, settings that set something start afresh and
    /// settings that set nothing (a stage without `sandbox:`, or with `{}`)
    /// keep the base. A stage's settings overlaid on the server's defaults.
    public func overlaid(on base: SandboxSettings) -> SandboxSettings {
        if disabled { return self }
        if base.disabled { return self == SandboxSettings() ? base : self }
        var settings = SandboxSettings()
        settings.user = user ?? base.user
        settings.network = network ?? base.network
        settings.readOnly = readOnly ?? base.readOnly
        settings.writable = writable ?? base.writable
        settings.hidden = hidden ?? base.hidden
        settings.tmp = tmp ?? base.tmp
        settings.tmpSize = tmpSize ?? base.tmpSize
        settings.namespaces = namespaces ?? base.namespaces
        settings.syscalls = syscalls ?? base.syscalls
        settings.allowSyscalls = allowSyscalls ?? base.allowSyscalls
        settings.denySyscalls = denySyscalls ?? base.denySyscalls
        settings.landlock = landlock ?? base.landlock
        settings.environment = environment ?? base.environment
        return settings
    }

    /// Decodes `sandbox:`: the scalar `none` or a mapping of settings.
    static func decode(_ node: ConfigNode) -> SandboxSettings? {
        if case .scalar(let scalar) = node.node, scalar.value == "none" {
            var settings = SandboxSettings()
            settings.disabled = true
            return settings
        }
        guard let mapping = node.mapping(expected: "none or a mapping of sandbox settings") else { return nil }
        var draft = SandboxDraft()
        mapping.decode(SandboxDraft.knownKeys, into: &draft)
        if let groupNode = mapping["group"] {
            switch draft.settings.user {
            case .id(let uid, _):
                if let gid = draft.gid {
                    draft.settings.user = .id(uid: uid, gid: gid)
                }
            case .dynamic:
                node.diagnostics.report(
                    "\"group\" cannot be given with user \"dynamic\"", at: groupNode.keyMark, path: mapping.path)
            case nil where mapping["user"] == nil:
                node.diagnostics.report(
                    "\"group\" cannot be given without \"user\"", at: groupNode.keyMark, path: mapping.path)
            case nil:
                break  // The user was reported already.
            }
        }
        return draft.settings
    }
}

/// What a sandbox mapping says, before `group` is combined with `user`.
private struct SandboxDraft {
    var settings = SandboxSettings()
    var gid: UInt32?

    static let knownKeys: [KnownKey<SandboxDraft>] = [
        KnownKey("user", \.settings.user) { $0.sandboxUser() },
        KnownKey("group", \.gid) { $0.sandboxGroup() },
        KnownKey("network", \.settings.network) { $0.oneOf() },
        KnownKey("filesystem") { draft, node in
            node.mapping()?.decode(filesystemKeys, into: &draft.settings)
        },
        KnownKey("namespaces", \.settings.namespaces) { node in
            node.list(expected: "a list of namespaces") { $0.oneOf() }
        },
        KnownKey("syscalls", \.settings.syscalls) { $0.oneOf() },
        KnownKey("allow_syscalls", \.settings.allowSyscalls) { node in
            node.list(expected: "a list of syscall names") { $0.syscallName() }
        },
        KnownKey("deny_syscalls", \.settings.denySyscalls) { node in
            node.list(expected: "a list of syscall names") { $0.syscallName() }
        },
        KnownKey("landlock", \.settings.landlock) { $0.boolean() },
        KnownKey("environment", \.settings.environment) { $0.stringMap() },
    ]

    /// The keys of `filesystem:`.
    static let filesystemKeys: [KnownKey<SandboxSettings>] = [
        KnownKey("read_only", \.readOnly) { node in
            node.list(expected: "a list of absolute paths") { $0.absolutePath() }
        },
        KnownKey("writable", \.writable) { node in
            node.list(expected: "a list of absolute paths") { $0.existingPath() }
        },
        KnownKey("hidden", \.hidden) { node in
            node.list(expected: "a list of absolute paths") { $0.absolutePath() }
        },
        KnownKey("tmp", \.tmp) { $0.oneOf() },
        // size() refuses 0, which would give a tmpfs no bound at all.
        KnownKey("tmp_size", \.tmpSize) { $0.size() },
    ]
}

extension ConfigNode {
    /// One of the cases of `Value`, written as its raw value: `network: host`.
    func oneOf<Value: RawRepresentable & CaseIterable>() -> Value? where Value.RawValue == String {
        let names = Value.allCases.map(\.rawValue)
        let expected = names.dropLast().joined(separator: ", ") + " or " + names[names.count - 1]
        guard let text = string(expected: expected) else { return nil }
        guard let value = Value(rawValue: text) else {
            reportExpected(expected)
            return nil
        }
        return value
    }

    /// A path that starts with `/`.
    func absolutePath() -> String? {
        guard let path = string(expected: "an absolute path") else { return nil }
        guard path.hasPrefix("/"), !path.utf8.contains(0) else {
            reportExpected("an absolute path")
            return nil
        }
        return path
    }

    /// An absolute path to something that exists now.
    func existingPath() -> String? {
        guard let path = absolutePath() else { return nil }
        do {
            guard try POSIX.pathExists(path) else {
                report("\(quoted(path)) does not exist")
                return nil
            }
            return path
        } catch {
            report("cannot check \(quoted(path)): \(error.reason)")
            return nil
        }
    }

    /// A system call's name: `[a-z0-9_]+`.
    func syscallName() -> String? {
        let expected = "a syscall name of lowercase letters, digits and \"_\""
        guard let name = string(expected: expected) else { return nil }
        let isValid = name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"): true
            default: false
            }
        }
        guard !name.isEmpty, isValid else {
            reportExpected(expected)
            return nil
        }
        return name
    }

    /// `user:`: `dynamic`; a uid, whose gid is the same number; or a user
    /// name, looked up now, whose gid is the user's primary group. `dynamic`
    /// is always the keyword, never a user of that name.
    func sandboxUser() -> SandboxSettings.User? {
        let expected = "a user name, a uid or dynamic"
        guard let text = string(expected: expected) else { return nil }
        if text == "dynamic" { return .dynamic }
        switch account(text, expected: expected, idNoun: "uid") {
        case .number(let uid):
            return .id(uid: uid, gid: uid)
        case .name(let name):
            return lookUp(name, noun: "user", in: POSIX.userIDs(named:)).map { .id(uid: $0.uid, gid: $0.gid) }
        case nil:
            return nil
        }
    }

    /// `group:`: a gid, or a group name, looked up now.
    func sandboxGroup() -> UInt32? {
        let expected = "a group name or a gid"
        guard let text = string(expected: expected) else { return nil }
        switch account(text, expected: expected, idNoun: "gid") {
        case .number(let gid):
            return gid
        case .name(let name):
            return lookUp(name, noun: "group", in: POSIX.groupID(named:))
        case nil:
            return nil
        }
    }

    /// A user or group as written: a number when it is all digits, else a name.
    private enum Account {
        case number(UInt32)
        case name(String)
    }

    /// `text` as a user or group; nil after a diagnostic. The largest
    /// 32-bit number is refused: it is -1, which means "no change" to setuid.
    private func account(_ text: String, expected: String, idNoun: String) -> Account? {
        guard !text.isEmpty, !text.utf8.contains(0) else {
            reportExpected(expected)
            return nil
        }
        guard text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return .name(text)
        }
        guard let id = UInt32(text), id != UInt32.max else {
            reportExpected("a \(idNoun) below \(UInt32.max)")
            return nil
        }
        return .number(id)
    }

    /// What `database` finds under `name`; nil after a diagnostic.
    private func lookUp<Found>(
        _ name: String, noun: String, in database: (String) throws(POSIXError) -> Found?
    ) -> Found? {
        do {
            guard let found = try database(name) else {
                report("unknown \(noun) \(quoted(name))")
                return nil
            }
            return found
        } catch {
            report("cannot look up \(noun) \(quoted(name)): \(error.reason)")
            return nil
        }
    }
}
