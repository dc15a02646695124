// The sandbox a stage's microtasks get: the job's `sandbox:` settings over
// the server's `defaults.sandbox`, over the safe built-in defaults, turned
// into the flags and lists the worker applies (tessera_wire.h), and into
// the summary `tesserad --check` prints.

internal import CTesseraShims
internal import CTesseraWire
import TesseraConfig
import TesseraEngine

#if canImport(Glibc)
    import Glibc
#endif

/// What the kernel and the daemon's privileges allow, probed once.
struct HostCapabilities {
    let isRoot: Bool
    /// The Landlock ABI version, 0 when the kernel has none.
    let landlockABI: Int
    /// The cgroup v2 hierarchy the daemon may write to, if any.
    let cgroup: CgroupProbe?
    /// uid and gid of `nobody`, the default identity when running as root.
    let nobody: (uid: UInt32, gid: UInt32)
    /// CAP_SYS_ADMIN and CAP_SYS_CHROOT are effective, which the worker (it
    /// has the daemon's capabilities) needs to let microtasks join cells
    /// (setns into a mount namespace).
    var canJoinMounts = false

    static let current: HostCapabilities = {
        var nobody: (UInt32, UInt32) = (65534, 65534)
        if let entry = getpwnam("nobody") { nobody = (entry.pointee.pw_uid, entry.pointee.pw_gid) }
        return HostCapabilities(
            isRoot: geteuid() == 0, landlockABI: Int(tessera_landlock_abi()),
            cgroup: CgroupProbe.probe(), nobody: nobody, canJoinMounts: effectiveCapabilities(include: [18, 21]))
    }()

    /// Whether every capability numbered in `wanted` is in this process's
    /// effective set (CapEff in /proc/self/status).
    static func effectiveCapabilities(include wanted: [Int]) -> Bool {
        guard let file = fopen("/proc/self/status", "r") else { return false }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard text.hasPrefix("CapEff:") else { continue }
            let hex = text.dropFirst("CapEff:".count).filter { $0.isHexDigit }
            guard let mask = UInt64(hex, radix: 16) else { return false }
            return wanted.allSatisfy { mask & (1 << UInt64($0)) != 0 }
        }
        return false
    }

    /// One line for the start-up log about how limits are enforced.
    var enforcementNote: String {
        var parts: [String] = []
        if let cgroup {
            let limiting = CgroupProbe.wanted.map(\.name).filter { cgroup.available.contains($0) }
            parts.append(
                limiting.isEmpty
                    ? "cgroup v2 at \(cgroup.directory) has no memory, pids or cpu controller "
                        + "(a cgroup v1 host): limits are enforced with rlimits, cgroups kill and account"
                    : "cgroup v2 at \(cgroup.directory) with \(limiting.joined(separator: ", "))")
        } else {
            parts.append("no writable cgroup v2 hierarchy: limits are enforced with rlimits only")
        }
        parts.append(landlockABI > 0 ? "Landlock ABI \(landlockABI)" : "Landlock not available in this kernel")
        if !isRoot { parts.append("not root: microtasks get a user namespace") }
        return parts.joined(separator: "; ")
    }
}

/// The sandbox of a stage as the worker applies it.
struct ResolvedSandbox: Equatable {
    var flags: UInt32 = 0
    var uid = UInt32(TW_ID_UNCHANGED)
    var gid = UInt32(TW_ID_UNCHANGED)
    var syscalls: SandboxSettings.SyscallProfile = SandboxSettings.SyscallProfile.none
    var readOnly: [String] = []
    var writable: [String] = []
    var hidden: [String] = []
    var allowSyscalls: [String] = []
    var denySyscalls: [String] = []
    var environment: [String] = []
    /// The size of the private /tmp.
    var tmpSize = ResolvedSandbox.defaultTmpSize
    /// The paths of `hidden` that the stage did not ask for: the daemon's
    /// own files, and /run with `network: none`.
    var hiddenByDefault: [String] = []
    /// `user: dynamic`: every microtask gets a uid (and gid) of its own
    /// from DynamicUsers, sent with the task.
    var dynamicUser = false

    /// What every microtask's environment has unless its stage sets the
    /// variable: a PATH, and a locale, so that locale-dependent tools
    /// (`wc -w`, `sort`) behave the same in every microtask.
    static let defaultEnvironment = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
    ]

    static let defaultTmpSize: UInt64 = 256 << 20

    /// `declared` (NAME=value each) with the default variables it does not set.
    static func environment(_ declared: [String]) -> [String] {
        let missing = defaultEnvironment.filter { entry in
            let name = entry.prefix { $0 != "=" } + "="
            return !declared.contains { $0.hasPrefix(name) }
        }
        return missing + declared
    }

    func has(_ flag: tw_sandbox_flags) -> Bool { flags & flag.rawValue != 0 }

    /// Applies the safe defaults to whatever the settings leave unset.
    /// `protected` are the daemon's own files (ServerConfig.protectedPaths),
    /// hidden from the microtask unless the stage names them.
    init(_ settings: SandboxSettings, host: HostCapabilities = .current, protected: [String] = []) {
        guard !settings.disabled else {
            environment = ResolvedSandbox.defaultEnvironment
            return
        }
        flags = TW_SANDBOX_ENABLED.rawValue
        let namespaces = settings.namespaces ?? [.pid, .ipc, .uts, .mount]
        for namespace in namespaces {
            switch namespace {
            case .pid: flags |= TW_SANDBOX_NS_PID.rawValue
            case .ipc: flags |= TW_SANDBOX_NS_IPC.rawValue
            case .uts: flags |= TW_SANDBOX_NS_UTS.rawValue
            case .mount: flags |= TW_SANDBOX_NS_MOUNT.rawValue
            case .user where !host.isRoot: flags |= TW_SANDBOX_NS_USER.rawValue
            case .user: break  // A root daemon maps no users: the task would be root on the host.
            case .net: flags |= TW_SANDBOX_NETWORK_NONE.rawValue
            }
        }
        if !host.isRoot { flags |= TW_SANDBOX_NS_USER.rawValue }
        if (settings.network ?? SandboxSettings.Network.none) == SandboxSettings.Network.none {
            flags |= TW_SANDBOX_NETWORK_NONE.rawValue
        }
        if (settings.tmp ?? SandboxSettings.Tmp.private) == SandboxSettings.Tmp.private {
            flags |= TW_SANDBOX_PRIVATE_TMP.rawValue
        }
        if settings.landlock ?? true { flags |= TW_SANDBOX_LANDLOCK.rawValue }
        switch settings.user {
        case .id(let uid, let gid)?:
            (self.uid, self.gid) = (uid, gid)
        case .dynamic?:
            // The stage's identity stays nobody, never the daemon's, should
            // a task ever go out without a uid of its own.
            dynamicUser = true
            if host.isRoot { (uid, gid) = host.nobody }
        case nil:
            // A root daemon gives every microtask a uid of its own: under
            // one shared uid (nobody), one microtask could use up the
            // per-user kernel limits (processes, inotify instances, ...) of
            // all the others. Without root a user namespace maps the
            // daemon's own user, the only one it has.
            if host.isRoot {
                dynamicUser = true
                (uid, gid) = host.nobody
            }
        }
        syscalls = settings.syscalls ?? .default
        if has(TW_SANDBOX_NS_MOUNT) {
            readOnly = settings.readOnly ?? ["/"]
            writable = settings.writable ?? []
            hidden = settings.hidden ?? []
            // Without a network, the host's Unix sockets are out of reach
            // too: most live under /run.
            let named = Set(readOnly + writable + hidden)
            let defaults = protected + (has(TW_SANDBOX_NETWORK_NONE) ? ["/run"] : [])
            for path in defaults where !named.contains(path) && !hiddenByDefault.contains(path) {
                hiddenByDefault.append(path)
            }
            hidden += hiddenByDefault
            tmpSize = settings.tmpSize ?? ResolvedSandbox.defaultTmpSize
        } else {
            // Without a mount namespace there is no file system view to
            // change; Daemon.load refuses stages that ask for one.
            flags &= ~TW_SANDBOX_PRIVATE_TMP.rawValue
        }
        allowSyscalls = settings.allowSyscalls ?? []
        denySyscalls = settings.denySyscalls ?? []
        environment = ResolvedSandbox.environment((settings.environment ?? []).map { "\($0.key)=\($0.value)" })
    }

    /// This sandbox with a run's directory writable (in a mount namespace;
    /// without one the whole file system is as the daemon sees it).
    func withRunDirectory(_ path: String) -> ResolvedSandbox {
        guard has(TW_SANDBOX_NS_MOUNT), !writable.contains(path) else { return self }
        var copy = self
        copy.writable.append(path)
        return copy
    }

    /// Whether a microtask of this sandbox needs a cgroup of its own: when
    /// a delegated controller enforces one of its limits, or when there is
    /// no pid namespace to end what it leaves behind. Otherwise a cgroup
    /// would cost a mkdir and an rmdir a microtask and give nothing.
    func needsCgroup(limits: Limits, controllers: UInt32) -> Bool {
        guard has(TW_SANDBOX_ENABLED) else { return false }
        let enforced =
            (limits.memory != nil && controllers & TW_CGROUP_MEMORY.rawValue != 0)
            || (limits.processes != nil && controllers & TW_CGROUP_PIDS.rawValue != 0)
            || (limits.cpuQuota != nil && controllers & TW_CGROUP_CPU.rawValue != 0)
        return enforced || !has(TW_SANDBOX_NS_PID)
    }

    /// Whether the worker forks this sandbox's microtasks from stems
    /// (tesserad(8)): it takes a cell (a root daemon, a dynamic user, the
    /// pid and mount namespaces), and a syscall filter that lets the stem
    /// fork, wait and kill. The worker also needs ptrace, and no cgroup per
    /// microtask.
    func usesStems(host: HostCapabilities = .current) -> Bool {
        let filter = syscalls == .none || (syscalls == .default && denySyscalls.isEmpty)
        return has(TW_SANDBOX_ENABLED) && has(TW_SANDBOX_NS_MOUNT) && wouldUseCells(host: host)
            && host.canJoinMounts && filter
    }

    /// A uid of its own per microtask and a pid namespace, in a root daemon
    /// without a user namespace: what cells need, but CAP_SYS_CHROOT.
    func wouldUseCells(host: HostCapabilities) -> Bool {
        has(TW_SANDBOX_NS_PID) && dynamicUser && host.isRoot && !has(TW_SANDBOX_NS_USER)
    }

    /// The sandbox fields of a STAGE frame; `cgroup` adds TW_SANDBOX_CGROUP.
    func write(to frame: inout FrameWriter, cgroup: Bool) {
        frame.u32(cgroup ? flags | TW_SANDBOX_CGROUP.rawValue : flags)
        frame.u32(uid)
        frame.u32(gid)
        switch syscalls {
        case SandboxSettings.SyscallProfile.none: frame.u8(UInt8(TW_SYSCALLS_NONE.rawValue))
        case .default: frame.u8(UInt8(TW_SYSCALLS_DEFAULT.rawValue))
        case .compute: frame.u8(UInt8(TW_SYSCALLS_COMPUTE.rawValue))
        }
        frame.u64(tmpSize)
        for list in [readOnly, writable, hidden, allowSyscalls, denySyscalls, environment] {
            frame.u32(UInt32(list.count))
            list.forEach { frame.str($0) }
        }
    }

    /// The confinement in a few lines, for `tesserad --check`.
    func summary(limits: Limits, host: HostCapabilities = .current) -> [String] {
        guard has(TW_SANDBOX_ENABLED) else {
            return [
                "sandbox: none (rlimits, own session, closed descriptors, no_new_privs only; the daemon's "
                    + "files are not hidden)"
            ]
        }
        let names: [(tw_sandbox_flags, String)] = [
            (TW_SANDBOX_NS_PID, "pid"), (TW_SANDBOX_NS_IPC, "ipc"), (TW_SANDBOX_NS_UTS, "uts"),
            (TW_SANDBOX_NS_MOUNT, "mount"), (TW_SANDBOX_NS_USER, "user"), (TW_SANDBOX_NETWORK_NONE, "net"),
        ]
        let namespaces = names.filter { has($0.0) }.map(\.1)
        let identity: String
        if dynamicUser {
            identity =
                "dynamic: a uid and gid of its own for each running microtask, from \(DynamicUsers.firstID) to "
                + "\(DynamicUsers.lastID), locked in \(DynamicUsers.lockDirectory) as systemd locks its own"
        } else if uid == UInt32(TW_ID_UNCHANGED) {
            identity = "the daemon's user"
        } else {
            identity = "uid \(uid) gid \(gid)"
        }
        let written = (writable + ["the run directory, if the stage names it"]).joined(separator: " ")
        var filesystem = "filesystem: read-only \(readOnly.joined(separator: " ")); writable \(written)"
        if !has(TW_SANDBOX_NS_MOUNT) {
            filesystem =
                "filesystem: the host's, as the microtask's user may reach it (no mount namespace): "
                + "the daemon's configuration, job files and state are not hidden"
        }
        let cells = wouldUseCells(host: host)
        let mounts: String? =
            !has(TW_SANDBOX_NS_MOUNT)
            ? nil
            : cells && host.canJoinMounts
                ? "mounts: made once per uid lent (a cell) and joined by each microtask of the stage in turn, "
                    + "never by two at once; a cell whose /tmp a microtask left files in is thrown away; "
                    + "/proc is the worker's, mounted hidepid=invisible: a microtask sees its own processes only"
                : "mounts: made for each microtask in a mount namespace of its own"
                    + (cells ? " (the daemon lacks CAP_SYS_CHROOT, which joining a cell takes)" : "")
        let asked = hidden.filter { !hiddenByDefault.contains($0) }
        if !asked.isEmpty { filesystem += "; hidden \(asked.joined(separator: " "))" }
        if !hiddenByDefault.isEmpty {
            filesystem += "; hidden by default \(hiddenByDefault.joined(separator: " "))"
        }
        let privateTmp = has(TW_SANDBOX_PRIVATE_TMP)
        if has(TW_SANDBOX_NS_MOUNT) {
            filesystem += privateTmp ? "; private /tmp of \(formatSize(tmpSize))" : "; shared /tmp"
        }
        var calls = "syscalls: \(syscalls.rawValue)"
        if !allowSyscalls.isEmpty { calls += ", also allowed \(allowSyscalls.joined(separator: " "))" }
        if !denySyscalls.isEmpty { calls += ", also denied \(denySyscalls.joined(separator: " "))" }
        let landlock: String
        if !has(TW_SANDBOX_LANDLOCK) {
            landlock = "off"
        } else if host.landlockABI > 0 {
            landlock = "on (ABI \(host.landlockABI))"
        } else {
            landlock = "requested, but the kernel has none"
        }
        var lines: [String] = [
            "user: \(identity)",
            "network: " + (has(TW_SANDBOX_NETWORK_NONE) ? "none (loopback only)" : "host"),
            "namespaces: " + (namespaces.isEmpty ? "none" : namespaces.joined(separator: ", ")),
            filesystem,
        ]
        if let mounts { lines.append(mounts) }
        lines += [calls, "landlock: \(landlock)"]
        let available = host.cgroup?.available ?? []
        let memory =
            available.contains("memory")
            ? "memory.max"
            : "RLIMIT_AS: the address space of each process on its own; memfd and tmpfs pages are not counted"
        let fileSize =
            privateTmp
            ? "RLIMIT_FSIZE: each file on its own; the private /tmp holds \(formatSize(tmpSize)) in all"
            : "RLIMIT_FSIZE: each file on its own; what is written in all is not bounded"
        let perUser =
            dynamicUser
            ? "counted per uid, and each running microtask has its own"
            : "counted per uid, shared by every process of the microtask's user"
        let processes = available.contains("pids") ? "pids.max and RLIMIT_NPROC" : "RLIMIT_NPROC, \(perUser)"
        let quota = available.contains("cpu") ? "cpu.max" : "not enforced: no cgroup v2 cpu controller"
        let candidates: [String?] = [
            limits.cpu.map { "cpu \(formatDuration($0)) (RLIMIT_CPU)" },
            limits.cpuQuota.map { "cpu_quota \($0)% (\(quota))" },
            limits.memory.map { "memory \(formatSize($0)) (\(memory))" },
            limits.processes.map { "processes \($0) (\(processes))" },
            limits.openFiles.map { "open_files \($0) (RLIMIT_NOFILE)" },
            limits.fileSize.map { "file_size \(formatSize($0)) (\(fileSize))" },
            limits.wall.map { "wall \(formatDuration($0)) (the daemon's timer)" },
        ]
        let limited = candidates.compactMap { $0 }
        lines.append("limits: " + (limited.isEmpty ? "none" : limited.joined(separator: ", ")))
        if let cgroup = host.cgroup {
            let controllers = CgroupProbe.wanted.filter { cgroup.available.contains($0.name) }
            let mask = controllers.reduce(UInt32(0)) { $0 | $1.flag.rawValue }
            let names = controllers.isEmpty ? "none" : controllers.map(\.name).joined(separator: ", ")
            lines.append(
                needsCgroup(limits: limits, controllers: mask)
                    ? "cgroups: one per microtask, killed with cgroup.kill at its end; controllers: \(names)"
                    : "cgroups: none needed (the pid namespace ends what is left; no limit here is a "
                        + "delegated controller's)")
        } else {
            lines.append("cgroups: not available; no memory.max, cpu.max or pids.max")
        }
        return lines
    }
}

/// The uids of `user: dynamic`, one per running microtask, like systemd's
/// DynamicUser: a running microtask holds one, so no two running microtasks
/// share a uid (and RLIMIT_NPROC, which counts per uid, becomes a
/// per-microtask limit).
///
/// The range is systemd's, and so is the way a uid is taken from it: a
/// uid belongs to whoever holds a BSD lock (flock) on
/// /run/systemd/dynamic-uid/UID, which is what systemd takes for the
/// DynamicUser= of its services. So no other tesserad, and no service of
/// systemd's, is lent a uid this daemon holds, and the other way round.
/// A uid is reserved the first time the daemon needs one more than it
/// holds, and kept until the daemon exits (the kernel lets go of the lock
/// then, whatever the exit); the uids given back are lent again, last
/// given first, so that the next run of a job finds its warm stems.
final class DynamicUsers {
    /// The start of the range systemd reserves for dynamic users.
    static let firstID: UInt32 = 61184
    static let lastID: UInt32 = 65519
    static let lockDirectory = "/run/systemd/dynamic-uid"

    /// Reserved and not lent, the next to lend last.
    private var free: [UInt32] = []
    /// Every uid reserved, with the descriptor that holds its lock.
    private var held: [UInt32: Int32] = [:]
    /// Where the search for the next uid to reserve goes on.
    private var cursor = DynamicUsers.firstID
    /// When a search last found nothing (monotonic ms): the next waits a second.
    private var failedAt: UInt64?

    /// A uid no running microtask has; nil when none can be reserved
    /// (every uid of the range is taken, or the lock directory cannot be
    /// written), which is logged.
    func take() -> UInt32? {
        if free.isEmpty, let uid = reserve() { return uid }
        return free.popLast()
    }

    func give(back id: UInt32) { free.append(id) }

    /// Lets go of every uid: the lock files go, then their locks. Called
    /// when no microtask runs any more.
    func releaseAll() {
        for (uid, fd) in held {
            unlink(DynamicUsers.lockPath(uid))
            close(fd)
        }
        held.removeAll()
        free.removeAll()
    }

    static func lockPath(_ uid: UInt32) -> String { "\(lockDirectory)/\(uid)" }

    /// Takes one more uid from the range, as systemd does: a lock file
    /// per uid, a uid whose lock another holds is skipped, and so is one
    /// the user or group database knows.
    private func reserve() -> UInt32? {
        let now = monotonicMilliseconds()
        if let failedAt, now < failedAt + 1000 { return nil }
        mkdir("/run/systemd", 0o755)
        mkdir(DynamicUsers.lockDirectory, 0o755)
        let count = DynamicUsers.lastID - DynamicUsers.firstID + 1
        var problem = "every uid from \(DynamicUsers.firstID) to \(DynamicUsers.lastID) is taken"
        search: for step in 0..<count {
            let uid = DynamicUsers.firstID + (cursor - DynamicUsers.firstID + step) % count
            if held[uid] != nil { continue }
            switch lock(uid) {
            case .locked(let fd):
                held[uid] = fd
                cursor = uid == DynamicUsers.lastID ? DynamicUsers.firstID : uid + 1
                failedAt = nil
                return uid
            case .taken:
                continue
            case .failed(let message):
                problem = message
                break search
            }
        }
        if failedAt == nil {
            logWarning(
                "user: dynamic: no uid could be reserved (\(problem)); microtasks run as nobody, sharing "
                    + "its per-user limits, until one can")
        }
        failedAt = now
        return nil
    }

    private enum Lock {
        case locked(Int32)
        case taken
        case failed(String)
    }

    private func lock(_ uid: UInt32) -> Lock {
        let path = DynamicUsers.lockPath(uid)
        while true {
            let fd = open(path, O_CREAT | O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0o600)
            if fd < 0 { return .failed("\(path): \(String(cString: strerror(errno)))") }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let code = errno
                close(fd)
                if code == EINTR { continue }
                if code == EWOULDBLOCK { return .taken }
                return .failed("\(path): flock: \(String(cString: strerror(code)))")
            }
            var status = stat()
            if fstat(fd, &status) != 0 {
                close(fd)
                return .taken
            }
            // Unlinked by its holder between our open and our lock: its
            // name is free for a new file.
            if status.st_nlink == 0 {
                close(fd)
                continue
            }
            if getpwuid(uid) != nil || getgrgid(uid) != nil {
                // A user or group of the system's: left alone, and its
                // file removed, as systemd does.
                unlink(path)
                close(fd)
                return .taken
            }
            let name = Array("tesserad\n".utf8)
            _ = name.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            _ = ftruncate(fd, off_t(name.count))
            return .locked(fd)
        }
    }
}

extension ServerConfig {
    /// The daemon's own files, which a sandboxed microtask does not see
    /// unless its stage names them: the server configuration (whose
    /// `access` rules and defaults are the operator's), the job files
    /// (other jobs' parameters) and the state directory (every run's
    /// parameters, results and output). Absolute, with symbolic links
    /// resolved, as the mounts see them.
    var protectedPaths: [String] {
        ([file] + jobsDirs + [stateDir]).map(absolutePath).filter { $0 != "/" }
    }
}

/// `path` made absolute against the working directory, with its symbolic
/// links resolved when it exists.
func absolutePath(_ path: String) -> String {
    if let resolved = realpath(path, nil) {
        defer { free(resolved) }
        return String(cString: resolved)
    }
    if path.hasPrefix("/") { return path }
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
    guard getcwd(&buffer, buffer.count) != nil else { return path }
    let directory = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return (directory == "/" ? "" : directory) + "/" + path
}
