// Per-microtask cgroups. Where the daemon finds a cgroup v2 hierarchy it
// may write to (systemd's Delegate=yes, or root in a container), it makes
// one directory the worker creates a cgroup per sandboxed microtask in:
// cgroup.kill ends everything the microtask started, and with the memory,
// pids and cpu controllers delegated, memory.max, pids.max and cpu.max
// enforce its limits exactly. Without controllers (a cgroup v1 host, where
// they belong to v1 hierarchies) the cgroups still kill and account.

internal import CTesseraWire

#if canImport(Glibc)
    import Glibc
#endif

/// Where cgroup v2 is and what it offers the daemon, read from /proc.
struct CgroupProbe: Equatable {
    /// The cgroup2 mount point, e.g. /sys/fs/cgroup.
    let mount: String
    /// The daemon's own cgroup below it ("/" for the root).
    let ownPath: String
    /// Controllers available in the daemon's cgroup (cgroup.controllers).
    let available: Set<String>

    var directory: String { ownPath == "/" ? mount : mount + ownPath }

    static func probe() -> CgroupProbe? {
        guard let mount = cgroup2Mount(), let ownPath = ownCgroupPath() else { return nil }
        let directory = ownPath == "/" ? mount : mount + ownPath
        guard access(directory, W_OK) == 0 else { return nil }
        let controllers = readText(directory + "/cgroup.controllers") ?? ""
        return CgroupProbe(
            mount: mount, ownPath: ownPath, available: Set(controllers.split(separator: " ").map(String.init)))
    }

    /// The mount point of the cgroup2 file system, from mountinfo.
    private static func cgroup2Mount() -> String? {
        for line in (readText("/proc/self/mountinfo") ?? "").split(separator: "\n") {
            // "... mount-point options - fstype source super-options"
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            if fields.count > 4 { return String(fields[4]) }
        }
        return nil
    }

    /// The "0::/path" line of /proc/self/cgroup.
    private static func ownCgroupPath() -> String? {
        for line in (readText("/proc/self/cgroup") ?? "").split(separator: "\n") where line.hasPrefix("0::") {
            return String(line.dropFirst(3))
        }
        return nil
    }

    /// The controllers the worker can use for limits.
    static let wanted: [(name: String, flag: tw_cgroup_controllers)] = [
        ("memory", TW_CGROUP_MEMORY), ("pids", TW_CGROUP_PIDS), ("cpu", TW_CGROUP_CPU),
    ]
}

/// The directory the worker makes microtask cgroups in, set up at start and
/// removed at exit.
final class CgroupTree {
    let tasksDirectory: String
    let controllers: UInt32

    /// Prepares the tree. In the root cgroup (a container), a directory of
    /// our own below it; in a delegated cgroup, the daemon moves itself to a
    /// leaf ("daemon") so its children may get controllers ("no internal
    /// processes"), and the microtasks go below "tasks".
    init?(_ probe: CgroupProbe) {
        let base = probe.directory
        let tasks: String
        if probe.ownPath == "/" {
            CgroupTree.removeStale(in: base)
            tasks = base + "/tessera-\(getpid())"
        } else {
            let leaf = base + "/daemon"
            guard CgroupTree.makeDirectory(leaf), CgroupTree.write("\(getpid())", to: leaf + "/cgroup.procs")
            else { return nil }
            tasks = base + "/tasks"
        }
        var controllers: UInt32 = 0
        for (name, flag) in CgroupProbe.wanted where probe.available.contains(name) {
            if CgroupTree.write("+\(name)", to: base + "/cgroup.subtree_control") { controllers |= flag.rawValue }
        }
        guard CgroupTree.makeDirectory(tasks) else { return nil }
        // Microtasks of a daemon that was killed outright may remain.
        CgroupTree.killAndRemoveTasks(in: tasks)
        for (name, flag) in CgroupProbe.wanted where controllers & flag.rawValue != 0 {
            if !CgroupTree.write("+\(name)", to: tasks + "/cgroup.subtree_control") {
                controllers &= ~flag.rawValue
            }
        }
        self.tasksDirectory = tasks
        self.controllers = controllers
    }

    var controllerNames: [String] {
        CgroupProbe.wanted.filter { controllers & $0.flag.rawValue != 0 }.map(\.name)
    }

    /// One line for the start-up log.
    var note: String {
        let names = controllerNames
        return "per-microtask cgroups in \(tasksDirectory) "
            + (names.isEmpty
                ? "(no memory, pids or cpu controller: limits by rlimits, cgroups kill and account)"
                : "with \(names.joined(separator: ", "))")
    }

    /// The CONFIG frame for the worker.
    var configFrame: FrameWriter {
        var frame = FrameWriter(type: UInt8(TW_MSG_CONFIG.rawValue))
        frame.str(tasksDirectory)
        frame.u32(controllers)
        return frame
    }

    /// Removes the tasks directory once the worker has removed the
    /// microtasks' cgroups (an rmdir of a cgroup with children fails
    /// harmlessly).
    func remove() {
        rmdir(tasksDirectory)
    }

    private static func makeDirectory(_ path: String) -> Bool {
        mkdir(path, 0o755) == 0 || errno == EEXIST
    }

    private static func write(_ text: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
    }

    /// Removes empty tessera-<pid> directories of daemons that are gone.
    private static func removeStale(in base: String) {
        let stale = (directoryEntries(base) ?? []).filter { name in
            guard name.hasPrefix("tessera-"), let pid = Int32(name.dropFirst("tessera-".count)) else { return false }
            return kill(pid, 0) != 0 && errno == ESRCH
        }.map { base + "/" + $0 }
        for path in stale {
            killAndRemoveTasks(in: path)
            rmdir(path)
        }
    }

    /// Kills what is left in the task-* cgroups below a directory and
    /// removes them.
    private static func killAndRemoveTasks(in directory: String) {
        let children = (directoryEntries(directory) ?? []).filter { $0.hasPrefix("task-") }.map { directory + "/" + $0 }
        for child in children {
            _ = write("1", to: child + "/cgroup.kill")
            rmdir(child)
        }
    }
}

/// The names in a directory (without "." and ".."), or nil with errno set.
func directoryEntries(_ path: String) -> [String]? {
    guard let dir = opendir(path) else { return nil }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// The whole of a small file, or nil.
func readText(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self).trimmingTrailingNewlines
}

extension String {
    fileprivate var trimmingTrailingNewlines: String {
        var copy = self
        while copy.hasSuffix("\n") { copy.removeLast() }
        return copy
    }
}
