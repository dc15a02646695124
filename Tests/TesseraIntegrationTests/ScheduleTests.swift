// Schedules on the real daemon: `every` with overlap skip, what `tessera
// jobs` and `tessera status` say, and a restart that repeats no fire.

import Testing

@testable import TesseraProtocol

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Schedules")
struct ScheduleIntegrationTests {
    func scheduledRuns(_ daemon: Daemon) throws -> [RunInfo] {
        (try daemon.call("ListRuns", ["limit": .int(1000)])["runs"]?.arrayValue ?? []).compactMap(RunInfo.init(json:))
            .filter { $0.scheduledFor != nil }.sorted { $0.id < $1.id }
    }

    @Test("every: 1s with overlap: skip never runs two at once; a restart repeats no fire")
    func everySecond() throws {
        let job = """
            name: tick
            executor: shell
            params: {command: [sleep, '1.6']}
            schedule: {every: 1s, overlap: skip}

            """
        let daemon = try Daemon(jobs: ["tick.yaml": job], slots: 4)
        try waitUntil("three scheduled runs to finish") {
            try scheduledRuns(daemon).filter { $0.state == .succeeded }.count >= 3
        }
        let jobs = daemon.cli(["jobs"]).stdout
        #expect(jobs.contains("every 1s"), "\(jobs)")
        let status = daemon.cli(["status"]).stdout
        #expect(status.contains("due:") && status.contains("tick at"), "\(status)")
        let listed = try #require(try daemon.call("ListJobs")["jobs"]?.arrayValue?.first)
        #expect(listed["nextRun"]?.doubleValue != nil && listed["schedule"]?.stringValue == "every 1s")

        daemon.stop(signal: SIGKILL)
        try daemon.start()
        try waitUntil("a scheduled run after the restart") {
            try scheduledRuns(daemon).filter { $0.state == .succeeded }.count >= 5
        }
        let runs = try scheduledRuns(daemon)
        // Never two at once: each run started after the one before it ended
        // (a run cut short by the kill aside, which the restart failed).
        let finished = runs.filter { $0.state == .succeeded }
        for (before, after) in zip(finished, finished.dropFirst()) {
            #expect((after.startedAt ?? 0) >= (before.finishedAt ?? .infinity), "runs \(before.id) and \(after.id)")
        }
        let times = runs.compactMap(\.scheduledFor)
        #expect(Set(times).count == times.count, "no fire time twice: \(times)")
        #expect(daemon.log.contains("skipped: run"), "overlap: skip says what it skipped")
        let shown = daemon.cli(["show", String(runs[0].id)]).stdout
        #expect(shown.contains("started by: schedule, for "), "\(shown)")
    }
}
