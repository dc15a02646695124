// swift-tools-version: 6.0
//
// Tessera: a job server that runs microtasks in forked, sandboxed workers.
// The layout follows ARCHITECTURE.md: C system-library shims, the plugin ABI
// header, library modules, three executables, the shipped plugins and the
// test plugins (hostile and malformed ones live under Tests/).
import PackageDescription

let package = Package(
    name: "Tessera",
    products: [
        .executable(name: "tesserad", targets: ["tesserad"]),
        .executable(name: "tessera", targets: ["tessera"]),
        .executable(name: "tessera-worker", targets: ["tessera-worker"]),
        // Executor plugins shipped with the product, built as lib<name>.so.
        .library(name: "tessera-shell", type: .dynamic, targets: ["ShellPlugin"]),
        .library(name: "tessera-noop", type: .dynamic, targets: ["NoopPlugin"]),
        .library(name: "tessera-checksum", type: .dynamic, targets: ["ChecksumPlugin"]),
        // Plugins used only by the test suite.
        .library(name: "tessera-test-hostile", type: .dynamic, targets: ["HostileTestPlugin"]),
        .library(name: "tessera-test-attacks", type: .dynamic, targets: ["AttackTestPlugin"]),
        .library(name: "tessera-test-crashinit", type: .dynamic, targets: ["CrashInitTestPlugin"]),
        .library(name: "tessera-test-wrongabi", type: .dynamic, targets: ["WrongABITestPlugin"]),
        .library(name: "tessera-test-noentry", type: .dynamic, targets: ["NoEntryTestPlugin"]),
        .library(name: "tessera-test-dupexec", type: .dynamic, targets: ["DuplicateExecutorTestPlugin"]),
        .library(name: "tessera-test-hanginit", type: .dynamic, targets: ["HangInitTestPlugin"]),
        .library(name: "tessera-test-manyexec", type: .dynamic, targets: ["ManyExecutorsTestPlugin"]),
        .library(name: "tessera-test-abi10", type: .dynamic, targets: ["ABI10TestPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // System libraries, found with pkg-config, installed from Debian.
        .systemLibrary(name: "CLibUV", pkgConfig: "libuv", providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "CLibYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLibSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),

        // The plugin ABI: one header, the whole contract between host and plugin.
        .target(name: "TesseraPluginABI"),
        // The daemon <-> worker wire format, shared by the C worker and the Swift daemon.
        .target(name: "CTesseraWire"),
        // System calls the daemon makes that Swift cannot call directly.
        .target(name: "CTesseraShims", linkerSettings: [.linkedLibrary("systemd")]),

        .target(name: "TesseraConfig", dependencies: ["CLibYAML"]),
        .target(
            name: "TesseraProtocol",
            resources: [.embedInCode("io.tessera.Manager.varlink")]
        ),
        // The microtask engine: runs, stages and microtasks as a state
        // machine, with no event loop, no database and no clock of its own.
        .target(name: "TesseraEngine", dependencies: ["TesseraConfig", "TesseraProtocol"]),
        .target(name: "TesseraStore", dependencies: ["CSQLite", "TesseraConfig", "TesseraEngine", "TesseraProtocol"]),
        .target(
            name: "TesseraDaemon",
            dependencies: [
                "CLibSystemd", "CLibUV", "CTesseraShims", "CTesseraWire", "TesseraConfig", "TesseraEngine",
                "TesseraProtocol", "TesseraStore", .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .executableTarget(
            name: "tesserad",
            dependencies: ["TesseraDaemon", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "tessera",
            dependencies: [
                "TesseraConfig", "TesseraProtocol", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The worker zygote is C on purpose: it forks, and the code between
        // fork() and the executor must not touch a language runtime.
        .executableTarget(
            name: "tessera-worker",
            dependencies: ["TesseraPluginABI", "CTesseraWire"],
            // -z now: resolve every symbol once in the zygote, not again in
            // each forked child on first call (about 30 µs a microtask).
            linkerSettings: [
                .linkedLibrary("dl"), .linkedLibrary("seccomp"), .unsafeFlags(["-Xlinker", "-z", "-Xlinker", "now"]),
            ]
        ),

        .target(name: "ShellPlugin", dependencies: ["TesseraPluginABI"], path: "Plugins/shell", publicHeadersPath: "."),
        .target(name: "NoopPlugin", dependencies: ["TesseraPluginABI"], path: "Plugins/noop", publicHeadersPath: "."),
        .target(name: "ChecksumPlugin", dependencies: ["TesseraPluginABI"], path: "Plugins/checksum"),

        .target(
            name: "CrashInitTestPlugin", dependencies: ["TesseraPluginABI"], path: "Tests/Plugins/crashinit",
            publicHeadersPath: "."),
        .target(
            name: "AttackTestPlugin", dependencies: ["TesseraPluginABI"], path: "Tests/Plugins/attacks",
            publicHeadersPath: "."),
        .target(
            name: "HostileTestPlugin", dependencies: ["TesseraPluginABI"], path: "Tests/Plugins/hostile",
            publicHeadersPath: "."),
        .target(
            name: "WrongABITestPlugin", dependencies: ["TesseraPluginABI"], path: "Tests/Plugins/wrongabi",
            publicHeadersPath: "."),
        .target(name: "NoEntryTestPlugin", path: "Tests/Plugins/noentry", publicHeadersPath: "."),
        .target(
            name: "DuplicateExecutorTestPlugin", dependencies: ["TesseraPluginABI"], path: "Tests/Plugins/dupexec",
            publicHeadersPath: "."),
        .target(
            name: "HangInitTestPlugin", dependencies: ["TesseraPluginABI"], path: "Tests/Plugins/hanginit",
            publicHeadersPath: "."),
        .target(
            name: "ManyExecutorsTestPlugin", dependencies: ["TesseraPluginABI"], path: "Tests/Plugins/manyexec",
            publicHeadersPath: "."),

        .target(
            name: "ABI10TestPlugin", dependencies: ["TesseraPluginABI"], path: "Tests/Plugins/abi10",
            publicHeadersPath: "."),

        .testTarget(name: "TesseraConfigTests", dependencies: ["TesseraConfig"]),
        .testTarget(name: "TesseraEngineTests", dependencies: ["TesseraEngine", "TesseraConfig", "TesseraProtocol"]),
        .testTarget(name: "TesseraProtocolTests", dependencies: ["TesseraProtocol"]),
        .testTarget(name: "TesseraStoreTests", dependencies: ["TesseraStore", "TesseraEngine", "TesseraProtocol"]),
        .testTarget(
            name: "TesseraIntegrationTests",
            dependencies: ["TesseraProtocol"]
        ),
    ]
)
