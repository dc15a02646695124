// The tessera CLI against a real daemon: tables for people, JSON for
// programs, exit codes that say whether a run succeeded, and errors
// written as sentences.

import TesseraProtocol
import Testing

@Suite("CLI")
struct CLITests {
    @Test("the README's first session works")
    func firstSession() throws {
        let daemon = try Daemon(jobs: [
            "hello.yaml": helloJob,
            "failing.yaml": "name: failing\nexecutor: shell\nparams: {command: ['false']}\n",
        ])
        let status = daemon.cli(["status"])
        #expect(status.status == 0)
        #expect(status.stdout.contains("0 running of 2 slots"))

        let jobs = daemon.cli(["jobs"])
        #expect(jobs.stdout.split(separator: "\n").first?.hasPrefix("JOB") == true)
        #expect(jobs.stdout.contains("hello"))

        let run = daemon.cli(["run", "hello", "--wait"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("run 1 succeeded: 3 succeeded, 0 failed"))

        let tasks = daemon.cli(["tasks", "1"])
        let lines = tasks.stdout.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[1].contains("alpha") && lines[1].contains("succeeded"))

        let json = daemon.cli(["tasks", "1", "--json"])
        let parsed = try JSON.parse(json.stdout.trimmingWhitespace)
        #expect(parsed.arrayValue?.count == 3)

        let output = daemon.cli(["output", "1", "2"])
        #expect(output.stdout == "hello gamma\n")

        let failing = daemon.cli(["run", "failing", "--wait"])
        #expect(failing.status == 1)
        #expect(failing.stdout.contains("failed"))

        let runs = daemon.cli(["runs", "--json"])
        #expect(try JSON.parse(runs.stdout.trimmingWhitespace).arrayValue?.count == 2)
    }

    @Test("errors read as sentences, not JSON")
    func errors() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob])
        let unknown = daemon.cli(["run", "nope"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("no job named \"nope\""))
        #expect(!unknown.stderr.contains("{"))

        let missing = daemon.cli(["show", "77"])
        #expect(missing.stderr.contains("no run with id 77"))

        let badParam = daemon.cli(["run", "hello", "--param", "colour=red"])
        #expect(badParam.stderr.contains("invalid parameter \"colour\""))

        let noDaemon = runProgram(["\(binDirectory)/tessera", "status", "--socket", "/nonexistent/sock"])
        #expect(noDaemon.status != 0)
        #expect(noDaemon.stderr.contains("cannot connect to /nonexistent/sock"))
    }
}

extension String {
    var trimmingWhitespace: String {
        String(self.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}

@Suite("CLI help")
struct CLIHelpTests {
    @Test("the help text lists every command, as the man page does")
    func helpText() {
        let help = runProgram(["\(binDirectory)/tessera", "--help"])
        #expect(help.status == 0)
        let section = help.stdout.firstRange(of: "SUBCOMMANDS:\n").map { String(help.stdout[$0.upperBound...]) }
        #expect(
            section == """
                  status                  Show the daemon's status.
                  plugins                 List plugins, executors and their parameters.
                  jobs                    List the loaded jobs.
                  run                     Start a run of a job.
                  rerun                   Run an earlier run's job again.
                  runs                    List recent runs, newest first.
                  show                    Show one run: how it started and its stages.
                  tasks                   List the microtasks of a run.
                  results                 Print a run's results in index order.
                  attempts                List every attempt at one microtask.
                  output                  Print what a microtask wrote to stdout and stderr.
                  logs                    Print what a run's microtasks wrote, and follow it.
                  watch                   Follow a run's progress until it ends.
                  wait                    Wait for a run to end, and exit with its outcome.
                  events                  Show the daemon's event log, and follow it.
                  top                     Show the daemon's activity live, full screen.
                  cancel                  Cancel a run: queued tasks are dropped, running ones
                                          killed.
                  delete                  Delete a run that has ended, with its microtasks,
                                          output and events.
                  reload                  Re-read the configuration, plugins and job files.

                  See 'tessera help <subcommand>' for detailed help.

                """)
        let version = runProgram(["\(binDirectory)/tesserad", "--version"])
        #expect(version.stdout == "\(tesseraVersion)\n")
    }
}
