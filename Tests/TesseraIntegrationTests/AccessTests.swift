// Access control on the control socket: the peer's credentials decide who
// may read and who may change state. The other user is a real process
// (the tessera CLI under setpriv as nobody), against the real daemon.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Access control")
struct AccessTests {
    /// The CLI as nobody, after letting nobody's group reach the socket.
    static func asNobody(_ daemon: Daemon, _ arguments: [String]) -> (status: Int32, stdout: String, stderr: String) {
        chmod(daemon.directory, 0o755)
        chown(daemon.socket, UInt32.max, 65534)
        return runProgram(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "\(binDirectory)/tessera"] + arguments
                + ["--socket", daemon.socket])
    }

    @Test("by default anyone who can connect may read, and only root and the daemon's user may change state")
    func defaults() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob])
        let status = AccessTests.asNobody(daemon, ["status"])
        #expect(status.status == 0, "\(status.stderr)")
        let run = AccessTests.asNobody(daemon, ["run", "hello"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("permission denied to call io.tessera.Manager.StartRun"), "\(run.stderr)")
        #expect(daemon.log.contains("denied io.tessera.Manager.StartRun to uid 65534 gid 65534"))
        #expect(try daemon.call("ListRuns")["runs"]?.arrayValue?.isEmpty == true, "nothing was started")
        #expect(try daemon.startRun("hello") == 1, "root is always an admin")
    }

    @Test("access: admits a group as admin and keeps others from reading")
    func rules() throws {
        let admins = try Daemon(
            jobs: ["hello.yaml": helloJob], extraConfig: "access: {admin: [group: nogroup]}")
        let run = AccessTests.asNobody(admins, ["run", "hello", "--wait"])
        #expect(run.status == 0, "\(run.stderr)")

        let readers = try Daemon(jobs: ["hello.yaml": helloJob], extraConfig: "access: {read: [user: root]}")
        let status = AccessTests.asNobody(readers, ["status"])
        #expect(status.status != 0)
        #expect(status.stderr.contains("permission denied to call io.tessera.Manager.GetStatus"), "\(status.stderr)")
    }
}
