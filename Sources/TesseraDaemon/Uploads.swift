// Items a caller sends for a run (`tessera run JOB --items FILE`). The
// daemon never reads a file on a caller's behalf (it may be root; the
// caller may not be): the items travel over the socket in AddItems calls
// of at most a message each, and are spooled to a file in the state
// directory that is unlinked as soon as it is opened, so it holds no
// memory and leaves nothing behind when the connection or the daemon goes.
// StartRun then streams them into the store.

import TesseraConfig
import TesseraEngine
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

final class ItemUpload {
    private let fd: Int32
    private(set) var count = 0
    private(set) var bytes = 0
    /// The most bytes one connection may spool.
    static let maximumBytes = 1 << 30

    init(directory: String) throws(ControlError) {
        let path = "\(directory)/upload-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ItemUpload.failure("cannot spool items: \(String(cString: strerror(errno)))") }
        unlink(path)
    }

    deinit { close(fd) }

    static func failure(_ reason: String) -> ControlError {
        ControlError(ManagerError.invalidParameter, ["parameter": "items", "reason": .string(reason)])
    }

    /// Appends items, each as a 4-byte length and its bytes.
    func append(_ items: [String]) throws(ControlError) {
        guard count + items.count <= ItemSource.maximumCountForUpload else {
            throw ItemUpload.failure("more than \(ItemSource.maximumCountForUpload) items, the most a stage may have")
        }
        var buffer: [UInt8] = []
        for item in items {
            let length = UInt32(item.utf8.count)
            withUnsafeBytes(of: length.littleEndian) { buffer += $0 }
            buffer += item.utf8
        }
        guard bytes + buffer.count <= ItemUpload.maximumBytes else {
            throw ItemUpload.failure("more than \(ItemUpload.maximumBytes >> 20) MiB of items")
        }
        var written = 0
        while written < buffer.count {
            let n = buffer.withUnsafeBytes {
                pwrite(fd, $0.baseAddress! + written, $0.count - written, off_t(bytes + written))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw ItemUpload.failure("cannot spool items: \(String(cString: strerror(errno)))")
            }
            written += n
        }
        bytes += buffer.count
        count += items.count
    }

    /// No items (a StartRun that says it sent none).
    static var empty: any ItemStream { EmptyItems() }

    private struct EmptyItems: ItemStream {
        mutating func next() throws(PartitionFailure) -> String? { nil }
    }

    /// The items in the order sent.
    func stream() -> any ItemStream { Reader(fd: fd, size: bytes) }

    private final class Reader: ItemStream {
        let fd: Int32
        let size: Int
        var offset = 0
        var buffer: [UInt8] = []
        var position = 0

        init(fd: Int32, size: Int) {
            self.fd = fd
            self.size = size
        }

        private func fill(_ needed: Int) throws(PartitionFailure) {
            while buffer.count - position < needed {
                if position > 0 {
                    buffer.removeSubrange(0..<position)
                    position = 0
                }
                // Never past what was spooled whole (a write that failed
                // half way may have left bytes beyond it).
                let wanted = min(max(needed, 1 << 20), size - offset)
                guard wanted > 0 else { throw PartitionFailure("the spooled items are incomplete") }
                var block = [UInt8](repeating: 0, count: wanted)
                let n = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
                guard n > 0 else { throw PartitionFailure("the spooled items are incomplete") }
                buffer += block[0..<n]
                offset += n
            }
        }

        func next() throws(PartitionFailure) -> String? {
            guard offset < size || position < buffer.count else { return nil }
            try fill(4)
            let length = buffer[position..<(position + 4)].reversed().reduce(0) { $0 << 8 | Int($1) }
            position += 4
            try fill(length)
            defer { position += length }
            return String(decoding: buffer[position..<(position + length)], as: UTF8.self)
        }
    }
}

extension ItemSource {
    static var maximumCountForUpload: Int { maximumCount }
}
