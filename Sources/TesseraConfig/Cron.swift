// Cron.swift
//
// Why this file exists: a schedule is written as cron(8) has taught
// operators to write one: five fields (minute, hour, day of month, month,
// day of week), each `*`, a number or name, a range `a-b`, a step `*/n` or
// `a-b/n`, or a list of these; or one of the names @yearly, @monthly,
// @weekly, @daily and @hourly. As in Vixie cron, when both the day of
// month and the day of week are restricted (neither starts with `*`), a
// day matches either. This file parses an expression, reporting a bad
// field with its offset in the text, and finds the next matching minute
// of the civil calendar; what a civil minute is in a time zone is the
// engine's (Schedule.swift).

/// A parsed five-field cron expression.
public struct CronExpression: Sendable, Equatable {
    /// The expression as written.
    public let text: String
    var minutes: UInt64 = 0
    var hours: UInt64 = 0
    var days: UInt64 = 0
    var months: UInt64 = 0
    /// Bit 0 is Sunday.
    var weekdays: UInt64 = 0
    var daysRestricted = false
    var weekdaysRestricted = false

    static let names: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    private static let fields: [(name: String, range: ClosedRange<Int>, names: [String])] = [
        ("minute", 0...59, []),
        ("hour", 0...23, []),
        ("day of month", 1...31, []),
        ("month", 1...12, ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]),
        ("day of week", 0...7, ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]),
    ]

    /// Parses `text`; a problem is thrown with the offset (in bytes) of the
    /// field it is in.
    public static func parse(_ text: String) throws(CronError) -> CronExpression {
        var expression = CronExpression(text: text)
        let trimmed = text.trimmingSpaces
        if trimmed.hasPrefix("@") {
            guard let expansion = names[trimmed.lowercased()] else {
                let known = names.keys.sorted().joined(separator: ", ")
                throw CronError(message: "unknown schedule name \(quoted(trimmed)) (known: \(known))", offset: 0)
            }
            var parsed = try parse(expansion)
            parsed = CronExpression(
                text: text, minutes: parsed.minutes, hours: parsed.hours, days: parsed.days, months: parsed.months,
                weekdays: parsed.weekdays, daysRestricted: parsed.daysRestricted,
                weekdaysRestricted: parsed.weekdaysRestricted)
            return parsed
        }
        // Fields and where each starts.
        var parts: [(text: Substring, offset: Int)] = []
        var start: String.Index?
        for index in text.indices {
            if text[index] == " " || text[index] == "\t" {
                if let s = start {
                    parts.append((text[s..<index], text.utf8.distance(from: text.startIndex, to: s)))
                    start = nil
                }
            } else if start == nil {
                start = index
            }
        }
        if let s = start { parts.append((text[s...], text.utf8.distance(from: text.startIndex, to: s))) }
        guard parts.count == 5 else {
            throw CronError(
                message: "expected five fields (minute hour day-of-month month day-of-week) or a name such as "
                    + "@daily, found \(parts.count) field(s)", offset: 0)
        }
        var masks: [UInt64] = []
        for (position, part) in parts.enumerated() {
            masks.append(try parseField(part.text, field: fields[position], offset: part.offset))
        }
        expression.minutes = masks[0]
        expression.hours = masks[1]
        expression.days = masks[2]
        expression.months = masks[3]
        // 7 is Sunday too.
        expression.weekdays = (masks[4] | (masks[4] >> 7)) & 0x7F
        expression.daysRestricted = !parts[2].text.hasPrefix("*")
        expression.weekdaysRestricted = !parts[4].text.hasPrefix("*")
        return expression
    }

    init(text: String) { self.text = text }

    init(
        text: String, minutes: UInt64, hours: UInt64, days: UInt64, months: UInt64, weekdays: UInt64,
        daysRestricted: Bool, weekdaysRestricted: Bool
    ) {
        self.text = text
        self.minutes = minutes
        self.hours = hours
        self.days = days
        self.months = months
        self.weekdays = weekdays
        self.daysRestricted = daysRestricted
        self.weekdaysRestricted = weekdaysRestricted
    }

    private static func parseField(
        _ text: Substring, field: (name: String, range: ClosedRange<Int>, names: [String]), offset: Int
    ) throws(CronError) -> UInt64 {
        var mask: UInt64 = 0
        let bounds = "\(field.range.lowerBound)-\(field.range.upperBound)"
        func fail(_ what: String) -> CronError {
            CronError(message: "\(field.name) \(quoted(String(text))): \(what)", offset: offset)
        }
        func value(_ word: Substring) throws(CronError) -> Int {
            if let number = Int(word) {
                guard field.range.contains(number) else {
                    throw fail("\(number) is out of range (\(bounds))")
                }
                return number
            }
            if let index = field.names.firstIndex(of: word.lowercased()) {
                return index + (field.range.lowerBound == 1 ? 1 : 0)
            }
            let names = field.names.isEmpty ? "" : " or a name (\(field.names.joined(separator: ", ")))"
            throw fail("expected a number (\(bounds))\(names), found \(quoted(String(word)))")
        }
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw fail("an empty list item") }
            var rangePart = item
            var step = 1
            if let slash = item.firstIndex(of: "/") {
                rangePart = item[..<slash]
                guard let n = Int(item[item.index(after: slash)...]), n > 0 else {
                    throw fail(
                        "a step must be a positive number, found \(quoted(String(item[item.index(after: slash)...])))")
                }
                step = n
            }
            var low = field.range.lowerBound
            var high = field.range.upperBound
            if rangePart == "*" {
                // All of the field.
                if field.name == "day of week" { high = 6 }
            } else if let dash = rangePart.firstIndex(of: "-") {
                low = try value(rangePart[..<dash])
                high = try value(rangePart[rangePart.index(after: dash)...])
                guard low <= high else { throw fail("a range must go up, found \(low)-\(high)") }
            } else {
                low = try value(rangePart)
                // `a/n` is a to the end of the field, every n.
                if item.contains("/") { high = field.range.upperBound } else { high = low }
            }
            var v = low
            while v <= high {
                mask |= 1 << UInt64(v)
                v += step
            }
        }
        return mask
    }

    func matchesDay(year: Int, month: Int, day: Int, weekday: Int) -> Bool {
        let dayMatch = days & (1 << UInt64(day)) != 0
        let weekdayMatch = weekdays & (1 << UInt64(weekday)) != 0
        if daysRestricted && weekdaysRestricted { return dayMatch || weekdayMatch }
        return dayMatch && weekdayMatch
    }

    /// The first civil minute at or after `start` (seconds since the epoch
    /// as if the civil time were UTC, a multiple of 60) that matches, or
    /// nil when none does within 30 years (`0 0 30 2 *`).
    public func next(atOrAfter start: Int64) -> Int64? {
        var day = floorDivide(start, 86400)
        var minuteOfDay = Int((start - day * 86400) / 60)
        let lastDay = day + 366 * 30
        while day <= lastDay {
            let date = civil(fromDays: day)
            if months & (1 << UInt64(date.month)) == 0 {
                // To the first day of the next month.
                let nextMonth = date.month == 12 ? (date.year + 1, 1) : (date.year, date.month + 1)
                day = TesseraConfig.days(fromCivil: nextMonth.0, nextMonth.1, 1)
                minuteOfDay = 0
                continue
            }
            if !matchesDay(year: date.year, month: date.month, day: date.day, weekday: weekdayOf(days: day)) {
                day += 1
                minuteOfDay = 0
                continue
            }
            var hour = minuteOfDay / 60
            var minute = minuteOfDay % 60
            while hour < 24 {
                if hours & (1 << UInt64(hour)) != 0 {
                    while minute < 60 {
                        if minutes & (1 << UInt64(minute)) != 0 {
                            return day * 86400 + Int64(hour * 3600 + minute * 60)
                        }
                        minute += 1
                    }
                }
                hour += 1
                minute = 0
            }
            day += 1
            minuteOfDay = 0
        }
        return nil
    }
}

public struct CronError: Error, Sendable {
    public let message: String
    /// Bytes into the expression of the field at fault.
    public let offset: Int
}

extension String {
    var trimmingSpaces: String {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        while text.last == " " || text.last == "\t" { text = text.dropLast() }
        return String(text)
    }
}
