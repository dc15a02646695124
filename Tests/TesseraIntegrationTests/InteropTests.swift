// An independent varlink client (the `varlink` package from PyPI, installed
// by `make test`) against the real daemon: the protocol is varlink, not
// something only our own client understands.

import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Varlink interoperability")
struct InteropTests {
    /// The repository's top directory, from this file's path.
    static let repository: String = {
        let file = #filePath
        let parts = file.split(separator: "/", omittingEmptySubsequences: false)
        return parts.dropLast(3).joined(separator: "/")
    }()

    @Test("the Python varlink client calls, streams and sees named errors")
    func pythonClient() throws {
        let module = runProgram(["python3", "-c", "import varlink"])
        try #require(module.status == 0, "the varlink Python package is missing; `make test` installs it")
        let daemon = try Daemon(jobs: ["hello.yaml": helloJob])
        let result = runProgram([
            "python3", InteropTests.repository + "/Tests/interop/varlink_client.py", daemon.socket, "hello",
        ])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(!result.stdout.contains("FAIL"))
        #expect(result.stdout.split(separator: "\n").count == 6)
    }
}
