// `GET /metrics` over HTTP/1.x on the daemon's own loop, for Prometheus,
// when `metrics: {listen: ...}` is set. Nothing else is served: other paths
// get 404, other methods 405, a request head over 8 KiB 431. One request
// per connection (Connection: close), at most 64 connections at once, and
// one that has not sent its request and taken its answer within 10 seconds
// is closed, so a slow or idle client holds nothing for long.

import TesseraConfig
import TesseraProtocol

/// The largest request head read.
private let maximumHead = 8 << 10
/// Connections served at once; more are closed at accept.
private let maximumConnections = 64
/// How long a connection may take to send its request (ms).
private let requestTimeout: UInt64 = 10_000

final class MetricsConnection {
    let stream: Stream
    let opened: UInt64
    var head: [UInt8] = []
    var answered = false

    init(stream: Stream, opened: UInt64) {
        self.stream = stream
        self.opened = opened
    }
}

extension Daemon {
    func openMetricsListener() {
        guard let address = config.metrics.listen else { return }
        let stream = Stream(tcpLoop: loop)
        do {
            try stream.listen(host: address.host, port: address.port) { [unowned self] in self.acceptMetrics() }
        } catch {
            stream.close()
            logError("metrics: cannot listen on \(address): \(error); metrics stay on the control socket (GetMetrics)")
            return
        }
        metricsListener = stream
        if address.isLoopback {
            logInfo("metrics on http://\(address)/metrics")
        } else {
            logWarning("metrics on http://\(address)/metrics: not loopback, anyone who can reach it may read them")
        }
        metricsSweep.start(after: 1000, repeatEvery: 1000) { [unowned self] in
            // A connection that has not sent its request, or not taken its
            // answer, in 10 s is closed; closed ones are forgotten.
            let now = monotonicMilliseconds()
            for (key, connection) in self.metricsConnections {
                if now - connection.opened > requestTimeout { connection.stream.close() }
                if connection.stream.isClosing { self.metricsConnections.removeValue(forKey: key) }
            }
        }
    }

    private func acceptMetrics() {
        guard let listener = metricsListener, let client = listener.accept(loop: loop) else { return }
        guard metricsConnections.count < maximumConnections else { return client.close() }
        let connection = MetricsConnection(stream: client, opened: monotonicMilliseconds())
        let key = ObjectIdentifier(connection)
        metricsConnections[key] = connection
        client.onRead = { [unowned self, unowned connection] bytes in
            connection.head += bytes
            guard let end = connection.head.firstRange(of: [13, 10, 13, 10]) else {
                if connection.head.count > maximumHead { self.answerMetrics(connection, key, status: 431) }
                return
            }
            guard end.lowerBound <= maximumHead else { return self.answerMetrics(connection, key, status: 431) }
            let line = connection.head[..<(connection.head.firstRange(of: [13, 10])?.lowerBound ?? end.lowerBound)]
            let parts = line.split(separator: 0x20)
            guard parts.count == 3, parts[2].starts(with: Array("HTTP/1.".utf8)) else {
                return self.answerMetrics(connection, key, status: 400)
            }
            let method = String(decoding: parts[0], as: UTF8.self)
            let target = String(decoding: parts[1], as: UTF8.self)
            let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
            guard path == "/metrics" else { return self.answerMetrics(connection, key, status: 404) }
            guard method == "GET" || method == "HEAD" else { return self.answerMetrics(connection, key, status: 405) }
            self.answerMetrics(connection, key, status: 200, body: self.metricsText(), head: method == "HEAD")
        }
        client.onEnd = { [unowned self] _ in
            // Before its answer: nothing more will come. After: the answer
            // still goes out (a client may shut its side down first), and
            // the stream closes once it has.
            guard !connection.answered else { return }
            client.close()
            self.metricsConnections.removeValue(forKey: key)
        }
        client.startReading()
    }

    private func answerMetrics(
        _ connection: MetricsConnection, _ key: ObjectIdentifier, status: Int, body: String? = nil, head: Bool = false
    ) {
        let reasons = [
            200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large",
        ]
        let text = body ?? "\(reasons[status] ?? "Error"): only GET /metrics is served here\n"
        let contentType =
            status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8"
        var response = "HTTP/1.1 \(status) \(reasons[status] ?? "Error")\r\nContent-Type: \(contentType)\r\n"
        response += "Content-Length: \(text.utf8.count)\r\nConnection: close\r\n"
        if status == 405 { response += "Allow: GET, HEAD\r\n" }
        response += "\r\n"
        connection.answered = true
        connection.stream.onRead = nil
        connection.stream.write(Array(response.utf8) + (head ? [] : Array(text.utf8)))
        connection.stream.closeWhenWritten()
    }
}
