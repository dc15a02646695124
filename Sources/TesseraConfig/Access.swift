// Access.swift
//
// Why this file exists: the control socket decides who may read and who may
// change state from the peer's credentials, by rules the operator writes in
// `access:` of tessera.yaml. This file holds those rules and their decoding;
// names are looked up when the file is loaded, so the daemon compares
// numbers.

/// Who may do what on the control socket.
public struct AccessRules: Sendable, Equatable {
    /// A user or a group, by number.
    public enum Principal: Sendable, Equatable {
        case user(UInt32)
        case group(UInt32)
    }

    /// Who may read (status, lists, runs, tasks, output, watch). Nil: anyone
    /// who can connect (the socket's mode decides).
    public var read: [Principal]?
    /// Who may change state (start, cancel, reload). Nil: root and the
    /// daemon's own user. Admins may read too; root is always an admin.
    public var admin: [Principal]?

    public init(read: [Principal]? = nil, admin: [Principal]? = nil) {
        self.read = read
        self.admin = admin
    }

    static let knownKeys: [KnownKey<AccessRules>] = [
        KnownKey("read", \.read) { $0.principals() },
        KnownKey("admin", \.admin) { $0.principals() },
    ]

    static func decode(_ node: ConfigNode) -> AccessRules? {
        guard let mapping = node.mapping(expected: "a mapping with read and admin") else { return nil }
        var rules = AccessRules()
        mapping.decode(knownKeys, into: &rules)
        return rules
    }
}

extension ConfigNode {
    /// A list such as `[user: root, group: tessera]`.
    func principals() -> [AccessRules.Principal]? {
        list(expected: "a list such as [user: root, group: tessera]") { $0.principal() }
    }

    /// One `user: NAME|UID` or `group: NAME|GID`.
    private func principal() -> AccessRules.Principal? {
        guard let mapping = mapping(expected: "user: NAME or group: NAME") else { return nil }
        var draft = PrincipalDraft()
        mapping.decode(PrincipalDraft.knownKeys, into: &draft)
        switch (draft.user, draft.group, mapping.entries.count) {
        case (let uid?, nil, 1): return .user(uid)
        case (nil, let gid?, 1): return .group(gid)
        case (_, _, let count) where count != 1:
            reportExpected("one of user: NAME or group: NAME")
            return nil
        default: return nil
        }
    }
}

/// A `{user: ...}` or `{group: ...}` entry as written.
private struct PrincipalDraft {
    var user: UInt32?
    var group: UInt32?

    static let knownKeys: [KnownKey<PrincipalDraft>] = [
        KnownKey("user", \.user) { node in
            switch node.sandboxUser() {
            case .id(let uid, _)?: return uid
            case .dynamic?:
                node.reportExpected("a user name or a uid")
                return nil
            case nil: return nil
            }
        },
        KnownKey("group", \.group) { $0.sandboxGroup() },
    ]
}
