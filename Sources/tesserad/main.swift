// tesserad: the Tessera daemon. Parses the command line, then either checks
// the configuration (--check) or runs the daemon until it is told to stop.

import ArgumentParser
import TesseraDaemon
import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

struct Tesserad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tesserad",
        abstract: "The Tessera job server daemon.",
        discussion: "Runs the microtasks of the jobs in the configured jobs directories in forked "
            + "workers under resource limits, and serves the control socket. See tesserad(8).",
        version: tesseraVersion)

    @Option(name: .shortAndLong, help: "The server configuration file.")
    var config = "/etc/tessera/tessera.yaml"

    @Flag(help: "Validate the configuration, every job file and every plugin, print every problem, and exit.")
    var check = false

    @Option(
        help: ArgumentHelp(
            "The most verbose messages to log: error, warning, notice, info or debug; "
                + "overrides log_level: of the configuration (default: info).", valueName: "level"))
    var logLevel: String?

    func validate() throws {
        if let logLevel, LogLevel(name: logLevel) == nil {
            throw ValidationError(
                "--log-level must be one of error, warning, notice, info, debug; found \"\(logLevel)\"")
        }
    }

    func run() throws {
        bootstrapLogging()
        // The worker is C, but SwiftPM links it against the Swift runtime,
        // whose crash backtracer would print pages of noise for a plugin
        // that crashes while loading. Our own children inherit this; the
        // daemon's runtime read its setting at start already.
        setenv("SWIFT_BACKTRACE", "enable=no", 0)
        logThreshold = logLevel.flatMap(LogLevel.init(name:)) ?? .info
        let worker = WorkerLocator.find()
        if check {
            let (summary, problems) = Daemon.check(configPath: config, workerExecutable: worker)
            summary.forEach { print($0) }
            fflush(nil)
            problems.forEach { writeStandardError("\($0)\n") }
            if problems.isEmpty {
                print("configuration OK")
            } else {
                writeStandardError("\(problems.count) problem(s) found\n")
                throw ExitCode(1)
            }
            return
        }
        let daemon: Daemon
        do {
            daemon = try Daemon(configPath: config, workerExecutable: worker)
        } catch {
            writeStandardError("tesserad: \(error)\n")
            throw ExitCode(1)
        }
        if logLevel == nil, let configured = daemon.configuredLogLevel { logThreshold = configured }
        let code = daemon.run()
        if code != 0 { throw ExitCode(code) }
    }
}

Tesserad.main()
