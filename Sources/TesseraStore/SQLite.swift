// A thin, typed layer over the SQLite C API. This file is the only place
// that calls sqlite3_*; the store above it speaks in statements and rows.

internal import CSQLite

public struct StoreError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// SQLite's "copy this buffer now" destructor, which C spells SQLITE_TRANSIENT.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

final class Database {
    private var handle: OpaquePointer?
    let path: String

    init(path: String) throws(StoreError) {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let why = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close(db)
            throw StoreError(message: "cannot open the state database \(path): \(why)")
        }
        handle = db
        sqlite3_busy_timeout(db, 5000)
    }

    deinit {
        sqlite3_close_v2(handle)
    }

    func error(_ what: String) -> StoreError {
        StoreError(message: "\(path): \(what): \(String(cString: sqlite3_errmsg(handle)))")
    }

    func execute(_ sql: String) throws(StoreError) {
        var message: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(handle, sql, nil, nil, &message) == SQLITE_OK else {
            let text = message.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(message)
            throw StoreError(message: "\(path): \(text) (in: \(sql.prefix(60)))")
        }
    }

    func prepare(_ sql: String) throws(StoreError) -> Statement {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil) == SQLITE_OK,
            let statement
        else { throw error("cannot prepare \"\(sql.prefix(60))\"") }
        return Statement(database: self, handle: statement)
    }

    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Rows changed by the last statement.
    var changes: Int { Int(sqlite3_changes64(handle)) }

    var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }
}

/// A prepared statement, reset and rebound for every use.
final class Statement {
    unowned let database: Database
    private let handle: OpaquePointer

    /// How many parameters the statement has.
    private let parameterCount: Int

    init(database: Database, handle: OpaquePointer) {
        self.database = database
        self.handle = handle
        parameterCount = Int(sqlite3_bind_parameter_count(handle))
    }

    deinit { sqlite3_finalize(handle) }

    enum Value {
        case int(Int64)
        case double(Double)
        case text(String)
        case blob([UInt8])
        case null
    }

    private func bind(_ values: [Value]) throws(StoreError) {
        sqlite3_reset(handle)
        // Every parameter is bound anew, so the last use's values need no
        // clearing (sqlite3_clear_bindings was 2% of the daemon's time).
        guard values.count == parameterCount else {
            throw StoreError(
                message: "\(database.path): \(values.count) values for \(parameterCount) parameters")
        }
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch value {
            case .int(let v): rc = sqlite3_bind_int64(handle, index, v)
            case .double(let v): rc = sqlite3_bind_double(handle, index, v)
            case .text(let v): rc = sqlite3_bind_text(handle, index, v, -1, transient)
            case .blob(let v):
                rc = v.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), transient) }
            case .null: rc = sqlite3_bind_null(handle, index)
            }
            guard rc == SQLITE_OK else { throw database.error("cannot bind parameter \(index)") }
        }
    }

    /// Runs a statement that returns no rows.
    func run(_ values: [Value] = []) throws(StoreError) {
        try bind(values)
        let rc = sqlite3_step(handle)
        sqlite3_reset(handle)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else { throw database.error("write failed") }
    }

    /// Runs a query and hands each row to `body`.
    func query(_ values: [Value] = [], _ body: (Row) throws(StoreError) -> Void) throws(StoreError) {
        try bind(values)
        defer { sqlite3_reset(handle) }
        while true {
            let rc = sqlite3_step(handle)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else { throw database.error("query failed") }
            try body(Row(handle: handle))
        }
    }
}

/// One row of a result, read by column index.
struct Row {
    let handle: OpaquePointer

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func optionalInt(_ column: Int32) -> Int64? { isNull(column) ? nil : int(column) }

    func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }

    func optionalDouble(_ column: Int32) -> Double? { isNull(column) ? nil : double(column) }

    func text(_ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }

    func blob(_ column: Int32) -> [UInt8] {
        guard let bytes = sqlite3_column_blob(handle, column) else { return [] }
        let count = Int(sqlite3_column_bytes(handle, column))
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }
}
