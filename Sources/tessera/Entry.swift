// The entry point: the command line as people type it, made into one that
// ArgumentParser reads. The shared options (--socket, --json) may come
// before the command, as `git -C` and `systemctl --user` do; a word that
// is no command is named, with the command that was probably meant; and
// errors are printed as "tessera: <sentence>".

import ArgumentParser
import TesseraConfig

#if canImport(Glibc)
    import Glibc
#endif

@main
enum Entry {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let commands = Tessera.configuration.subcommands.map { $0._commandName } + ["help"]
        switch CommandLineWords.arrange(arguments, commands: commands) {
        case .arguments(let arranged):
            do {
                var command = try Tessera.parseAsRoot(arranged)
                try command.run()
            } catch let error as CLIError {
                writeStandardError("tessera: \(error.description)\n")
                exit(1)
            } catch {
                Tessera.exit(withError: error)
            }
        case .unknownCommand(let word):
            let meant = suggestion(for: word, among: commands).map { "; did you mean \"\($0)\"?" } ?? ""
            writeStandardError(
                "tessera: unknown command \"\(word)\"\(meant)\n"
                    + "commands: \(commands.dropLast().joined(separator: ", ")); see tessera --help\n")
            exit(64)
        }
    }
}

/// Puts the shared options written before the command after it.
enum CommandLineWords {
    enum Arranged: Equatable {
        case arguments([String])
        case unknownCommand(String)
    }

    /// The options every command takes, and whether each takes a value.
    static let sharedOptions: [String: Bool] = ["--socket": true, "--json": false]

    static func arrange(_ arguments: [String], commands: [String]) -> Arranged {
        var moved: [String] = []
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            let name = String(word.prefix { $0 != "=" })
            guard let takesValue = sharedOptions[name] else { break }
            moved.append(word)
            if takesValue && !word.contains("=") && index + 1 < arguments.count {
                moved.append(arguments[index + 1])
                index += 1
            }
            index += 1
        }
        guard index < arguments.count else { return .arguments(arguments) }
        let command = arguments[index]
        // Options of the root command itself (--help, --version) are left
        // for ArgumentParser to handle and to report.
        if command.hasPrefix("-") { return .arguments(arguments) }
        guard commands.contains(command) else { return .unknownCommand(command) }
        return .arguments([command] + moved + arguments[(index + 1)...])
    }
}
