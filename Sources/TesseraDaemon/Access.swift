// Who may call what on the control socket, from the peer's credentials
// (SO_PEERCRED, read once when the connection is accepted) and the
// `access:` rules of tessera.yaml. Reading is status, lists and watching;
// changing state is starting and cancelling runs and reloading. Root is
// always an admin.

internal import CTesseraShims
import TesseraConfig

#if canImport(Glibc)
    import Glibc
#endif

/// The process at the other end of a connection.
struct Peer: CustomStringConvertible {
    let pid: Int32
    let uid: UInt32
    /// The primary group and the supplementary groups.
    let groups: [UInt32]

    /// The peer of a connected Unix socket; nil if the kernel does not say.
    init?(fd: Int32) {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        guard tessera_peer_credentials(fd, &pid, &uid, &gid) == 0 else { return nil }
        self.pid = pid
        self.uid = uid
        groups = [gid] + Peer.supplementaryGroups(of: pid)
    }

    /// The "Groups:" line of /proc/<pid>/status.
    private static func supplementaryGroups(of pid: Int32) -> [UInt32] {
        let status = readText("/proc/\(pid)/status") ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Groups:") }) else { return [] }
        return line.dropFirst("Groups:".count).split(whereSeparator: \.isWhitespace).compactMap { UInt32($0) }
    }

    func matches(_ principals: [AccessRules.Principal]) -> Bool {
        principals.contains { principal in
            switch principal {
            case .user(let id): return uid == id
            case .group(let id): return groups.contains(id)
            }
        }
    }

    var description: String { "uid \(uid) gid \(groups.first ?? 0) pid \(pid)" }

    /// The user's name, or "uid N" when it has none, for the record of who started a run.
    var userName: String {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "uid \(uid)" }
        return String(cString: name)
    }
}

enum Access {
    /// The methods that change state; every other method only reads.
    static let adminMethods: Set<String> = [
        "io.tessera.Manager.StartRun", "io.tessera.Manager.CancelRun", "io.tessera.Manager.Reload",
        "io.tessera.Manager.AddItems", "io.tessera.Manager.RerunRun", "io.tessera.Manager.DeleteRun",
    ]

    static func isAdmin(_ peer: Peer, rules: AccessRules) -> Bool {
        if peer.uid == 0 { return true }
        return rules.admin.map(peer.matches) ?? (peer.uid == geteuid())
    }

    /// Whether `peer` may call `method`.
    static func allows(_ peer: Peer, _ method: String, rules: AccessRules) -> Bool {
        if isAdmin(peer, rules: rules) { return true }
        guard !adminMethods.contains(method) else { return false }
        return rules.read.map(peer.matches) ?? true
    }
}
