// systemd's side of the daemon (sd_notify(3), sd_listen_fds(3)): the
// socket systemd passes when it activates us, READY=1 once configuration,
// plugins, store and worker are up, STATUS= lines, RELOADING=1 and
// STOPPING=1, and watchdog pings sent from the loop itself, so a stuck
// loop is noticed. Outside systemd (no NOTIFY_SOCKET) every call is a
// cheap no-op.

internal import CLibSystemd

#if canImport(Glibc)
    import Glibc
#endif

enum ServiceManager {
    /// The listening socket systemd passed, if exactly one was.
    static func passedSocket() -> Int32? {
        let count = sd_listen_fds(1)
        guard count >= 1 else { return nil }
        if count > 1 { logWarning("systemd passed \(count) sockets; using the first") }
        return SD_LISTEN_FDS_START
    }

    static var isNotifying: Bool { getenv("NOTIFY_SOCKET") != nil }

    static func notify(_ state: String) {
        guard isNotifying else { return }
        _ = state.withCString { sd_notify(0, $0) }
    }

    /// Milliseconds between watchdog pings (half of WATCHDOG_USEC), or nil.
    static var watchdogInterval: UInt64? {
        var microseconds: UInt64 = 0
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return max(microseconds / 2000, 1)
    }

    /// CLOCK_MONOTONIC in microseconds, for RELOADING=1's MONOTONIC_USEC=.
    static var monotonicMicroseconds: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }
}
