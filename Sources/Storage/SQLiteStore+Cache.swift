import Foundation
import GRDB
import GRDBSQLite

// The store's SQL is fixed text, so each statement is prepared once per connection and
// then taken from GRDB's statement cache: preparing it again on every call (SQLite's
// parser plus GRDB's authorizer and region tracking) was about 12% of a gate cycle's CPU.

extension Database {
    /// `inTransaction` with its `BEGIN`, `COMMIT` and `ROLLBACK` taken from the
    /// statement cache: GRDB prepares them again for every transaction (through its
    /// authorizer and SQL scanner), about 1% of the server's CPU over 13 transactions per
    /// conversation. A body that throws or returns `.rollback` rolls back; the first
    /// error is rethrown.
    func inCachedTransaction(
        _ kind: TransactionKind, _ body: () throws -> TransactionCompletion
    ) throws {
        switch kind {
        case .deferred: try executeCached(sql: "BEGIN DEFERRED TRANSACTION")
        case .immediate: try executeCached(sql: "BEGIN IMMEDIATE TRANSACTION")
        case .exclusive: try executeCached(sql: "BEGIN EXCLUSIVE TRANSACTION")
        }
        var firstError: (any Error)?
        do {
            if try body() == .commit {
                try executeCached(sql: "COMMIT TRANSACTION")
                return
            }
        } catch {
            firstError = error
        }
        // Rolled back by the body's choice, its error, or a failed commit (which may
        // leave the transaction open).
        if isInsideTransaction {
            do {
                try executeCached(sql: "ROLLBACK TRANSACTION")
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
    }

    /// `execute(sql:arguments:)` through the connection's statement cache.
    func executeCached(sql: String, arguments: StatementArguments = StatementArguments()) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}

/// One result row, read straight from the SQLite statement.
///
/// GRDB's `Row` builds a dictionary of lowercased column names for every query it reads
/// (`StatementRowImpl.init`), then hashes the name again on every lookup: with the
/// argument binding around it, about 4% of the server's CPU per conversation. Here a
/// column is found by comparing the name's bytes with SQLite's own column names,
/// starting after the column read last: decoders read the columns in the order the
/// table declares them, so nearly every lookup matches at the first comparison.
/// Names are matched exactly (the store's SQL and decoders are all lowercase).
/// A `ColumnRow` is valid only inside the `decode` closure it is passed to.
struct ColumnRow: ~Copyable {
    let statement: SQLiteStatement
    let count: CInt
    private var next: CInt = 0

    init(statement: SQLiteStatement) {
        self.statement = statement
        self.count = sqlite3_column_count(statement)
    }

    /// The index of the column `name`, or nil when the row has none.
    mutating func index(of name: StaticString) -> CInt? {
        let length = name.utf8CodeUnitCount
        var index = next
        for _ in 0..<count {
            if index == count { index = 0 }
            if let column = sqlite3_column_name(statement, index), strlen(column) == length,
                memcmp(column, name.utf8Start, length) == 0
            {
                next = index + 1
                return index
            }
            index += 1
        }
        return nil
    }

    /// The value of column `name`; a missing column or NULL is a programming error, as
    /// with GRDB's `Row`.
    @_disfavoredOverload
    subscript<Value: DatabaseValueConvertible & StatementColumnConvertible>(_ name: StaticString) -> Value {
        mutating get {
            guard let index = index(of: name) else { preconditionFailure("no column \(name) in the row") }
            guard let value = Value.fromStatement(statement, atUncheckedIndex: index) else {
                preconditionFailure("column \(name) is NULL or not a \(Value.self)")
            }
            return value
        }
    }

    /// The value of column `name`, nil when it is NULL or absent.
    subscript<Value: DatabaseValueConvertible & StatementColumnConvertible>(_ name: StaticString) -> Value? {
        mutating get {
            guard let index = index(of: name) else { return nil }
            return Value.fromStatement(statement, atUncheckedIndex: index)
        }
    }
}

/// Steps a statement with GRDB's bookkeeping (`Statement.step`) and hands each row to
/// a decoder as a ``ColumnRow``.
private final class ColumnCursor<Value>: DatabaseCursor {
    typealias Element = Value?
    var _isDone = false
    let _statement: Statement
    let decode: (inout ColumnRow) throws -> Value
    /// Step without decoding (the rows after the first of `fetchOneCached`).
    var skip = false

    init(statement: Statement, arguments: StatementArguments, decode: @escaping (inout ColumnRow) throws -> Value)
        throws
    {
        _statement = statement
        self.decode = decode
        try statement.setArguments(arguments)  // resets the statement, then binds
    }

    func _element(sqliteStatement: SQLiteStatement) throws -> Value? {
        if skip { return nil }
        var row = ColumnRow(statement: sqliteStatement)
        return try decode(&row)
    }
}

extension Database {
    /// Every row of a cached statement, decoded straight from the statement.
    func fetchAllCached<T>(
        sql: String, arguments: StatementArguments = StatementArguments(),
        decode: (inout ColumnRow) throws -> T
    ) throws -> [T] {
        try withoutActuallyEscaping(decode) { decode in
            let cursor = try ColumnCursor(statement: cachedStatement(sql: sql), arguments: arguments, decode: decode)
            var values: [T] = []
            while let value = try cursor.next() { values.append(value!) }
            return values
        }
    }

    /// The first row of a cached statement, decoded straight from the statement. The
    /// statement is stepped to its end, so it holds no read lock afterwards.
    func fetchOneCached<T>(
        sql: String, arguments: StatementArguments = StatementArguments(),
        decode: (inout ColumnRow) throws -> T
    ) throws -> T? {
        try withoutActuallyEscaping(decode) { decode in
            let cursor = try ColumnCursor(statement: cachedStatement(sql: sql), arguments: arguments, decode: decode)
            guard let first = try cursor.next() else { return nil }
            cursor.skip = true
            while try cursor.next() != nil {}
            return first
        }
    }
}

extension DatabaseValueConvertible where Self: StatementColumnConvertible {
    static func fetchOneCached(_ db: Database, sql: String, arguments: StatementArguments = StatementArguments())
        throws -> Self?
    {
        try fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }

    static func fetchAllCached(_ db: Database, sql: String, arguments: StatementArguments = StatementArguments())
        throws -> [Self]
    {
        try fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }
}
