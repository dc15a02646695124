// Logging to standard error with sd-daemon(3) level prefixes ("<3>"), which
// journald turns into priorities and a terminal shows as they are. Kept
// deliberately small: the level check is a comparison, so disabled levels
// cost nothing on the hot path.

#if canImport(Glibc)
    import Glibc
#endif

public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
    case error = 3, warning = 4, notice = 5, info = 6, debug = 7

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    public init?(name: String) {
        guard let level = LogLevel.allCases.first(where: { "\($0)" == name }) else { return nil }
        self = level
    }
}

/// The most verbose level written; set once at start-up.
nonisolated(unsafe) public var logThreshold: LogLevel = .info

func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
    guard level <= logThreshold else { return }
    writeStandardError("<\(level.rawValue)>\(message())\n")
}

/// Writes text to standard error at once, unbuffered.
public func writeStandardError(_ text: String) {
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        offset += n
    }
}

func logError(_ message: @autoclosure () -> String) { log(.error, message()) }
func logWarning(_ message: @autoclosure () -> String) { log(.warning, message()) }
func logInfo(_ message: @autoclosure () -> String) { log(.info, message()) }
func logDebug(_ message: @autoclosure () -> String) { log(.debug, message()) }
