// POSIX.swift
//
// Why this file exists: the loaders read files, list job directories and ask
// for the number of CPUs. These are the module's only POSIX calls; each is
// retried on EINTR and fails with errno's text, which the loaders put into a
// diagnostic naming the file.

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

    /// The number of CPUs online, at least 1.
    static func onlineProcessorCount() -> Int {
        max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }
}
