// Metrics as Prometheus reads them: GetMetrics on the control socket,
// GET /metrics over HTTP when metrics.listen is set, checked by the
// ecosystem's own tools: promtool, and a real Prometheus that scrapes the
// daemon and answers a query.

import Testing

@testable import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP socket bound to a loopback port of the kernel's pick (listening
/// when asked), and that port.
func loopbackSocket(listening: Bool) -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length)
            if listening { listen(fd, 1) }
            return getsockname(fd, pointer, &length)
        }
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// A TCP port nothing listens on now (the kernel's pick).
func freePort() -> Int {
    let (fd, port) = loopbackSocket(listening: false)
    close(fd)
    return port
}

/// An HTTP request with Python's standard library: (status, body).
func httpRequest(_ url: String, method: String = "GET") -> (status: Int, body: String) {
    let script = """
        import sys, urllib.request, urllib.error
        try:
            r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], method=sys.argv[2]), timeout=10)
            print(r.status); sys.stdout.write(r.read().decode())
        except urllib.error.HTTPError as e:
            print(e.code); sys.stdout.write(e.read().decode())
        except Exception as e:
            print(0); sys.stdout.write(str(e))
        """
    let result = runProgram(["python3", "-c", script, url, method])
    let lines = result.stdout.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
    return (Int(lines.first ?? "") ?? -1, lines.count > 1 ? String(lines[1]) : "")
}

@Suite("Metrics")
struct MetricsTests {
    static let flakyJob = """
        name: flaky
        executor: shell
        params: {command: [sh, -c, 'test "$TESSERA_ATTEMPT" -ge 2 || test "$1" = a', sh, "{{item}}"]}
        items: [a, b, c]
        retry: {attempts: 2, backoff: 10ms}

        """

    @Test("GetMetrics counts attempts by outcome, times them, and promtool finds nothing to say")
    func exposition() throws {
        let daemon = try Daemon(jobs: ["flaky.yaml": MetricsTests.flakyJob])
        let id = try daemon.startRun("flaky")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        let text = try #require(try daemon.call("GetMetrics")["text"]?.stringValue)
        #expect(
            text.contains("tessera_microtasks_total{tessera_job=\"flaky\",stage=\"main\",outcome=\"succeeded\"} 3\n"),
            "\(text)")
        #expect(text.contains("tessera_microtasks_total{tessera_job=\"flaky\",stage=\"main\",outcome=\"retried\"} 2\n"))
        #expect(text.contains("tessera_microtask_duration_seconds_count{tessera_job=\"flaky\",stage=\"main\"} 5\n"))
        // Buckets are cumulative: every attempt took less than an hour.
        let underAnHour =
            "tessera_microtask_duration_seconds_bucket{tessera_job=\"flaky\",stage=\"main\",le=\"3600\"} 5\n"
        #expect(text.contains(underAnHour))
        #expect(text.contains("tessera_microtask_queue_wait_seconds_count{tessera_job=\"flaky\",stage=\"main\"} 3\n"))
        #expect(text.contains("tessera_runs_total{tessera_job=\"flaky\",state=\"succeeded\"} 1\n"))
        #expect(text.contains("tessera_zygote_forks_total 5\n"))
        #expect(text.contains("tessera_slots 2\n") && text.contains("tessera_slots_in_use 0\n"))
        #expect(text.contains("tessera_admission_paused 0\n"))
        #expect(text.contains("# TYPE tessera_store_commit_seconds histogram\n"))
        let commits = text.split(separator: "\n").first { $0.hasPrefix("tessera_store_commit_seconds_count ") }
        #expect((commits?.split(separator: " ").last).flatMap { Int($0) }.map { $0 > 0 } == true, "\(text)")

        let directory = makeTemporaryDirectory("tessera-metrics")
        defer { removeTree(directory) }
        writeFile(directory + "/metrics.txt", text)
        let lint = runProgram(["promtool", "check", "metrics"], stdin: text)
        #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "promtool: \(lint)")
    }

    @Test("metrics.listen serves GET /metrics over HTTP and nothing else; a real Prometheus scrapes it")
    func scrapedByPrometheus() throws {
        let port = freePort()
        let daemon = try Daemon(
            jobs: ["flaky.yaml": MetricsTests.flakyJob], extraConfig: "metrics: {listen: 127.0.0.1:\(port)}")
        let id = try daemon.startRun("flaky")
        _ = try daemon.wait(forRun: id)
        let page = httpRequest("http://127.0.0.1:\(port)/metrics")
        #expect(page.status == 200 && page.body.contains("tessera_microtasks_total{tessera_job=\"flaky\""), "\(page)")
        #expect(httpRequest("http://127.0.0.1:\(port)/").status == 404)
        #expect(httpRequest("http://127.0.0.1:\(port)/metrics", method: "POST").status == 405)
        #expect(runProgram(["promtool", "check", "metrics"], stdin: page.body).status == 0)
        // Bytes that are no request, and a head past 8 KiB: refused, and
        // the daemon goes on.
        let raw = """
            import socket, sys
            def ask(data):
                s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                reply = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk: break
                    reply += chunk
                return reply.split(b"\\r\\n")[0].decode()
            print(ask(b"NONSENSE\\r\\n\\r\\n"))
            print(ask(b"GET /metrics HTTP/1.1\\r\\nX: " + b"a" * 9000 + b"\\r\\n\\r\\n"))
            print(ask(b"GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"))
            """
        let answers = runProgram(["python3", "-c", raw, String(port)])
        #expect(
            answers.stdout
                == "HTTP/1.1 400 Bad Request\nHTTP/1.1 431 Request Header Fields Too Large\nHTTP/1.1 200 OK\n",
            "\(answers)")

        // A real Prometheus, scraping every second.
        let directory = makeTemporaryDirectory("tessera-prometheus")
        defer { removeTree(directory) }
        let webPort = freePort()
        writeFile(
            directory + "/prometheus.yml",
            """
            global: {scrape_interval: 1s}
            scrape_configs:
              - job_name: tessera
                static_configs: [{targets: ['127.0.0.1:\(port)']}]

            """)
        let prometheus = try spawn(
            [
                "prometheus", "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
                "--web.listen-address=127.0.0.1:\(webPort)",
            ], environment: processEnvironment(), stdout: directory + "/log", stderr: directory + "/log")
        defer {
            kill(prometheus, SIGKILL)
            var status: Int32 = 0
            waitpid(prometheus, &status, 0)
        }
        let query =
            "http://127.0.0.1:\(webPort)/api/v1/query?query=sum(tessera_microtasks_total%7Btessera_job%3D%22flaky%22%7D)"
        var answer = ""
        do {
            try waitUntil(timeout: 60, "Prometheus to scrape tesserad and answer") {
                answer = httpRequest(query).body
                return answer.contains("\"5\"")
            }
        } catch {
            let targets = httpRequest("http://127.0.0.1:\(webPort)/api/v1/targets").body
            Issue.record("\(error); its last answer: \(answer)\nits targets: \(targets)")
            return
        }
        let parsed = try JSON.parse(Array(answer.utf8))
        #expect(parsed["status"] == "success", "\(answer)")
        let up = try JSON.parse(Array(httpRequest("http://127.0.0.1:\(webPort)/api/v1/query?query=up").body.utf8))
        #expect(up["data"]?["result"]?.arrayValue?.first?["value"]?.arrayValue?.last == "1", "\(up)")
    }

    @Test("a metrics port already taken is logged, and tesserad runs on with metrics on its socket")
    func portTaken() throws {
        let (holder, port) = loopbackSocket(listening: true)
        defer { close(holder) }
        let daemon = try Daemon(extraConfig: "metrics: {listen: \(port)}")
        try waitUntil("the refusal in the log") { daemon.log.contains("metrics: cannot listen on 127.0.0.1:\(port)") }
        #expect(try daemon.call("GetMetrics")["text"]?.stringValue?.contains("tessera_slots 2") == true)
    }
}
