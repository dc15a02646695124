// Finds the tessera-worker binary: $TESSERA_WORKER, else beside tesserad
// (a build tree), else the installed ../lib/tessera/tessera-worker.

#if canImport(Glibc)
    import Glibc
#endif

public enum WorkerLocator {
    public static func find() -> String {
        if let override = getenv("TESSERA_WORKER") { return String(cString: override) }
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return "/usr/lib/tessera/tessera-worker" }
        let exe = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let directory = String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)])
        let candidates = [directory + "/tessera-worker", directory + "/../lib/tessera/tessera-worker"]
        return candidates.first { access($0, X_OK) == 0 } ?? candidates[1]
    }
}
