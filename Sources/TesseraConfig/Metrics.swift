// Metrics.swift
//
// Why this file exists: operators plot a job server with Prometheus. The
// daemon always answers GetMetrics on its control socket; with
// `metrics: {listen: 127.0.0.1:9464}` it also serves `GET /metrics` over
// HTTP on its own loop. The address is an IP literal and a port (a bare
// port means loopback), so the configuration never depends on name
// resolution, and nothing listens unless asked.

/// `metrics:` of tessera.yaml.
public struct MetricsSettings: Sendable, Equatable {
    /// Where `GET /metrics` is served; nil: over the control socket only.
    public var listen: ListenAddress?

    public init(listen: ListenAddress? = nil) { self.listen = listen }

    static let knownKeys: [KnownKey<MetricsSettings>] = [
        KnownKey("listen", \.listen) { ListenAddress.decode($0) }
    ]

    static func decode(_ node: ConfigNode) -> MetricsSettings? {
        guard let mapping = node.mapping(expected: "a mapping such as {listen: 127.0.0.1:9464}") else { return nil }
        var settings = MetricsSettings()
        mapping.decode(knownKeys, into: &settings)
        return settings
    }
}

/// An IP address literal and a TCP port.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Whether only this machine can reach it.
    public var isLoopback: Bool { host == "::1" || host.hasPrefix("127.") }

    /// `9464` (loopback), `127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464`.
    public static func parse(_ text: String) -> ListenAddress? {
        if let port = Int(text) { return valid(port) ? ListenAddress(host: "127.0.0.1", port: port) : nil }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            let parts = host.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return nil }
        }
        guard let port = Int(portText), valid(port) else { return nil }
        return ListenAddress(host: String(host), port: port)
    }

    private static func valid(_ port: Int) -> Bool { (1...65535).contains(port) }

    static func decode(_ node: ConfigNode) -> ListenAddress? {
        let expected = "an address and port such as 127.0.0.1:9464, [::1]:9464 or 9464 (loopback)"
        guard let text = node.string(expected: expected) else { return nil }
        guard let address = parse(text) else {
            node.reportExpected(expected)
            return nil
        }
        return address
    }
}
