// Bad input on the control socket gets a varlink error or a closed
// connection, never a crash or unbounded memory, and other clients keep
// being served.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The daemon's resident memory in KiB.
func residentKiB(_ pid: pid_t) -> Int {
    let status = readFile("/proc/\(pid)/status")
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

func expectRemoteError(_ name: String, _ body: () throws -> Void) {
    #expect {
        try body()
    } throws: { error in
        guard case VarlinkClientError.remote(let got, _) = error else { return false }
        return got == name
    }
}

@Suite("Control socket")
struct SocketTests {
    @Test("the socket is created mode 0660")
    func socketMode() throws {
        let daemon = try Daemon()
        var info = stat()
        #expect(stat(daemon.socket, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o660)
    }

    @Test("unknown methods, missing and mistyped parameters get named errors")
    func namedErrors() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob])
        let client = try daemon.client()
        expectRemoteError(ServiceError.methodNotFound) { _ = try client.call("io.tessera.Manager.Explode") }
        expectRemoteError(ServiceError.invalidParameter) { _ = try client.call("io.tessera.Manager.GetRun") }
        expectRemoteError(ServiceError.invalidParameter) {
            _ = try client.call("io.tessera.Manager.GetRun", ["id": "seven"])
        }
        expectRemoteError(ServiceError.invalidParameter) {
            _ = try client.call("io.tessera.Manager.StartRun", ["job": .int(5)])
        }
        expectRemoteError(ManagerError.runNotFound) { _ = try client.call("io.tessera.Manager.GetRun", ["id": 99]) }
        expectRemoteError(ServiceError.interfaceNotFound) {
            _ = try client.call("org.varlink.service.GetInterfaceDescription", ["interface": "com.example.Nope"])
        }
        // The same connection still works after errors.
        #expect(try client.call("io.tessera.Manager.GetStatus")["status"]?["jobs"]?.intValue == 1)
    }

    @Test("bytes that are not a varlink call close that connection only")
    func garbage() throws {
        let daemon = try Daemon()
        for junk in ["not json at all", "[1,2,3]", "{\"parameters\":{}}", "{\"method\":5}", "\u{FF}\u{FE}"] {
            let bad = try daemon.client()
            let healthy = try daemon.client()
            try bad.sendRaw(Array(junk.utf8) + [0])
            #expect(throws: VarlinkClientError.self) { _ = try bad.receive() }
            #expect(try healthy.call("io.tessera.Manager.GetStatus")["status"] != nil)
        }
        #expect(daemon.isAlive)
    }

    @Test("a 64 MiB message without a NUL is refused without holding the memory")
    func hugeMessage() throws {
        let daemon = try Daemon()
        let before = residentKiB(daemon.pid)
        let client = try daemon.client()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20)
        var sent = 0
        do {
            while sent < 64 {
                try client.sendRaw(chunk)
                sent += 1
            }
        } catch {
            // The daemon hung up part way, as it should.
        }
        #expect(sent < 64, "the daemon must close the connection long before 64 MiB")
        #expect(try daemon.call("GetStatus")["status"] != nil)
        #expect(residentKiB(daemon.pid) - before < 32 * 1024)
    }

    @Test("a client that disconnects mid-stream does not disturb the others")
    func disconnectMidStream() throws {
        let daemon = try Daemon(jobs: [
            "slow.yaml": "name: slow\nexecutor: shell\nparams: {command: [sleep, '0.5']}\nrange: {from: 0, to: 4}\n"
        ])
        let id = try daemon.startRun("slow")
        for _ in 0..<5 {
            let watcher = try daemon.client()
            try watcher.send(
                VarlinkCall(method: "io.tessera.Manager.WatchRun", parameters: ["id": .int(id)], more: true))
            _ = try watcher.receive()
        }
        // The watchers above are gone (their connections closed on scope exit).
        let run = try daemon.wait(forRun: id)
        #expect(run.state == .succeeded)
        #expect(daemon.isAlive)
    }

    @Test("calls on one connection are answered in order, oneway calls not at all")
    func pipelining() throws {
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob])
        let client = try daemon.client()
        var bytes: [UInt8] = []
        bytes += VarlinkCall(method: "io.tessera.Manager.GetStatus", oneway: true).json.varlinkFrame
        bytes += VarlinkCall(method: "io.tessera.Manager.ListJobs").json.varlinkFrame
        bytes += VarlinkCall(method: "io.tessera.Manager.GetRun", parameters: ["id": 42]).json.varlinkFrame
        bytes += VarlinkCall(method: "org.varlink.service.GetInfo").json.varlinkFrame
        try client.sendRaw(bytes)
        #expect(try client.receive().parameters["jobs"]?.arrayValue?.count == 1)
        #expect(try client.receive().error == ManagerError.runNotFound)
        #expect(try client.receive().parameters["product"]?.stringValue == "tesserad")
    }
}
