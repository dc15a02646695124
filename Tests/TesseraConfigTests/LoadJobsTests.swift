// LoadJobsTests.swift
//
// Why this file exists: the daemon loads whole job directories. These tests
// run the loader on real directories: which files it reads and in what
// order, that a bad file is skipped with its diagnostics, and that a job
// name taken twice is reported at the second file's name.

import Foundation
import TesseraConfig
import Testing

@Suite("Loading job directories")
struct LoadJobsTests {
    @Test("*.yaml and *.yml files are loaded in name order; others are ignored")
    func filesAndOrder() throws {
        try withTemporaryDirectory { directory in
            try write("name: b\nexecutor: noop\n", to: "b.yml", in: directory)
            try write("name: a\nexecutor: noop\n", to: "a.yaml", in: directory)
            try write("name: c\nexecutor: noop\n", to: "c.yaml", in: directory)
            try write("not: yaml: at all\n", to: "README.txt", in: directory)
            try write("name: hidden\nexecutor: noop\n", to: ".hidden.yaml", in: directory)
            let (jobs, diagnostics) = ConfigLoader.loadJobs(directories: [directory], catalog: testCatalog)
            #expect(diagnostics == [])
            #expect(jobs.map(\.name) == ["a", "b", "c"])
            #expect(jobs.map(\.file) == ["\(directory)/a.yaml", "\(directory)/b.yml", "\(directory)/c.yaml"])
        }
    }

    @Test("a bad file is skipped and its diagnostics kept; the others load")
    func badFileSkipped() throws {
        try withTemporaryDirectory { directory in
            try write("name: good\nexecutor: noop\n", to: "good.yaml", in: directory)
            try write("name: bad\nexecutor: shel\nlimits: {wall: forever}\n", to: "bad.yaml", in: directory)
            let (jobs, diagnostics) = ConfigLoader.loadJobs(directories: [directory], catalog: testCatalog)
            #expect(jobs.map(\.name) == ["good"])
            #expect(
                diagnostics.map(\.description) == [
                    "\(directory)/bad.yaml:2:11: executor: unknown executor \"shel\"; did you mean \"shell\"? (loaded: echo, noop, shell)",
                    "\(directory)/bad.yaml:3:16: limits.wall: expected a duration such as 30s or 500ms, found \"forever\"",
                ])
        }
    }

    @Test("a job name taken twice is reported at the second file's name, naming the first file")
    func duplicateJobNames() throws {
        try withTemporaryDirectory { directory in
            let first = "\(directory)/first"
            let second = "\(directory)/second/"
            try FileManager.default.createDirectory(atPath: first, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: second, withIntermediateDirectories: true)
            try write("name: hello\nexecutor: noop\n", to: "hello.yaml", in: first)
            try write(
                "# the same job again\nname:   hello\nexecutor: echo\nparams: {text: hi}\n", to: "greeting.yaml",
                in: second)
            let (jobs, diagnostics) = ConfigLoader.loadJobs(directories: [first, second], catalog: testCatalog)
            #expect(jobs.map(\.file) == ["\(first)/hello.yaml"])
            #expect(
                diagnostics.map(\.description) == [
                    "\(directory)/second/greeting.yaml:2:9: name: duplicate job name \"hello\" (first given at \(first)/hello.yaml:1:7)"
                ])
        }
    }

    @Test("a directory that cannot be listed is a diagnostic; the others load")
    func missingDirectory() throws {
        try withTemporaryDirectory { directory in
            try write("name: a\nexecutor: noop\n", to: "a.yaml", in: directory)
            let (jobs, diagnostics) = ConfigLoader.loadJobs(
                directories: ["\(directory)/nope", directory], catalog: testCatalog)
            #expect(jobs.map(\.name) == ["a"])
            #expect(
                diagnostics.map(\.description) == [
                    "\(directory)/nope: cannot list the directory: No such file or directory"
                ])
        }
    }
}
