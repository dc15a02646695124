// Glob.swift
//
// Why this file exists: `glob:` partitions a stage into the files matching
// one or more patterns, possibly millions of them, sorted bytewise. The
// walker below yields them one at a time without holding the list: it reads
// one directory at a time, sorts that directory's entries so that a
// depth-first walk gives bytewise order of the full paths (a directory
// sorts as its name followed by "/"), and descends only where the pattern
// can still match. `*`, `?` and `[…]` match within one path component
// (fnmatch(3) with FNM_PERIOD, so a leading "." must be written, as in a
// shell), and `**` matches any number of directories (none of them hidden).
// Symbolic links to files match; links to directories are not followed.
// A directory that cannot be read is an error, never silently skipped.

#if canImport(Glibc)
    import Glibc
#endif

/// One file-name pattern, walked in bytewise order.
struct GlobWalker {
    private let components: [String]
    private let base: String
    private let baseDepth: Int
    private let pattern: String
    private var stack: [Frame] = []
    private var started = false

    private struct Entry {
        let name: [UInt8]
        let isDirectory: Bool
        /// The key directories and files sort by: a directory's name with "/".
        let key: [UInt8]
    }

    private struct Frame {
        let path: String
        let relative: [String]
        var entries: [Entry]
        var next = 0
    }

    init(pattern: String) {
        self.pattern = pattern
        components = pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var literal = 0
        while literal < components.count - 1, !GlobWalker.hasWildcard(components[literal]) { literal += 1 }
        baseDepth = literal
        base = "/" + components.prefix(literal).joined(separator: "/")
    }

    static func hasWildcard(_ component: String) -> Bool {
        component.contains { $0 == "*" || $0 == "?" || $0 == "[" }
    }

    /// The next matching path, nil at the end.
    mutating func next() throws(PartitionFailure) -> String? {
        if !started {
            started = true
            stack.append(Frame(path: base, relative: [], entries: try read(base)))
        }
        while !stack.isEmpty {
            let top = stack.count - 1
            guard stack[top].next < stack[top].entries.count else {
                stack.removeLast()
                continue
            }
            let entry = stack[top].entries[stack[top].next]
            stack[top].next += 1
            guard let name = String(validating: entry.name, as: UTF8.self) else {
                throw PartitionFailure(
                    "glob \(pattern): a file name in \(stack[top].path) is not UTF-8; items are text")
            }
            let path = (stack[top].path == "/" ? "" : stack[top].path) + "/" + name
            let relative = stack[top].relative + [name]
            let rest = components[baseDepth...]
            if entry.isDirectory {
                if GlobWalker.canMatchBelow(rest, relative[...]) {
                    stack.append(Frame(path: path, relative: relative, entries: try read(path)))
                }
            } else if GlobWalker.matches(rest, relative[...]) {
                return path
            }
        }
        return nil
    }

    /// The entries of a directory, sorted so a depth-first walk is bytewise.
    private func read(_ directory: String) throws(PartitionFailure) -> [Entry] {
        guard let handle = opendir(directory) else {
            throw PartitionFailure(
                "glob \(pattern): cannot read the directory \(directory): \(String(cString: strerror(errno)))")
        }
        defer { closedir(handle) }
        let fd = dirfd(handle)
        var entries: [Entry] = []
        while true {
            errno = 0
            guard let raw = readdir(handle) else {
                if errno != 0 {
                    throw PartitionFailure(
                        "glob \(pattern): cannot read the directory \(directory): \(String(cString: strerror(errno)))")
                }
                break
            }
            let name = withUnsafeBytes(of: raw.pointee.d_name) { bytes in
                Array(bytes.prefix { $0 != 0 })
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            var isDirectory = false
            var isFile = false
            switch Int32(raw.pointee.d_type) {
            case Int32(DT_DIR): isDirectory = true
            case Int32(DT_REG): isFile = true
            case Int32(DT_LNK), Int32(DT_UNKNOWN):
                var info = stat()
                let flags: Int32 = Int32(raw.pointee.d_type) == Int32(DT_LNK) ? 0 : AT_SYMLINK_NOFOLLOW
                if fstatat(fd, raw.pointee.d_name_pointer, &info, flags) == 0 {
                    let kind = info.st_mode & S_IFMT
                    isFile = kind == S_IFREG
                    // A link to a directory is not followed (no loops).
                    isDirectory = kind == S_IFDIR && Int32(raw.pointee.d_type) != Int32(DT_LNK)
                }
            default: break
            }
            guard isDirectory || isFile else { continue }
            entries.append(Entry(name: name, isDirectory: isDirectory, key: isDirectory ? name + [0x2F] : name))
        }
        entries.sort { $0.key.lexicographicallyPrecedes($1.key) }
        return entries
    }

    /// Whether `path` (components below the base) matches `pattern`.
    static func matches(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let first = pattern.first else { return path.isEmpty }
        if first == "**" {
            var rest = path
            while true {
                if matches(pattern.dropFirst(), rest) { return true }
                guard let component = rest.first, !component.hasPrefix(".") else { return false }
                rest = rest.dropFirst()
            }
        }
        guard let component = path.first, fnmatch(first, component, FNM_PERIOD) == 0 else { return false }
        return matches(pattern.dropFirst(), path.dropFirst())
    }

    /// Whether some path below the directory `path` could match `pattern`.
    static func canMatchBelow(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let component = path.first else { return !pattern.isEmpty }
        guard let first = pattern.first else { return false }
        if first == "**" {
            if !component.hasPrefix(".") { return true }
            return canMatchBelow(pattern.dropFirst(), path)
        }
        guard fnmatch(first, component, FNM_PERIOD) == 0 else { return false }
        return canMatchBelow(pattern.dropFirst(), path.dropFirst())
    }
}

extension dirent {
    /// The entry's name as a C string, for the *at() calls.
    fileprivate var d_name_pointer: UnsafePointer<CChar> {
        withUnsafePointer(to: d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { $0 } }
    }
}

/// Several patterns: their matches merged in bytewise order, each path once.
struct GlobStream: ItemStream {
    private var walkers: [GlobWalker]
    private var heads: [String?] = []
    private var started = false
    private var last: String?

    init(patterns: [String]) {
        walkers = patterns.map(GlobWalker.init(pattern:))
    }

    mutating func next() throws(PartitionFailure) -> String? {
        if !started {
            started = true
            for i in walkers.indices { heads.append(try walkers[i].next()) }
        }
        while true {
            var best: Int?
            for i in heads.indices {
                guard let head = heads[i] else { continue }
                if let b = best, let current = heads[b], !head.utf8.lexicographicallyPrecedes(current.utf8) {
                    continue
                }
                best = i
            }
            guard let chosen = best, let path = heads[chosen] else { return nil }
            heads[chosen] = try walkers[chosen].next()
            if path == last { continue }
            last = path
            return path
        }
    }
}
