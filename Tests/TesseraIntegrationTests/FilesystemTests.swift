// The file system a sandboxed microtask sees: writable paths that lie
// under its private /tmp, the daemon's own files hidden from it, and a
// /tmp whose size is its bound. Each runs through the real daemon.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Sandbox: the file system view", .serialized)
struct FilesystemTests {
    @Test("a writable path under the private /tmp is bound into it and reaches the host")
    func writableUnderPrivateTmp() throws {
        let directory = "/tmp/tessera-out-\(getpid())"
        mkdir(directory, 0o777)
        chmod(directory, 0o777)
        defer { removeTree(directory) }
        let daemon = try Daemon(
            jobs: [
                "out.yaml": """
                name: out
                executor: write_file
                params: {target: "\(directory)/inside"}
                sandbox: {filesystem: {writable: ["\(directory)"]}}
                """
            ], plugins: ["test-attacks"])
        let id = try daemon.startRun("out")
        let run = try daemon.wait(forRun: id)
        let stderr = try daemon.output(id, 0)?.stderr ?? ""
        #expect(run.state == .succeeded, "\(stderr)")
        #expect(readFile(directory + "/inside") == "tessera\n")
    }

    @Test("a writable path under a hidden directory is the only thing seen there")
    func writableUnderHidden() throws {
        let directory = "/var/lib/tessera-hidden-\(getpid())"
        mkdir(directory, 0o755)
        mkdir(directory + "/out", 0o777)
        chmod(directory + "/out", 0o777)
        writeFile(directory + "/secret", "secret\n")
        defer { removeTree(directory) }
        let daemon = try Daemon(jobs: [
            "nested.yaml": """
            name: nested
            executor: shell
            params: {command: [sh, -c, "ls \(directory); echo written > \(directory)/out/file"]}
            sandbox: {filesystem: {hidden: ["\(directory)"], writable: ["\(directory)/out"]}}
            """
        ])
        let id = try daemon.startRun("nested")
        let run = try daemon.wait(forRun: id)
        let output = try #require(try daemon.output(id, 0))
        #expect(run.state == .succeeded, "\(output.stderr)")
        #expect(output.stdout == "out\n", "only the mount point of the writable path: \(output.stdout)")
        #expect(readFile(directory + "/out/file") == "written\n")
    }

    @Test("the configuration, the job files and the state directory are hidden unless a stage names them")
    func daemonFilesAreHidden() throws {
        let daemon = try Daemon(start: false)
        // Open to anyone, and read as root inside with the host's /tmp, so
        // that only hiding them keeps them from the microtask.
        chmod(daemon.directory, 0o755)
        let look =
            "cat \(daemon.configPath); ls \(daemon.jobsDirectory); ls \(daemon.directory)/state; echo done"
        writeFile(
            daemon.jobsDirectory + "/peek.yaml",
            """
            name: peek
            stages:
              - name: hidden
                executor: shell
                params: {command: [sh, -c, "\(look)"]}
                sandbox: {user: 0, filesystem: {tmp: shared}}
              - name: named
                executor: shell
                params: {command: [ls, "\(daemon.jobsDirectory)"]}
                sandbox: {user: 0, filesystem: {tmp: shared, read_only: [/, "\(daemon.jobsDirectory)"]}}
            """)
        try daemon.start()
        let id = try daemon.startRun("peek")
        _ = try daemon.wait(forRun: id)
        let hidden = try #require(try daemon.output(id, 0))
        #expect(hidden.stdout.hasSuffix("done\n"), "\(hidden.stdout)\(hidden.stderr)")
        #expect(!hidden.stdout.contains("socket:"), "the configuration is readable: \(hidden.stdout)")
        #expect(!hidden.stdout.contains("peek.yaml"), "the job files are listed: \(hidden.stdout)")
        #expect(!hidden.stdout.contains("tessera.db"), "the state is listed: \(hidden.stdout)")
        let named = try #require(try daemon.output(id, 1))
        #expect(named.stdout.contains("peek.yaml"), "a stage that names the directory sees it: \(named.stderr)")
    }

    @Test("the private /tmp is bounded by tmp_size")
    func tmpSize() throws {
        let daemon = try Daemon(jobs: [
            "fill.yaml": """
            name: fill
            executor: shell
            params: {command: [sh, -c, "head -c 3000000 /dev/zero > /tmp/big"]}
            sandbox: {filesystem: {tmp_size: 1MiB}}
            """
        ])
        let id = try daemon.startRun("fill")
        #expect(try daemon.wait(forRun: id).state == .failed)
        let task = try #require(try daemon.tasks(id).first)
        #expect(task.reason?.contains("No space left on device") == true, "\(task.reason ?? "")")
        let check = runProgram(["\(binDirectory)/tesserad", "--check", "--config", daemon.configPath])
        #expect(check.stdout.contains("private /tmp of 1MiB"), "\(check.stdout)")
    }

    @Test("tesserad --check says what the memory and file size limits do not bound")
    func checkTellsTheLimitsOfRlimits() throws {
        let daemon = try Daemon(jobs: [
            "big.yaml": """
            name: big
            executor: shell
            params: {command: ["true"]}
            limits: {memory: 256MiB, file_size: 64MiB}
            """,
            "bare.yaml": "name: bare\nexecutor: shell\nparams: {command: [\"true\"]}\nsandbox: {namespaces: [pid]}\n",
        ])
        let check = runProgram(["\(binDirectory)/tesserad", "--check", "--config", daemon.configPath])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(
            check.stdout.contains("memory 256MiB (RLIMIT_AS: the address space of each process"),
            "\(check.stdout)")
        #expect(check.stdout.contains("memfd and tmpfs pages are not counted"), "\(check.stdout)")
        #expect(
            check.stdout.contains("file_size 64MiB (RLIMIT_FSIZE: each file on its own"), "\(check.stdout)")
        #expect(
            check.stdout.contains(
                "(no mount namespace): the daemon's configuration, job files and state are not hidden"),
            "a stage without a mount namespace is told it sees the daemon's files: \(check.stdout)")
    }
}
