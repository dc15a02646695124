// POSIX.swift
//
// Why this file exists: the loaders read files, list job directories and ask
// for the number of CPUs; the sandbox settings look up users and groups and
// check that writable paths exist. These are the module's only POSIX calls;
// each is retried on EINTR and fails with errno's text, which the loaders put
// into a diagnostic naming the file.

internal import Glibc

/// A failed POSIX call: the reason as `strerror` gives it.
struct POSIXError: Error {
    var reason: String

    init(errno code: Int32) {
        reason = String(cString: strerror(code))
    }
}

/// The POSIX calls of the module.
enum POSIX {
    /// The whole content of the file at `path`.
    static func readFile(_ path: String) throws(POSIXError) -> [UInt8] {
        var descriptor: Int32
        repeat {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
        } while descriptor < 0 && errno == EINTR
        guard descriptor >= 0 else { throw POSIXError(errno: errno) }
        defer { close(descriptor) }

        var content: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw POSIXError(errno: errno)
            }
            if count == 0 { return content }
            content.append(contentsOf: chunk[..<count])
        }
    }

    /// The names of the entries of the directory at `path`, without `.` and `..`, unsorted.
    static func directoryEntries(_ path: String) throws(POSIXError) -> [String] {
        guard let directory = opendir(path) else { throw POSIXError(errno: errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw POSIXError(errno: errno) }
                return names
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." {
                names.append(name)
            }
        }
    }

    /// The uid and primary gid of the user `name`, or nil when there is no such user.
    static func userIDs(named name: String) throws(POSIXError) -> (uid: UInt32, gid: UInt32)? {
        try lookUp(passwd()) { getpwnam_r(name, $0, $1, $2, $3) }.map { ($0.pw_uid, $0.pw_gid) }
    }

    /// The gid of the group `name`, or nil when there is no such group.
    static func groupID(named name: String) throws(POSIXError) -> UInt32? {
        try lookUp(group()) { getgrnam_r(name, $0, $1, $2, $3) }.map(\.gr_gid)
    }

    /// Calls a reentrant user or group database lookup such as `getpwnam_r`
    /// with a buffer large enough for the entry. The entry's strings point
    /// into that buffer, so only its numbers may be read.
    private static func lookUp<Entry>(
        _ empty: Entry,
        _ call: (
            UnsafeMutablePointer<Entry>, UnsafeMutablePointer<CChar>, Int,
            UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>
        ) -> Int32
    ) throws(POSIXError) -> Entry? {
        var entry = empty
        var found: UnsafeMutablePointer<Entry>?
        var buffer = [CChar](repeating: 0, count: 4096)
        while true {
            let code = buffer.withUnsafeMutableBufferPointer { call(&entry, $0.baseAddress!, $0.count, &found) }
            switch code {
            // glibc answers 0 for "not found"; ENOENT is what some NSS modules answer.
            case 0, ENOENT: return found == nil ? nil : entry
            case ERANGE: buffer = [CChar](repeating: 0, count: buffer.count * 2)
            case EINTR: continue
            default: throw POSIXError(errno: code)
            }
        }
    }

    /// Whether something exists at `path`, following symbolic links.
    static func pathExists(_ path: String) throws(POSIXError) -> Bool {
        guard access(path, F_OK) != 0 else { return true }
        if errno == ENOENT || errno == ENOTDIR { return false }
        throw POSIXError(errno: errno)
    }

    /// The number of CPUs online, at least 1.
    static func onlineProcessorCount() -> Int {
        max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }
}
