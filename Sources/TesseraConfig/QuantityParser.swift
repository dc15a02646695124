// QuantityParser.swift
//
// Why this file exists: limits are written as durations (`30s`, `1h30m`) and
// sizes (`256MiB`), and a typo there must be an error, never a silently
// different limit. These are the strict parsers for both; their error
// messages are the ones a job author sees.

/// Why a duration or size was refused: a complete message that says what was
/// expected and what was found.
public struct QuantityError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Strict parsers for durations and sizes.
public enum QuantityParser {
    /// How messages describe what a duration looks like.
    static let durationExample = "a duration such as 30s or 500ms"
    /// How messages describe what a size looks like.
    static let sizeExample = "a size such as 256MiB"
    /// How messages describe what a percentage looks like.
    static let percentageExample = "a percentage such as 50%"

    /// Parses a whole percentage such as `50%` or `250%` (two and a half
    /// CPUs). The `%` is required; fractions, signs and spaces are refused.
    public static func parsePercentage(_ text: String) throws(QuantityError) -> UInt64 {
        let expected = "expected \(percentageExample), found \(quoted(text))"
        guard text.hasSuffix("%"), let value = UInt64(text.dropLast()), text.first?.isNumber == true else {
            throw QuantityError(message: expected)
        }
        guard value <= 100_000 else { throw QuantityError(message: "\(expected), which is too large") }
        return value
    }

    /// Parses a duration into milliseconds.
    ///
    /// A duration is one or more numbers, each followed by a unit (`w`, `d`,
    /// `h`, `m`, `s` or `ms`; a day is 24 hours), with the units from largest
    /// to smallest and each used at most once: `500ms`, `30s`, `5m`, `1h`,
    /// `1h30m`, `1m30s500ms`, `30d`, `1w`. A number
    /// may have a decimal fraction (`1.5s`) as long as the result is a whole
    /// number of milliseconds. Bare numbers, negative durations, spaces and
    /// other units are refused.
    public static func parseDuration(_ text: String) throws(QuantityError) -> UInt64 {
        let units: [(name: Substring, milliseconds: UInt128)] = [
            ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1),
        ]
        let expected = "expected \(durationExample), found \(quoted(text))"
        let components = try splitComponents(
            text, expected: expected, noun: "durations", addUnitHint: "add a unit: w, d, h, m, s or ms")
        var total: UInt128 = 0
        var previousUnit = -1
        for component in components {
            guard let unit = units.firstIndex(where: { $0.name == component.unit }) else {
                throw QuantityError(message: "\(expected); the units are w, d, h, m, s and ms")
            }
            guard unit > previousUnit else {
                throw QuantityError(message: "\(expected); write the units from largest to smallest, each once")
            }
            previousUnit = unit
            total += try component.value(
                times: units[unit].milliseconds, expected: expected,
                notWhole: "durations are counted in whole milliseconds")
        }
        guard let milliseconds = UInt64(exactly: total) else {
            throw QuantityError(message: "\(expected), which is too large")
        }
        return milliseconds
    }

    /// Parses a size into bytes.
    ///
    /// A size is a number followed by a unit: `B`; binary `KiB`, `MiB`, `GiB`,
    /// `TiB` (powers of 1024); or decimal `KB`, `MB`, `GB`, `TB` (powers of
    /// 1000): `100B`, `512KiB`, `256MiB`, `2GiB`, `1TiB`, `500MB`. A decimal
    /// fraction (`1.5GiB`) is allowed if the result is a whole number of
    /// bytes. Bare numbers, negative sizes, spaces, other units and sizes
    /// beyond 2^64 - 1 bytes are refused.
    public static func parseSize(_ text: String) throws(QuantityError) -> UInt64 {
        let units: [Substring: UInt128] = [
            "B": 1,
            "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
            "KB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000, "TB": 1_000_000_000_000,
        ]
        let expected = "expected \(sizeExample), found \(quoted(text))"
        let components = try splitComponents(
            text, expected: expected, noun: "sizes", addUnitHint: "add a unit: B, KiB, MiB, GiB, TiB, KB, MB, GB or TB")
        guard components.count == 1, let component = components.first else {
            throw QuantityError(message: expected)
        }
        guard let factor = units[component.unit] else {
            throw QuantityError(message: "\(expected); the units are B, KiB, MiB, GiB, TiB, KB, MB, GB and TB")
        }
        let bytes = try component.value(times: factor, expected: expected, notWhole: "sizes are counted in whole bytes")
        guard let result = UInt64(exactly: bytes) else {
            throw QuantityError(message: "\(expected), which is too large")
        }
        return result
    }

    /// One `<number><unit>` part of a quantity, e.g. `1.5` and `h`.
    private struct Component {
        var whole: Substring
        var fraction: Substring
        var unit: Substring

        /// The number times `factor`, exactly.
        func value(times factor: UInt128, expected: String, notWhole hint: String) throws(QuantityError) -> UInt128 {
            // Twenty digits exceed UInt64 whatever the unit; the bound keeps UInt128 from overflowing.
            guard whole.count <= 20 else {
                throw QuantityError(message: "\(expected), which is too large")
            }
            let significantFraction = fraction.reversed().drop { $0 == "0" }.reversed()
            let notWhole = QuantityError(message: "\(expected); \(hint)")
            guard significantFraction.count <= 18 else { throw notWhole }
            var scale: UInt128 = 1
            var fractionValue: UInt128 = 0
            for digit in significantFraction {
                scale *= 10
                fractionValue = fractionValue * 10 + UInt128(digit.wholeNumberValue!)
            }
            let (fractionPart, remainder) = (fractionValue * factor).quotientAndRemainder(dividingBy: scale)
            guard remainder == 0 else { throw notWhole }
            return UInt128(whole)! * factor + fractionPart
        }
    }

    /// Splits `1h30m` into its components, refusing anything but ASCII digits,
    /// one optional decimal point per number, and units made of letters.
    private static func splitComponents(
        _ text: String, expected: String, noun: String, addUnitHint: String
    ) throws(QuantityError) -> [Component] {
        if text.hasPrefix("-") {
            throw QuantityError(message: "\(expected); \(noun) cannot be negative")
        }
        var components: [Component] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            let whole = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(whole.count)
            var fraction: Substring = ""
            if rest.first == "." {
                fraction = rest.dropFirst().prefix { $0.isASCII && $0.isNumber }
                rest = rest.dropFirst(1 + fraction.count)
                guard !fraction.isEmpty else { throw QuantityError(message: expected) }
            }
            let unit = rest.prefix { $0.isASCII && $0.isLetter }
            rest = rest.dropFirst(unit.count)
            guard !whole.isEmpty else { throw QuantityError(message: expected) }
            guard !unit.isEmpty else {
                if rest.isEmpty {
                    throw QuantityError(message: "\(expected); \(addUnitHint)")
                }
                throw QuantityError(message: expected)
            }
            components.append(Component(whole: whole, fraction: fraction, unit: unit))
        }
        guard !components.isEmpty else { throw QuantityError(message: expected) }
        return components
    }
}
