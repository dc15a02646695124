// Logging through swift-log with a handler of our own: under systemd (when
// JOURNAL_STREAM names our standard error) each entry goes to the journal
// with PRIORITY= and TESSERA_JOB=, TESSERA_RUN=, TESSERA_TASK= fields; on
// a plain terminal or file it is one line with an sd-daemon(3) level
// prefix ("<3>"), which journald also understands. The level check is a
// comparison, so disabled levels cost nothing on the hot path; nothing
// logs per microtask at the default level.

internal import CTesseraShims
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The names --log-level and log_level: accept, most severe first.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
    case error = 3, warning = 4, notice = 5, info = 6, debug = 7

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    public init?(name: String) {
        guard let level = LogLevel.allCases.first(where: { "\($0)" == name }) else { return nil }
        self = level
    }

    var swiftLogLevel: Logger.Level {
        switch self {
        case .error: return .error
        case .warning: return .warning
        case .notice: return .notice
        case .info: return .info
        case .debug: return .debug
        }
    }
}

/// The most verbose level written; set at start-up from --log-level or
/// log_level:.
nonisolated(unsafe) public var logThreshold: LogLevel = .info

/// tesserad's swift-log handler; install it with `bootstrapLogging()`.
public struct TesseraLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    /// Follows `logThreshold`, so the configuration can change it.
    public var logLevel: Logger.Level {
        get { logThreshold.swiftLogLevel }
        set {}
    }
    private let toJournal: Bool

    public init(label: String) {
        toJournal = TesseraLogHandler.stderrIsJournal()
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let priority = TesseraLogHandler.priority(event.level)
        let text = event.message.description
        if toJournal {
            let sent = text.withCString { message in
                withOptionalCString(merged["job"]?.description) { job in
                    withOptionalCString(merged["run"]?.description) { run in
                        withOptionalCString(merged["task"]?.description) { task in
                            tessera_journal_send(priority, message, job, run, task)
                        }
                    }
                }
            }
            if sent >= 0 { return }
        }
        writeStandardError("<\(priority)>\(text)\n")
    }

    static func priority(_ level: Logger.Level) -> Int32 {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// JOURNAL_STREAM is "device:inode" of the journal's stream; it applies
    /// only when standard error is still that stream (systemd.exec(5)).
    private static func stderrIsJournal() -> Bool {
        guard let value = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: value).split(separator: ":")
        var info = stat()
        guard parts.count == 2, fstat(2, &info) == 0 else { return false }
        return UInt64(parts[0]) == UInt64(info.st_dev) && UInt64(parts[1]) == UInt64(info.st_ino)
    }
}

private func withOptionalCString<T>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> T) -> T {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}

/// Installs TesseraLogHandler as swift-log's handler; call once, first.
public func bootstrapLogging() {
    LoggingSystem.bootstrap { label in TesseraLogHandler(label: label) }
}

nonisolated(unsafe) private var daemonLogger = Logger(label: "tesserad")

func log(_ level: LogLevel, _ message: @autoclosure () -> String, metadata: Logger.Metadata? = nil) {
    guard level <= logThreshold else { return }
    daemonLogger.log(level: level.swiftLogLevel, "\(message())", metadata: metadata)
}

func logError(_ message: @autoclosure () -> String) { log(.error, message()) }
func logWarning(_ message: @autoclosure () -> String) { log(.warning, message()) }
func logInfo(_ message: @autoclosure () -> String, metadata: Logger.Metadata? = nil) {
    log(.info, message(), metadata: metadata)
}
func logDebug(_ message: @autoclosure () -> String) { log(.debug, message()) }

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
