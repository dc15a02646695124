// TimeZone.swift
//
// Why this file exists: a schedule's `timezone:` is an IANA name, read
// from the system's zoneinfo files (TZif, RFC 8536) when the job is
// loaded, so that an unknown name is a load-time error at its line and
// the engine computes fire times from plain data, without the process's
// TZ or the C library's global state. The table of transitions covers
// the past (and, in Debian's "fat" files, up to 2037); after its last
// transition the file's footer, a POSIX TZ rule such as
// "CET-1CEST,M3.5.0,M10.5.0/3", gives every later year's.

#if canImport(Glibc)
    internal import Glibc
#endif

/// A time zone's offsets from UTC over time.
public struct TimeZoneRules: Sendable, Equatable {
    /// The IANA name, as written.
    public let name: String
    /// Transition instants (seconds since the epoch), ascending.
    let transitions: [Int64]
    /// The offset (seconds east of UTC) from each transition on.
    let offsets: [Int32]
    /// The offset before the first transition.
    let initialOffset: Int32
    /// The rule after the last transition, if any.
    let rule: PosixTimeZoneRule?

    public static let utc = TimeZoneRules(
        name: "UTC", transitions: [], offsets: [], initialOffset: 0, rule: nil)

    /// Where the zoneinfo files are: `TZDIR`, else /usr/share/zoneinfo.
    public static var defaultDirectory: String {
        if let dir = getenv("TZDIR"), dir.pointee != 0 { return String(cString: dir) }
        return "/usr/share/zoneinfo"
    }

    init(name: String, transitions: [Int64], offsets: [Int32], initialOffset: Int32, rule: PosixTimeZoneRule?) {
        self.name = name
        self.transitions = transitions
        self.offsets = offsets
        self.initialOffset = initialOffset
        self.rule = rule
    }

    /// The zone `name` from the zoneinfo files of `directory`. `UTC` is
    /// known without them.
    public static func load(_ name: String, directory: String = defaultDirectory) throws(TimeZoneError)
        -> TimeZoneRules
    {
        if name == "UTC" || name == "Etc/UTC" { return .utc }
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2F || byte == 0x5F || byte == 0x2D || byte == 0x2B
        }
        guard !name.isEmpty, allowed, !name.hasPrefix("/"), !name.split(separator: "/").contains("..")
        else { throw TimeZoneError("\(quoted(name)) is not a time zone name (an IANA name such as Europe/Paris)") }
        let path = directory + "/" + name
        guard let bytes = readWholeFile(path, limit: 1 << 20) else {
            throw TimeZoneError("unknown time zone \(quoted(name)) (no such zone in \(directory))")
        }
        do {
            return try parseTZif(bytes, name: name)
        } catch {
            throw TimeZoneError("time zone \(quoted(name)): \(path) is not a valid zoneinfo file (\(error.message))")
        }
    }

    /// The offset from UTC in seconds at instant `t`.
    public func offset(at t: Int64) -> Int {
        if let last = transitions.last, t >= last, let rule { return rule.offset(at: t) }
        // The last transition at or before t.
        var low = 0
        var high = transitions.count
        while low < high {
            let mid = (low + high) / 2
            if transitions[mid] <= t { low = mid + 1 } else { high = mid }
        }
        return Int(low == 0 ? initialOffset : offsets[low - 1])
    }

    /// The first instant in `(after, upTo]` at which the offset changes.
    public func firstTransition(after: Int64, upTo: Int64) -> Int64? {
        var low = 0
        var high = transitions.count
        while low < high {
            let mid = (low + high) / 2
            if transitions[mid] <= after { low = mid + 1 } else { high = mid }
        }
        if low < transitions.count {
            let t = transitions[low]
            return t <= upTo ? t : nil
        }
        guard let rule else { return nil }
        let floor = max(after, transitions.last ?? Int64.min)
        let first = civil(fromDays: floorDivide(floor, 86400)).year - 1
        let last = civil(fromDays: floorDivide(upTo, 86400)).year + 1
        guard first <= last else { return nil }
        for year in first...last {
            for t in rule.transitions(in: year).sorted() where t > floor && t <= upTo {
                return t
            }
        }
        return nil
    }
}

public struct TimeZoneError: Error, Sendable {
    public let message: String
    init(_ message: String) { self.message = message }
}

/// A POSIX TZ rule (the footer of a TZif file): a standard offset and,
/// when there is daylight saving time, its offset and when it starts and
/// ends each year.
struct PosixTimeZoneRule: Sendable, Equatable {
    /// Seconds east of UTC.
    var standard: Int
    var daylight: Int?
    var start: DateRule = .monthWeekDay(3, 2, 0)
    var startTime = 7200
    var end: DateRule = .monthWeekDay(11, 1, 0)
    var endTime = 7200

    enum DateRule: Sendable, Equatable {
        /// Jn: day n (1-365) of the year, February 29 never counted.
        case julian(Int)
        /// n: day n (0-365), February 29 counted in leap years.
        case zeroBased(Int)
        /// Mm.w.d: day d (0 Sunday) of week w (1-5, 5 the last) of month m.
        case monthWeekDay(Int, Int, Int)

        /// The day (days since the epoch) this rule names in `year`.
        func day(in year: Int) -> Int64 {
            switch self {
            case .julian(let n):
                let leapShift = isLeapYear(year) && n >= 60 ? 1 : 0
                return days(fromCivil: year, 1, 1) + Int64(n - 1 + leapShift)
            case .zeroBased(let n):
                return days(fromCivil: year, 1, 1) + Int64(n)
            case .monthWeekDay(let month, let week, let weekday):
                let first = days(fromCivil: year, month, 1)
                let firstWeekday = weekdayOf(days: first)
                var day = first + Int64((weekday - firstWeekday + 7) % 7) + Int64((week - 1) * 7)
                let length = Int64(daysIn(month: month, year: year))
                while day >= first + length { day -= 7 }
                return day
            }
        }
    }

    /// This year's transitions (UTC): daylight time starts, then ends.
    func transitions(in year: Int) -> [Int64] {
        guard let daylight else { return [] }
        let starts = start.day(in: year) * 86400 + Int64(startTime) - Int64(standard)
        let ends = end.day(in: year) * 86400 + Int64(endTime) - Int64(daylight)
        return [starts, ends]
    }

    func offset(at t: Int64) -> Int {
        guard let daylight else { return standard }
        let year = civil(fromDays: floorDivide(t + Int64(standard), 86400)).year
        let pair = transitions(in: year)
        let (starts, ends) = (pair[0], pair[1])
        let inDaylight = starts < ends ? (t >= starts && t < ends) : (t >= starts || t < ends)
        return inDaylight ? daylight : standard
    }

    /// Parses a rule such as `CET-1CEST,M3.5.0,M10.5.0/3` or `<+03>-3`.
    static func parse(_ text: String) -> PosixTimeZoneRule? {
        var scanner = Scanner(Array(text.utf8))
        guard scanner.skipName(), let standard = scanner.offset() else { return nil }
        var rule = PosixTimeZoneRule(standard: -standard)
        if scanner.atEnd { return rule }
        guard scanner.skipName() else { return nil }
        if let daylight = scanner.offset() { rule.daylight = -daylight } else { rule.daylight = rule.standard + 3600 }
        if scanner.atEnd { return rule }
        guard scanner.take(UInt8(ascii: ",")), let start = scanner.dateRule() else { return nil }
        rule.start = start
        if scanner.take(UInt8(ascii: "/")) {
            guard let time = scanner.time() else { return nil }
            rule.startTime = time
        }
        guard scanner.take(UInt8(ascii: ",")), let end = scanner.dateRule() else { return nil }
        rule.end = end
        if scanner.take(UInt8(ascii: "/")) {
            guard let time = scanner.time() else { return nil }
            rule.endTime = time
        }
        return scanner.atEnd ? rule : nil
    }

    private struct Scanner {
        let bytes: [UInt8]
        var at = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var atEnd: Bool { at >= bytes.count }
        var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

        mutating func take(_ byte: UInt8) -> Bool {
            guard peek == byte else { return false }
            at += 1
            return true
        }

        /// A zone abbreviation: letters, or anything between < and >.
        mutating func skipName() -> Bool {
            if take(UInt8(ascii: "<")) {
                while let byte = peek, byte != UInt8(ascii: ">") { at += 1 }
                return take(UInt8(ascii: ">"))
            }
            let start = at
            while let byte = peek, (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A { at += 1 }
            return at - start >= 3
        }

        mutating func number() -> Int? {
            let start = at
            var value = 0
            while let byte = peek, byte >= 0x30 && byte <= 0x39, at - start < 9 {
                value = value * 10 + Int(byte - 0x30)
                at += 1
            }
            return at > start ? value : nil
        }

        /// [+-]hh[:mm[:ss]], in seconds.
        mutating func time() -> Int? {
            var sign = 1
            if take(UInt8(ascii: "-")) { sign = -1 } else { _ = take(UInt8(ascii: "+")) }
            guard let hours = number() else { return nil }
            var seconds = hours * 3600
            if take(UInt8(ascii: ":")) {
                guard let minutes = number() else { return nil }
                seconds += minutes * 60
                if take(UInt8(ascii: ":")) {
                    guard let s = number() else { return nil }
                    seconds += s
                }
            }
            return sign * seconds
        }

        /// An offset, which must start with a sign or a digit.
        mutating func offset() -> Int? {
            guard let byte = peek,
                byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") || (byte >= 0x30 && byte <= 0x39)
            else { return nil }
            return time()
        }

        mutating func dateRule() -> DateRule? {
            if take(UInt8(ascii: "M")) {
                guard let month = number(), take(UInt8(ascii: ".")), let week = number(), take(UInt8(ascii: ".")),
                    let day = number(), (1...12).contains(month), (1...5).contains(week), (0...6).contains(day)
                else { return nil }
                return .monthWeekDay(month, week, day)
            }
            if take(UInt8(ascii: "J")) {
                guard let n = number(), (1...365).contains(n) else { return nil }
                return .julian(n)
            }
            guard let n = number(), (0...365).contains(n) else { return nil }
            return .zeroBased(n)
        }
    }
}

// MARK: TZif

private func parseTZif(_ bytes: [UInt8], name: String) throws(TimeZoneError) -> TimeZoneRules {
    var reader = TZifReader(bytes: bytes)
    let header = try reader.header()
    var counts = header.counts
    var timeSize = 4
    if header.version >= UInt8(ascii: "2") {
        // Skip the version 1 data; the 64-bit data follows.
        try reader.skip(dataLength(counts, timeSize: 4))
        counts = try reader.header().counts
        timeSize = 8
    }
    let (isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt) = counts
    guard typecnt > 0 else { throw TimeZoneError("no local time types") }
    var transitions: [Int64] = []
    transitions.reserveCapacity(timecnt)
    for _ in 0..<timecnt { transitions.append(try reader.integer(timeSize)) }
    var typeIndices: [Int] = []
    for _ in 0..<timecnt { typeIndices.append(Int(try reader.integer(1))) }
    var offsets: [Int32] = []
    for _ in 0..<typecnt {
        offsets.append(Int32(truncatingIfNeeded: try reader.integer(4)))
        try reader.skip(2)
    }
    guard typeIndices.allSatisfy({ $0 < typecnt }) else { throw TimeZoneError("a transition of no type") }
    try reader.skip(charcnt + leapcnt * (timeSize + 4) + isstdcnt + isutcnt)
    var rule: PosixTimeZoneRule?
    if timeSize == 8, reader.remaining > 1, try reader.integer(1) == 0x0A {
        var footer: [UInt8] = []
        while reader.remaining > 0 {
            let byte = UInt8(try reader.integer(1))
            if byte == 0x0A { break }
            footer.append(byte)
        }
        if !footer.isEmpty { rule = PosixTimeZoneRule.parse(String(decoding: footer, as: UTF8.self)) }
    }
    // Before the first transition: the first type (RFC 8536, 3.2).
    return TimeZoneRules(
        name: name, transitions: transitions, offsets: typeIndices.map { offsets[$0] },
        initialOffset: offsets[0], rule: rule)
}

private func dataLength(_ c: (Int, Int, Int, Int, Int, Int), timeSize: Int) -> Int {
    c.3 * timeSize + c.3 + c.4 * 6 + c.5 + c.2 * (timeSize + 4) + c.1 + c.0
}

private struct TZifReader {
    let bytes: [UInt8]
    var at = 0

    var remaining: Int { bytes.count - at }

    mutating func skip(_ count: Int) throws(TimeZoneError) {
        guard count >= 0, count <= remaining else { throw TimeZoneError("truncated") }
        at += count
    }

    /// A big-endian signed integer of `size` bytes.
    mutating func integer(_ size: Int) throws(TimeZoneError) -> Int64 {
        guard size <= remaining else { throw TimeZoneError("truncated") }
        var value: UInt64 = 0
        for i in 0..<size { value = value << 8 | UInt64(bytes[at + i]) }
        at += size
        let shift = UInt64(64 - 8 * size)
        return Int64(bitPattern: value << shift) >> Int64(shift)
    }

    mutating func header() throws(TimeZoneError) -> (version: UInt8, counts: (Int, Int, Int, Int, Int, Int)) {
        guard remaining >= 44, Array(bytes[at..<at + 4]) == Array("TZif".utf8) else {
            throw TimeZoneError("no TZif header")
        }
        let version = bytes[at + 4]
        at += 20
        var counts: [Int] = []
        for _ in 0..<6 {
            let count = try integer(4)
            guard count >= 0, count < 1 << 20 else { throw TimeZoneError("a count out of range") }
            counts.append(Int(count))
        }
        return (version, (counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]))
    }
}

private func readWholeFile(_ path: String, limit: Int) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
    var bytes: [UInt8] = []
    var block = [UInt8](repeating: 0, count: 16384)
    while bytes.count <= limit {
        let n = block.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += block[0..<n]
    }
    return bytes
}

// MARK: The civil calendar (proleptic Gregorian, days since 1970-01-01)

func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
    a >= 0 ? a / b : -((-a + b - 1) / b)
}

func isLeapYear(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

func daysIn(month: Int, year: Int) -> Int {
    switch month {
    case 2: return isLeapYear(year) ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
}

/// Days since the epoch of a civil date (H. Hinnant's algorithm).
public func days(fromCivil year: Int, _ month: Int, _ day: Int) -> Int64 {
    let y = Int64(month <= 2 ? year - 1 : year)
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let m = Int64(month)
    let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + Int64(day) - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}

/// The civil date of a day since the epoch.
public func civil(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let day = Int(doy - (153 * mp + 2) / 5 + 1)
    let month = Int(mp < 10 ? mp + 3 : mp - 9)
    let year = Int(yoe + era * 400) + (month <= 2 ? 1 : 0)
    return (year, month, day)
}

/// 0 for Sunday.
public func weekdayOf(days: Int64) -> Int {
    Int(((days % 7) + 11) % 7)
}
