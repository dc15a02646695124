// ServerConfig.swift
//
// Why this file exists: it is the daemon's own configuration,
// `/etc/tessera/tessera.yaml`: where its socket, state, plugins and jobs are,
// how many microtasks run at once, and the default limits and sandbox. Every
// key is optional; unknown keys are errors. A later key is one line in
// `knownKeys`, a later default one line in `defaultsKeys`.

/// The configuration of `tesserad`.
public struct ServerConfig: Sendable, Equatable {
    public static let defaultSocket = "/run/tessera/tessera.sock"
    public static let defaultStateDir = "/var/lib/tessera"
    public static let defaultPluginDirs = ["/usr/lib/tessera/plugins"]
    public static let defaultJobsDirs = ["/etc/tessera/jobs.d"]
    /// The number of CPUs online.
    public static var defaultSlots: Int { POSIX.onlineProcessorCount() }

    /// The path of the control socket (`socket`).
    public var socket: String
    /// Where the state database lives (`state_dir`).
    public var stateDir: String
    /// Where executor plugins are loaded from, in order (`plugin_dirs`).
    public var pluginDirs: [String]
    /// Where job files are read from, in order (`jobs_dirs`).
    public var jobsDirs: [String]
    /// How many microtasks run at once (`slots`).
    public var slots: Int
    /// Limits for stages that do not set their own (the limit keys of `defaults`).
    public var defaults: Limits
    /// Sandbox settings for stages that do not set their own (`defaults.sandbox`).
    public var defaultSandbox: SandboxSettings
    /// `access:`, who may read and who may change state.
    public var access: AccessRules
    /// `shutdown_timeout:`, how long running microtasks may go on after
    /// SIGTERM before they are killed, in milliseconds.
    public var shutdownTimeout: UInt64
    public static let defaultShutdownTimeout: UInt64 = 30_000
    /// `plugin_timeout:`, how long reading the plugins' declarations may
    /// take before the process doing it is killed, in milliseconds.
    public var pluginTimeout: UInt64 = defaultPluginTimeout
    public static let defaultPluginTimeout: UInt64 = 10_000
    /// `log_level:`, one of `logLevels`; nil: info, or what --log-level says.
    public var logLevel: String?
    public static let logLevels = ["error", "warning", "notice", "info", "debug"]
    /// The file the configuration was read from, as the loader was given it.
    public var file: String
    /// What microtasks' `requests` are admitted against (`capacity:`).
    public var capacity: Capacity = .automatic
    /// When the machine is too busy to start more (`pressure:`); off by default.
    public var pressure = PressureSettings()
    /// How long and how many finished runs are kept (`retention:`).
    public var retention = Retention.standard
    /// Where metrics are served over HTTP, if anywhere (`metrics:`).
    public var metrics = MetricsSettings()

    /// A configuration with every key at its default; `slots` defaults to the
    /// number of online CPUs. Relative paths are kept as written, for the
    /// caller to resolve.
    public init(
        file: String, socket: String = defaultSocket, stateDir: String = defaultStateDir,
        pluginDirs: [String] = defaultPluginDirs, jobsDirs: [String] = defaultJobsDirs,
        slots: Int = defaultSlots, defaults: Limits = Limits(), defaultSandbox: SandboxSettings = SandboxSettings(),
        access: AccessRules = AccessRules(), shutdownTimeout: UInt64 = defaultShutdownTimeout
    ) {
        self.file = file
        self.socket = socket
        self.stateDir = stateDir
        self.pluginDirs = pluginDirs
        self.jobsDirs = jobsDirs
        self.slots = slots
        self.defaults = defaults
        self.defaultSandbox = defaultSandbox
        self.access = access
        self.shutdownTimeout = shutdownTimeout
    }

    /// The keys of the server configuration.
    static let knownKeys: [KnownKey<ServerConfig>] = [
        KnownKey("socket", \.socket) { $0.filePath() },
        KnownKey("state_dir", \.stateDir) { $0.filePath() },
        KnownKey("plugin_dirs", \.pluginDirs) { $0.filePathList() },
        KnownKey("jobs_dirs", \.jobsDirs) { $0.filePathList() },
        KnownKey("slots", \.slots) { $0.positiveInteger() },
        KnownKey("access", \.access) { AccessRules.decode($0) },
        KnownKey("shutdown_timeout", \.shutdownTimeout) { $0.duration() },
        KnownKey("plugin_timeout", \.pluginTimeout) { $0.duration() },
        KnownKey("capacity", \.capacity) { Capacity.decode($0) },
        KnownKey("pressure", \.pressure) { PressureSettings.decode($0) },
        KnownKey("metrics", \.metrics) { MetricsSettings.decode($0) },
        KnownKey("retention") { config, node in
            guard let retention = Retention.decode(node) else { return }
            config.retention = retention.overlaid(on: .standard)
        },
        KnownKey("log_level", \.logLevel) { node in
            guard let text = node.string(), ServerConfig.logLevels.contains(text) else {
                node.reportExpected(ServerConfig.logLevels.joined(separator: ", "))
                return nil
            }
            return text
        },
        KnownKey("defaults") { config, node in
            guard let mapping = node.mapping() else { return }
            mapping.decode(Limits.knownKeys, into: &config.defaults, alsoAllowed: defaultsKeys.map(\.name))
            mapping.decodeKnownKeys(defaultsKeys, into: &config)
        },
    ]

    /// The keys of `defaults` besides the limits.
    static let defaultsKeys: [KnownKey<ServerConfig>] = [
        KnownKey("sandbox", \.defaultSandbox) { SandboxSettings.decode($0) }
    ]

    /// Decodes a configuration file's tree; nil after a diagnostic. An empty
    /// file is a configuration with every key at its default.
    static func decode(_ root: YAMLNode?, diagnostics: DiagnosticCollector) -> ServerConfig? {
        var config = ServerConfig(file: diagnostics.file)
        if let root {
            guard let mapping = ConfigNode(root, path: .root, diagnostics: diagnostics).mapping() else { return nil }
            mapping.decode(knownKeys, into: &config)
        }
        return diagnostics.diagnostics.isEmpty ? config : nil
    }
}

extension ConfigNode {
    /// A file-system path: a non-empty string.
    func filePath() -> String? {
        guard let path = string(expected: "a path") else { return nil }
        guard !path.isEmpty else {
            reportExpected("a path")
            return nil
        }
        return path
    }

    /// A list of file-system paths.
    func filePathList() -> [String]? {
        list(expected: "a list of paths") { $0.filePath() }
    }
}
