// Partition.swift
//
// Why this file exists: partitioning turns a stage's source into its
// microtasks' items. Every source is a stream that yields one item at a
// time, so that a million lines, a million files or a million upstream
// results pass through the engine into the store without being held:
// files are read in blocks, upstream results in batches of a few hundred.
// `chunk: N` wraps any stream and groups its items into JSON arrays.

import TesseraConfig
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// Why a source could not be partitioned, in words for the run's reason.
public struct PartitionFailure: Error, CustomStringConvertible, Sendable {
    public let message: String
    /// The store failed, not the source: the engine stops rather than
    /// record a stage failure it cannot vouch for.
    public let isStoreFailure: Bool
    public init(_ message: String, storeFailed: Bool = false) {
        self.message = message
        isStoreFailure = storeFailed
    }
    public var description: String { message }
}

/// A source of items, read one at a time.
public protocol ItemStream {
    /// The next item, nil at the end.
    mutating func next() throws(PartitionFailure) -> String?
}

/// The items a job file decides: a list, a range, a matrix, none.
struct StaticStream: ItemStream {
    let source: ItemSource
    let count: Int
    var position = 0

    init(_ source: ItemSource) {
        self.source = source
        count = source.knownCount ?? 0
    }

    mutating func next() throws(PartitionFailure) -> String? {
        guard position < count else { return nil }
        defer { position += 1 }
        return source.item(at: position)
    }
}

/// Reads a file in blocks.
struct FileReader {
    let path: String
    let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false

    init(path: String) throws(PartitionFailure) {
        self.path = path
        // O_NONBLOCK: a FIFO must not hold the daemon up at open.
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw PartitionFailure("\(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            Glibc.close(fd)
            throw PartitionFailure("\(path): not a regular file")
        }
        _ = fcntl(fd, F_SETFL, 0)
    }

    /// The longest line read as one item.
    static let maximumLine = 1 << 20

    func close() { Glibc.close(fd) }

    /// The next line without its newline (and a "\r" before it), nil at the end.
    mutating func nextLine() throws(PartitionFailure) -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                var end = newline
                if end > start, buffer[end - 1] == 0x0D { end -= 1 }
                defer { start = newline + 1 }
                return buffer[start..<end]
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                var end = buffer.count
                if buffer[end - 1] == 0x0D { end -= 1 }
                defer { start = buffer.count }
                return buffer[start..<end]
            }
            if start > 0 {
                buffer.removeSubrange(0..<start)
                start = 0
            }
            guard buffer.count <= FileReader.maximumLine else {
                throw PartitionFailure("\(path): a line longer than 1 MiB; an item may not be that long")
            }
            var block = [UInt8](repeating: 0, count: 1 << 20)
            let n = block.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PartitionFailure("\(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { atEnd = true } else { buffer += block[0..<n] }
        }
    }
}

/// `lines: PATH`: each non-empty line.
final class LinesStream: ItemStream {
    private var reader: FileReader?
    private let path: String
    private var line = 0

    init(path: String) {
        self.path = path
    }

    deinit { reader?.close() }

    func next() throws(PartitionFailure) -> String? {
        if reader == nil {
            do {
                reader = try FileReader(path: path)
            } catch {
                throw PartitionFailure("lines: \(error.message)")
            }
        }
        while let bytes = try reader!.nextLine() {
            line += 1
            if bytes.isEmpty { continue }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw PartitionFailure("lines: \(path):\(line): the line is not UTF-8; items are text")
            }
            return text
        }
        return nil
    }
}

/// `split: {file, block}`: byte ranges of about `block` bytes, each ending
/// just after a newline (or at the end of the file), so no line is cut.
final class SplitStream: ItemStream {
    private let path: String
    private let block: UInt64
    private var fd: Int32 = -1
    private var size: UInt64 = 0
    private var offset: UInt64 = 0

    init(path: String, block: UInt64) {
        self.path = path
        self.block = max(block, 1)
    }

    deinit { if fd >= 0 { close(fd) } }

    func next() throws(PartitionFailure) -> String? {
        if fd < 0 {
            fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else { throw PartitionFailure("split: \(path): \(String(cString: strerror(errno)))") }
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
                throw PartitionFailure("split: \(path): not a regular file")
            }
            size = UInt64(info.st_size)
        }
        guard offset < size else { return nil }
        var end = min(offset + block, size)
        if end < size { end = try lineEnd(from: end - 1) }
        let item =
            "{\"path\":\(jsonStringLiteral(path)),\"offset\":\(offset),\"length\":\(end - offset)}"
        offset = end
        return item
    }

    /// The offset just past the first newline at or after `position`.
    private func lineEnd(from position: UInt64) throws(PartitionFailure) -> UInt64 {
        var at = position
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while at < size {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(at)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PartitionFailure("split: \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            if let newline = buffer[0..<n].firstIndex(of: 0x0A) { return at + UInt64(newline) + 1 }
            at += UInt64(n)
        }
        return size
    }
}

/// `from: STAGE`: each succeeded upstream microtask's result, in index
/// order, split into items: a JSON array gives its elements, anything else
/// its non-empty lines. A result is split as it is read (ResultSplitter),
/// so a result of a million lines is never a million strings at once.
final class ResultsStream: ItemStream {
    private let store: any RunStore
    private let run: Int64
    private let stage: String
    private var range: Range<Int>
    private var batch: [ResultRow] = []
    private var batchPosition = 0
    private var splitter: ResultSplitter?

    init(store: any RunStore, run: Int64, stage: String, range: Range<Int>) {
        self.store = store
        self.run = run
        self.stage = stage
        self.range = range
    }

    func next() throws(PartitionFailure) -> String? {
        while true {
            if let item = try splitter?.next() { return item }
            splitter = nil
            if batchPosition >= batch.count {
                guard !range.isEmpty else { return nil }
                do {
                    batch = try store.results(run: run, in: range, limit: 256)
                } catch {
                    throw PartitionFailure(
                        "from: cannot read the results of stage \(stage): \(error)", storeFailed: true)
                }
                batchPosition = 0
                guard let last = batch.last else { return nil }
                range = (last.index + 1)..<range.upperBound
            }
            let row = batch[batchPosition]
            batch[batchPosition].result = []
            batchPosition += 1
            splitter = ResultSplitter(row.result, stage: stage, index: row.index)
        }
    }
}

/// One result's items, one at a time: the elements of a JSON array (a
/// string element as its text, any other as its JSON), else the non-empty
/// lines. The array is scanned for the bounds of its elements, and only
/// each element is parsed.
struct ResultSplitter {
    private let bytes: [UInt8]
    private let stage: String
    private let index: Int
    private var position = 0
    private var isArray: Bool

    init(_ bytes: [UInt8], stage: String, index: Int) {
        self.stage = stage
        self.index = index
        var start = 0
        while start < bytes.count, [0x20, 0x0A, 0x09, 0x0D].contains(bytes[start]) { start += 1 }
        self.bytes = bytes
        var end = bytes.count
        while end > start, [0x20, 0x0A, 0x09, 0x0D].contains(bytes[end - 1]) { end -= 1 }
        isArray = false
        position = 0
        if start < end, bytes[start] == UInt8(ascii: "["), bytes[end - 1] == UInt8(ascii: "]") {
            // A first pass parses each element on its own (memory for one
            // element at a time, not the whole array): only a valid array
            // is taken as one.
            var probe = self
            probe.position = start + 1
            var valid = true
            var last = probe.position
            while let element = probe.scanElement() {
                if element.value == nil { valid = false }
                // Every element moves on; should one not, this is no array.
                guard probe.position > last else {
                    valid = false
                    break
                }
                last = probe.position
            }
            if valid && probe.position >= end - 1 {
                isArray = true
                position = start + 1
            }
        }
    }

    mutating func next() throws(PartitionFailure) -> String? {
        isArray ? scanElement()?.value : try nextLine()
    }

    private mutating func nextLine() throws(PartitionFailure) -> String? {
        while position < bytes.count {
            let start = position
            var end = start
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            position = end + 1
            var last = end
            if last > start, bytes[last - 1] == 0x0D { last -= 1 }
            guard last > start else { continue }
            guard let text = String(validating: bytes[start..<last], as: UTF8.self) else {
                throw PartitionFailure(
                    "from: the result of microtask \(index) of stage \(stage) is not UTF-8 text or a JSON array")
            }
            return text
        }
        return nil
    }

    /// The next element of the array: its item, or nil as the value when
    /// it is not valid JSON; nil at the end.
    private mutating func scanElement() -> Element? {
        func skipSpace() {
            while position < bytes.count, [0x20, 0x0A, 0x09, 0x0D, UInt8(ascii: ",")].contains(bytes[position]) {
                position += 1
            }
        }
        skipSpace()
        guard position < bytes.count, bytes[position] != UInt8(ascii: "]") else { return nil }
        defer { if position < bytes.count, bytes[position] == UInt8(ascii: ",") { position += 1 } }
        let start = position
        var depth = 0
        var inString = false
        while position < bytes.count {
            let byte = bytes[position]
            if inString {
                if byte == UInt8(ascii: "\\") {
                    position += 1
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else {
                switch byte {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    if depth == 0 {
                        // A "}" that closes nothing: not JSON; step over it
                        // so that every call moves on.
                        if byte == UInt8(ascii: "}") {
                            position += 1
                            return Element(value: nil)
                        }
                        return Element(value: element(start..<position))
                    }
                    depth -= 1
                case UInt8(ascii: ","):
                    if depth == 0 { return Element(value: element(start..<position)) }
                default: break
                }
            }
            position += 1
        }
        return Element(value: element(start..<position))
    }

    /// An element of the array; `value` is nil when it is not valid JSON.
    private struct Element {
        let value: String?
    }

    private func element(_ range: Range<Int>) -> String? {
        guard let value = try? JSON.parse(Array(bytes[range])) else { return nil }
        return value.stringValue ?? value.serialized()
    }
}

/// The items of an earlier run's stage, as recorded (a rerun).
final class StoredItemsStream: ItemStream {
    private let store: any RunStore
    private let run: Int64
    private var range: Range<Int>
    private let unsuccessfulOnly: Bool
    private var batch: [(index: Int, item: String)] = []
    private var position = 0

    init(store: any RunStore, run: Int64, range: Range<Int>, unsuccessfulOnly: Bool) {
        self.store = store
        self.run = run
        self.range = range
        self.unsuccessfulOnly = unsuccessfulOnly
    }

    func next() throws(PartitionFailure) -> String? {
        if position >= batch.count {
            guard !range.isEmpty else { return nil }
            do {
                batch = try store.items(run: run, in: range, unsuccessfulOnly: unsuccessfulOnly, limit: 1024)
            } catch {
                throw PartitionFailure("cannot read the items of run \(run): \(error)", storeFailed: true)
            }
            position = 0
            guard let last = batch.last else { return nil }
            range = (last.index + 1)..<range.upperBound
        }
        defer { position += 1 }
        return batch[position].item
    }
}

/// `chunk: N`: N consecutive items of another stream as one JSON array
/// (items that are JSON objects or arrays are embedded, others are strings).
struct ChunkStream: ItemStream {
    var inner: any ItemStream
    let size: Int

    mutating func next() throws(PartitionFailure) -> String? {
        var members: [String] = []
        while members.count < size, let item = try inner.next() {
            members.append(embeddedItem(item))
        }
        return members.isEmpty ? nil : "[" + members.joined(separator: ",") + "]"
    }
}

/// An item as a JSON value: objects and arrays as themselves, anything else as a string.
func embeddedItem(_ item: String) -> String {
    if let first = item.utf8.first, first == UInt8(ascii: "{") || first == UInt8(ascii: "["),
        (try? JSON.parse(Array(item.utf8))) != nil
    {
        return item
    }
    return jsonStringLiteral(item)
}

/// A result as JSON: embedded when it is valid JSON, else a string (bytes
/// that are not UTF-8 become U+FFFD).
public func embeddedResult(_ result: [UInt8]) -> JSON {
    if let parsed = try? JSON.parse(result) { return parsed }
    return .string(String(decoding: result, as: UTF8.self))
}

/// An item as JSON: objects and arrays embedded, anything else a string.
public func embeddedItemJSON(_ item: String) -> JSON {
    if let first = item.utf8.first, first == UInt8(ascii: "{") || first == UInt8(ascii: "["),
        let parsed = try? JSON.parse(Array(item.utf8))
    {
        return parsed
    }
    return .string(item)
}
