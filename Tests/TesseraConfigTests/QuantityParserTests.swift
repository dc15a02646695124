// QuantityParserTests.swift
//
// Why this file exists: durations and sizes become hard limits on running
// tasks, so the parsers are pinned with tables of accepted and refused text.

import TesseraConfig
import Testing

@Suite("Durations and sizes")
struct QuantityParserTests {
    @Test(
        arguments: [
            ("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("1h30m", 5_400_000),
            ("1m30s500ms", 90_500), ("30d", 2_592_000_000), ("1w2d", 777_600_000), ("1.5s", 1_500), ("0.25h", 900_000),
            ("0s", 0), ("1.0005m", 60_030),
            ("5124095576030h25m51s615ms", UInt64.max),
        ] as [(String, UInt64)])
    func validDuration(text: String, milliseconds: UInt64) throws {
        #expect(try QuantityParser.parseDuration(text) == milliseconds)
    }

    @Test(arguments: [
        ("30", "expected a duration such as 30s or 500ms, found \"30\"; add a unit: w, d, h, m, s or ms"),
        ("-5s", "expected a duration such as 30s or 500ms, found \"-5s\"; durations cannot be negative"),
        ("5y", "expected a duration such as 30s or 500ms, found \"5y\"; the units are w, d, h, m, s and ms"),
        ("10 minutes", "expected a duration such as 30s or 500ms, found \"10 minutes\""),
        (
            "30m1h",
            "expected a duration such as 30s or 500ms, found \"30m1h\"; write the units from largest to smallest, each once"
        ),
        (
            "1s1s",
            "expected a duration such as 30s or 500ms, found \"1s1s\"; write the units from largest to smallest, each once"
        ),
        ("1h30", "expected a duration such as 30s or 500ms, found \"1h30\"; add a unit: w, d, h, m, s or ms"),
        (
            "1.5ms",
            "expected a duration such as 30s or 500ms, found \"1.5ms\"; durations are counted in whole milliseconds"
        ),
        (
            "5124095576030h25m51s616ms",
            "expected a duration such as 30s or 500ms, found \"5124095576030h25m51s616ms\", which is too large"
        ),
        ("", "expected a duration such as 30s or 500ms, found \"\""),
        ("s", "expected a duration such as 30s or 500ms, found \"s\""),
        (".5s", "expected a duration such as 30s or 500ms, found \".5s\""),
        ("1.s", "expected a duration such as 30s or 500ms, found \"1.s\""),
        ("30S", "expected a duration such as 30s or 500ms, found \"30S\"; the units are w, d, h, m, s and ms"),
        ("٣s", "expected a duration such as 30s or 500ms, found \"٣s\""),
    ])
    func invalidDuration(text: String, message: String) {
        #expect(throws: QuantityError(message: message)) { try QuantityParser.parseDuration(text) }
    }

    @Test(
        arguments: [
            ("100B", 100), ("512KiB", 512 << 10), ("256MiB", 256 << 20), ("2GiB", 2 << 30), ("1TiB", 1 << 40),
            ("1KB", 1_000), ("500MB", 500_000_000), ("3GB", 3_000_000_000), ("2TB", 2_000_000_000_000),
            ("1.5GiB", 3 << 29), ("0.5KB", 500), ("16777215TiB", 16_777_215 << 40),
            ("18446744073709551615B", UInt64.max),
        ] as [(String, UInt64)])
    func validSize(text: String, bytes: UInt64) throws {
        #expect(try QuantityParser.parseSize(text) == bytes)
    }

    @Test(arguments: [
        ("256", "expected a size such as 256MiB, found \"256\"; add a unit: B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"),
        ("lots", "expected a size such as 256MiB, found \"lots\""),
        ("-1MiB", "expected a size such as 256MiB, found \"-1MiB\"; sizes cannot be negative"),
        (
            "256mb",
            "expected a size such as 256MiB, found \"256mb\"; the units are B, KiB, MiB, GiB, TiB, KB, MB, GB and TB"
        ),
        ("256 MiB", "expected a size such as 256MiB, found \"256 MiB\""),
        ("1GiB512MiB", "expected a size such as 256MiB, found \"1GiB512MiB\""),
        ("1.5B", "expected a size such as 256MiB, found \"1.5B\"; sizes are counted in whole bytes"),
        ("16777216TiB", "expected a size such as 256MiB, found \"16777216TiB\", which is too large"),
        (
            "18446744073709551616B",
            "expected a size such as 256MiB, found \"18446744073709551616B\", which is too large"
        ),
        (
            "999999999999999999999999GB",
            "expected a size such as 256MiB, found \"999999999999999999999999GB\", which is too large"
        ),
    ])
    func invalidSize(text: String, message: String) {
        #expect(throws: QuantityError(message: message)) { try QuantityParser.parseSize(text) }
    }

    @Test(arguments: [("50%", 50), ("100%", 100), ("250%", 250), ("1%", 1)] as [(String, UInt64)])
    func validPercentage(text: String, percent: UInt64) throws {
        #expect(try QuantityParser.parsePercentage(text) == percent)
    }

    @Test(arguments: [
        ("50", "expected a percentage such as 50%, found \"50\""),
        ("0.5%", "expected a percentage such as 50%, found \"0.5%\""),
        ("-5%", "expected a percentage such as 50%, found \"-5%\""),
        ("%", "expected a percentage such as 50%, found \"%\""),
        ("50 %", "expected a percentage such as 50%, found \"50 %\""),
        ("200000%", "expected a percentage such as 50%, found \"200000%\", which is too large"),
    ])
    func invalidPercentage(text: String, message: String) {
        #expect(throws: QuantityError(message: message)) { try QuantityParser.parsePercentage(text) }
    }
}
