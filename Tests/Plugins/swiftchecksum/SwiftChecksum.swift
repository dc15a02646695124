// The test suite's Swift plugin: an executor written in Swift against the C
// ABI of tessera/plugin.h, to show (and test) that plugins need not be C.
// SwiftPM builds it as libtessera-test-swift.so, which is not installed: the
// shipped checksum plugin is the C one (Plugins/checksum/checksum.c), since
// a plugin in Swift brings the Swift runtime into the worker zygote.
//
// Executor "swift_checksum", the same as the shipped "checksum": the
// microtask's item is a file path; the result is
// {"path": ..., "sha256": ..., "bytes": N}. It uses no Foundation, so the
// plugin adds little to the zygote's address space beyond the runtime.

import TesseraPluginABI

#if canImport(Glibc)
    import Glibc
#endif

/// Declarations live for the life of the process: they are allocated once
/// and never freed, as the ABI requires.
private func permanent(_ s: String) -> UnsafePointer<CChar> {
    UnsafePointer(strdup(s)!)
}

nonisolated(unsafe) private let params: UnsafeMutablePointer<tessera_param> = {
    let p = UnsafeMutablePointer<tessera_param>.allocate(capacity: 1)
    p.initialize(
        to: tessera_param(
            name: permanent("buffer_size"), type: TESSERA_PARAM_INTEGER, required: 0,
            default_value: permanent("65536"), description: permanent("Bytes read at a time.")))
    return p
}()

nonisolated(unsafe) private let executors: UnsafeMutablePointer<tessera_executor> = {
    let e = UnsafeMutablePointer<tessera_executor>.allocate(capacity: 1)
    e.initialize(
        to: tessera_executor(
            name: permanent("swift_checksum"),
            description: permanent("Stores the SHA-256 of the file named by the item as the result."),
            params: UnsafePointer(params), param_count: 1, execute: executeChecksum))
    return e
}()

nonisolated(unsafe) private let plugin: UnsafeMutablePointer<tessera_plugin> = {
    let p = UnsafeMutablePointer<tessera_plugin>.allocate(capacity: 1)
    p.initialize(
        to: tessera_plugin(
            abi_major: UInt32(TESSERA_ABI_MAJOR), abi_minor: UInt32(TESSERA_ABI_MINOR), name: permanent("checksum"),
            version: permanent("1.0"), description: permanent("File checksums, written in Swift."),
            executors: UnsafePointer(executors), executor_count: 1))
    return p
}()

@_cdecl("tessera_plugin_init")
public func tesseraPluginInit(_ host: UnsafePointer<tessera_host>?) -> UnsafePointer<tessera_plugin>? {
    UnsafePointer(plugin)
}

private func executeChecksum(_ host: UnsafePointer<tessera_host>?, _ task: OpaquePointer?) -> Int32 {
    guard let host = host?.pointee, let item = host.item?(task) else { return TESSERA_FAILED }
    let path = String(cString: item)
    var bufferSize: Int64 = 65536
    _ = host.param_integer?(task, "buffer_size", &bufferSize)
    bufferSize = max(512, min(bufferSize, 16 << 20))

    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        host.log?(task, TESSERA_LOG_ERROR, "cannot open \(path): \(String(cString: strerror(errno)))")
        return TESSERA_FAILED
    }
    defer { close(fd) }
    var hasher = SHA256()
    var buffer = [UInt8](repeating: 0, count: Int(bufferSize))
    var total: UInt64 = 0
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            host.log?(task, TESSERA_LOG_ERROR, "cannot read \(path): \(String(cString: strerror(errno)))")
            return TESSERA_FAILED
        }
        if n == 0 { break }
        hasher.update(buffer[0..<n])
        total += UInt64(n)
    }
    let digest = hasher.finish().map { byte in
        let hex = String(byte, radix: 16)
        return byte < 16 ? "0" + hex : hex
    }.joined()
    var escapedPath = ""
    for scalar in path.unicodeScalars {
        switch scalar {
        case "\"": escapedPath += "\\\""
        case "\\": escapedPath += "\\\\"
        case _ where scalar.value < 0x20:
            escapedPath += "\\u00" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
        default: escapedPath.unicodeScalars.append(scalar)
        }
    }
    let result = "{\"path\":\"\(escapedPath)\",\"sha256\":\"\(digest)\",\"bytes\":\(total)}"
    var bytes = Array(result.utf8)
    _ = host.set_result?(task, &bytes, bytes.count)
    return TESSERA_OK
}

/// SHA-256 (FIPS 180-4), streaming.
struct SHA256 {
    private var state: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    private var pending: [UInt8] = []
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    mutating func update(_ bytes: ArraySlice<UInt8>) {
        length += UInt64(bytes.count)
        var input = bytes[...]
        if !pending.isEmpty {
            let take = min(64 - pending.count, input.count)
            pending += input.prefix(take)
            input = input.dropFirst(take)
            if pending.count == 64 {
                compress(pending[...])
                pending.removeAll(keepingCapacity: true)
            }
        }
        while input.count >= 64 {
            compress(input.prefix(64))
            input = input.dropFirst(64)
        }
        pending += input
    }

    mutating func finish() -> [UInt8] {
        let bitLength = length &* 8
        var tail = pending
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) {
            tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
        }
        var offset = 0
        while offset < tail.count {
            compress(tail[offset..<offset + 64])
            offset += 64
        }
        return state.flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> UInt32(24 - 8 * $0)) } }
    }

    private mutating func compress(_ block: ArraySlice<UInt8>) {
        var w = [UInt32](repeating: 0, count: 64)
        let base = block.startIndex
        for i in 0..<16 {
            w[i] = (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(block[base + 4 * i + $1]) }
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = (state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7])
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = h &+ s1 &+ ch &+ SHA256.k[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            (h, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        for (i, v) in [a, b, c, d, e, f, g, h].enumerated() { state[i] = state[i] &+ v }
    }

    private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}
