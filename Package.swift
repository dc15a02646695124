// swift-tools-version: 6.0
//
// Tessera: a job server that runs microtasks in forked, sandboxed workers.
// The layout follows ARCHITECTURE.md: C system-library shims, the plugin ABI
// header, library modules, two Swift executables and the test suite's Swift
// plugin. The worker (Sources/tessera-worker) and the C plugins (the shipped
// ones under Plugins/, and the test suite's hostile and malformed ones under
// Tests/Plugins) are C, built by the Makefile with the C compiler.
import PackageDescription

// The daemon's own modules are built for release without the runtime
// check of exclusive access (class properties, globals): it was 5% of the
// daemon's CPU per microtask under load. Debug builds, the ones the test
// suite runs, keep the check, so a violation still fails a test; the
// compile-time check is on in both.
let releaseHotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Tessera",
    products: [
        .executable(name: "tesserad", targets: ["tesserad"]),
        .executable(name: "tessera", targets: ["tessera"]),
        // The test suite's Swift executor plugin, built as
        // libtessera-test-swift.so and not installed: it shows that plugins
        // need not be C. The worker zygote and every shipped plugin are built
        // with the C compiler by the Makefile (`make c-products`), so that
        // they carry no Swift runtime.
        .library(name: "tessera-test-swift", type: .dynamic, targets: ["SwiftChecksumTestPlugin"]),
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
        .target(
            name: "TesseraEngine", dependencies: ["TesseraConfig", "TesseraProtocol"], swiftSettings: releaseHotPath),
        .target(
            name: "TesseraStore", dependencies: ["CSQLite", "TesseraConfig", "TesseraEngine", "TesseraProtocol"],
            swiftSettings: releaseHotPath),
        .target(
            name: "TesseraDaemon",
            dependencies: [
                "CLibSystemd", "CLibUV", "CTesseraShims", "CTesseraWire", "TesseraConfig", "TesseraEngine",
                "TesseraProtocol", "TesseraStore", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: releaseHotPath
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
        .target(
            name: "SwiftChecksumTestPlugin",
            dependencies: ["TesseraPluginABI"],
            path: "Tests/Plugins/swiftchecksum"
        ),

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
