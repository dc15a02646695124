// tessera: the command-line client of tesserad. The root command holds only
// the subcommands; each lives in its own file. See tessera(1).

import ArgumentParser
import TesseraProtocol

struct Tessera: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera",
        abstract: "Control the Tessera job server.",
        discussion: "Talks varlink to tesserad's control socket: --socket, else $TESSERA_SOCKET, else "
            + "/run/tessera/tessera.sock. Every command takes --json for output meant for programs.",
        version: tesseraVersion,
        subcommands: [
            Status.self, Plugins.self, Jobs.self, Run.self, Rerun.self, Runs.self, Show.self, Tasks.self,
            Results.self, Attempts.self, Output.self, Logs.self, Watch.self, Wait.self, Events.self, Top.self,
            Cancel.self,
            Delete.self, Reload.self,
        ])
}
