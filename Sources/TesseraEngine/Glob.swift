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

/// One file-name pattern, walked in bytewise order. Matching is a small
/// NFA over the pattern's components: each directory on the way keeps the
/// set of pattern positions its path can have reached, so a file costs one
/// fnmatch per live position and no allocation unless it matches.
struct GlobWalker {
    /// The pattern's components below the base, NUL-terminated for fnmatch.
    private let components: [[CChar]]
    private let isGlobstar: [Bool]
    private let base: String
    private let pattern: String
    private var stack: [Frame] = []
    private var started = false

    /// A directory entry: its name (NUL-terminated) at `offset` in its
    /// directory's buffer. One buffer per directory, not an array per
    /// name: sorting a thousand entries then moves integers, not arrays.
    private struct Entry {
        let offset: Int
        /// Without the NUL.
        let length: Int
        let isDirectory: Bool
    }

    /// A directory's entries, sorted so a depth-first walk is bytewise.
    private struct Listing {
        var names: [UInt8] = []
        var entries: [Entry] = []
    }

    private struct Frame {
        let path: String
        /// Pattern positions reachable at this directory.
        let states: [Int]
        var listing: Listing
        var next = 0
    }

    init(pattern: String) {
        self.pattern = pattern
        let all = pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var literal = 0
        while literal < all.count - 1, !GlobWalker.hasWildcard(all[literal]) { literal += 1 }
        base = "/" + all.prefix(literal).joined(separator: "/")
        let rest = all[literal...]
        components = rest.map { Array($0.utf8CString) }
        isGlobstar = rest.map { $0 == "**" }
    }

    static func hasWildcard(_ component: String) -> Bool {
        component.contains { $0 == "*" || $0 == "?" || $0 == "[" }
    }

    /// `states` with every position after a `**` that matches no directory.
    private func closure(_ states: [Int]) -> [Int] {
        var result: [Int] = []
        for var state in states {
            while true {
                if !result.contains(state) { result.append(state) }
                guard state < components.count, isGlobstar[state] else { break }
                state += 1
            }
        }
        return result
    }

    /// The positions reachable from `states` through one component `name`.
    private func step(_ states: [Int], _ name: UnsafePointer<CChar>, hidden: Bool) -> [Int] {
        var next: [Int] = []
        for state in states where state < components.count {
            if isGlobstar[state] {
                if !hidden { next.append(state) }
            } else if components[state].withUnsafeBufferPointer({ fnmatch($0.baseAddress!, name, FNM_PERIOD) }) == 0 {
                next.append(state + 1)
            }
        }
        return closure(next)
    }

    /// The next matching path, nil at the end.
    mutating func next() throws(PartitionFailure) -> String? {
        if !started {
            started = true
            stack.append(Frame(path: base, states: closure([0]), listing: try read(base)))
        }
        while !stack.isEmpty {
            let top = stack.count - 1
            guard stack[top].next < stack[top].listing.entries.count else {
                stack.removeLast()
                continue
            }
            let entry = stack[top].listing.entries[stack[top].next]
            stack[top].next += 1
            let states = stack[top].listing.names.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { names in
                    step(
                        stack[top].states, names.baseAddress! + entry.offset,
                        hidden: bytes[entry.offset] == UInt8(ascii: "."))
                }
            }
            if entry.isDirectory {
                guard states.contains(where: { $0 < components.count }) else { continue }
                let path = try pathOf(entry, in: stack[top])
                stack.append(Frame(path: path, states: states, listing: try read(path)))
            } else if states.contains(components.count) {
                return try pathOf(entry, in: stack[top])
            }
        }
        return nil
    }

    private func pathOf(_ entry: Entry, in frame: Frame) throws(PartitionFailure) -> String {
        let bytes = frame.listing.names[entry.offset..<(entry.offset + entry.length)]
        guard let name = String(validating: bytes, as: UTF8.self) else {
            throw PartitionFailure("glob \(pattern): a file name in \(frame.path) is not UTF-8; items are text")
        }
        return (frame.path == "/" ? "" : frame.path) + "/" + name
    }

    /// The entries of a directory, sorted so a depth-first walk is bytewise.
    private func read(_ directory: String) throws(PartitionFailure) -> Listing {
        guard let handle = opendir(directory) else {
            throw PartitionFailure(
                "glob \(pattern): cannot read the directory \(directory): \(String(cString: strerror(errno)))")
        }
        defer { closedir(handle) }
        let fd = dirfd(handle)
        var listing = Listing()
        while true {
            errno = 0
            guard let raw = readdir(handle) else {
                if errno != 0 {
                    throw PartitionFailure(
                        "glob \(pattern): cannot read the directory \(directory): \(String(cString: strerror(errno)))")
                }
                break
            }
            let length = withUnsafeBytes(of: raw.pointee.d_name) { bytes in bytes.firstIndex(of: 0) ?? bytes.count }
            let isDot = withUnsafeBytes(of: raw.pointee.d_name) { bytes in
                bytes[0] == 0x2E && (length == 1 || (length == 2 && bytes[1] == 0x2E))
            }
            if isDot { continue }
            var isDirectory = false
            var isFile = false
            switch Int32(raw.pointee.d_type) {
            case Int32(DT_DIR): isDirectory = true
            case Int32(DT_REG): isFile = true
            case Int32(DT_LNK), Int32(DT_UNKNOWN):
                // What the entry is itself, then, for a link, what it names:
                // a link to a file matches; a link to a directory is not
                // followed (no loops).
                var info = stat()
                let name = withUnsafeBytes(of: raw.pointee.d_name) { bytes in
                    bytes.prefix(length).map { CChar(bitPattern: $0) } + [0]
                }
                guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { break }
                if info.st_mode & S_IFMT == S_IFLNK {
                    isFile = fstatat(fd, name, &info, 0) == 0 && info.st_mode & S_IFMT == S_IFREG
                } else {
                    isFile = info.st_mode & S_IFMT == S_IFREG
                    isDirectory = info.st_mode & S_IFMT == S_IFDIR
                }
            default: break
            }
            guard isDirectory || isFile else { continue }
            let offset = listing.names.count
            withUnsafeBytes(of: raw.pointee.d_name) { bytes in listing.names += bytes[0...length] }
            listing.entries.append(Entry(offset: offset, length: length, isDirectory: isDirectory))
        }
        // Bytewise by name, a directory's name compared as if "/" followed it.
        listing.names.withUnsafeBufferPointer { names in
            listing.entries.sort { a, b in
                let common = min(a.length, b.length)
                let order = memcmp(names.baseAddress! + a.offset, names.baseAddress! + b.offset, common)
                if order != 0 { return order < 0 }
                // One is a prefix of the other: the next byte is "/" for a
                // directory, nothing for a file.
                let nextA: Int = a.length > common ? Int(names[a.offset + common]) : (a.isDirectory ? 0x2F : -1)
                let nextB: Int = b.length > common ? Int(names[b.offset + common]) : (b.isDirectory ? 0x2F : -1)
                return nextA < nextB
            }
        }
        return listing
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
