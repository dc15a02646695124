// Following survives a restart of tesserad: a stream that ends because the
// socket went away (the daemon was restarted, or crashed and systemd
// started it again) is taken up again on a new connection, for a while,
// from where it was. Each follower says how to continue (WatchRun again,
// events after the last id, output past what was printed).

import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// How long a follower keeps trying to reach a daemon that went away.
let reconnectPatience: Double = 60

/// Runs `body` on a connection; when the connection is lost (or cannot be
/// made) after `body` has started once, tries again every quarter second
/// for up to `reconnectPatience` seconds, telling standard error once.
/// `body` returns when it is done; it is called again after a reconnect and
/// must continue from its own state.
func withReconnect(_ options: GlobalOptions, _ body: (VarlinkClient) throws -> Void) throws {
    var lostAt: Double?
    var connectedOnce = false
    while true {
        do {
            let client = try VarlinkClient(path: options.socketPath)
            if lostAt != nil { writeStandardError("tessera: connected again\n") }
            connectedOnce = true
            lostAt = nil
            try body(client)
            return
        } catch let error as VarlinkClientError {
            guard connectedOnce, isConnectionLoss(error) else { throw CLIError(error.description) }
            let now = monotonicSeconds()
            if lostAt == nil {
                lostAt = now
                writeStandardError("tessera: lost the connection to tesserad (\(error)); reconnecting\n")
            } else if now - lostAt! > reconnectPatience {
                throw CLIError("tesserad did not come back within \(Int(reconnectPatience))s: \(error)")
            }
            usleep(250_000)
        }
    }
}

private func isConnectionLoss(_ error: VarlinkClientError) -> Bool {
    switch error {
    case .closed: return true
    case .connect(_, let code): return code == ENOENT || code == ECONNREFUSED
    case .io(_, let code): return code == ECONNRESET || code == EPIPE
    case .malformedReply, .remote: return false
    }
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
