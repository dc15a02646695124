// Cells: a root daemon's sandboxed microtasks, each with a uid of its own,
// join a mount namespace made once per uid (and stage) instead of building
// their mounts (cell.h in the worker). What must hold: one cell serves one
// microtask at a time, a microtask that leaves files in /tmp gets the next
// one a fresh cell, and /proc shows a microtask its own processes only.

import TesseraProtocol
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Sandbox: cells")
struct CellTests {
    /// What each microtask printed: its uid, its mount namespace, when its
    /// /tmp was made (the ctime of its root, with nanoseconds: namespace
    /// and device numbers are reused as soon as they are free, a time is
    /// not) and the entries of /tmp.
    struct Seen {
        let uid: String
        let mounts: String
        let tmpMade: String
        let tmpEntries: Int
    }

    func seen(_ daemon: Daemon, _ run: Int64, count: Int) throws -> [Seen] {
        try (0..<count).map { index in
            let text = try #require(try daemon.output(run, index)).stdout
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
            try #require(fields.count == 4, "microtask \(index) printed \(text)")
            return Seen(uid: fields[0], mounts: fields[1], tmpMade: fields[2], tmpEntries: try #require(Int(fields[3])))
        }
    }

    @Test("microtasks of one uid join one cell in turn; one that leaves a file in /tmp gets the next a new one")
    func cellsAreReusedAndRebuilt() throws {
        let daemon = try Daemon(
            jobs: [
                "c.yaml": """
                name: c
                executor: shell
                range: {from: 0, to: 5}
                params:
                  command: [sh, -c, 'echo $(id -u) $(readlink /proc/self/ns/mnt) $(stat -c %z /tmp | tr " " _) $(ls -A /tmp | wc -l); if [ "$TESSERA_INDEX" = 2 ]; then touch /tmp/left-behind; fi']
                """
            ], slots: 1)
        let id = try daemon.startRun("c")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        let tasks = try seen(daemon, id, count: 5)
        var host = [CChar](repeating: 0, count: 256)
        let length = readlink("/proc/self/ns/mnt", &host, host.count - 1)
        let hostMounts = String(decoding: host[0..<max(length, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // One slot: each uid goes back before the next microtask takes one,
        // and the daemon lends the last one given back.
        #expect(Set(tasks.map(\.uid)).count == 1, "\(tasks.map(\.uid))")
        #expect(tasks.allSatisfy { $0.mounts != hostMounts && $0.mounts.hasPrefix("mnt:[") })
        #expect(tasks[0].tmpMade == tasks[1].tmpMade, "microtask 1 joined the cell microtask 0 left clean")
        #expect(tasks[1].tmpMade == tasks[2].tmpMade && tasks[1].mounts == tasks[2].mounts)
        #expect(tasks[3].tmpMade != tasks[2].tmpMade, "microtask 2 left a file in /tmp: its cell is gone")
        #expect(tasks[4].tmpMade == tasks[3].tmpMade && tasks[4].mounts == tasks[3].mounts)
        #expect(tasks.allSatisfy { $0.tmpEntries == 0 }, "every microtask starts with an empty /tmp")
        let check = runProgram(["\(binDirectory)/tesserad", "--check", "--config", daemon.configPath])
        #expect(check.stdout.contains("mounts: made once per uid lent (a cell)"), "\(check.stdout)")
    }

    @Test("in a cell, /proc shows a microtask its own processes only, and no other microtask's")
    func procShowsOwnProcesses() throws {
        let daemon = try Daemon(
            jobs: [
                "p.yaml": """
                name: p
                executor: shell
                range: {from: 0, to: 2}
                params:
                  command: [sh, -c, 'sleep 1 & for p in /proc/[0-9]*; do stat -c %u $p; done | sort | uniq -c; id -u; wait']
                """
            ], slots: 2)
        let id = try daemon.startRun("p")
        #expect(try daemon.wait(forRun: id).state == .succeeded)
        var uids: Set<String> = []
        for index in 0..<2 {
            let lines = try #require(try daemon.output(id, index)).stdout.split(separator: "\n").map {
                $0.split(separator: " ").map(String.init)
            }
            let own = try #require(lines.last?.first)
            uids.insert(own)
            let owners = lines.dropLast()
            #expect(owners.count == 1 && owners.first?.last == own, "only uid \(own)'s processes: \(lines)")
            // sh, the sleep, and the pipeline's processes at least.
            #expect(Int(owners.first?.first ?? "") ?? 0 >= 3, "\(lines)")
        }
        #expect(uids.count == 2, "the two microtasks ran at once, each with its own uid")
    }
}
