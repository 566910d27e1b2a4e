import GRDB

// The store's SQL is fixed text, so each statement is prepared once per connection and
// then taken from GRDB's statement cache: preparing it again on every call (SQLite's
// parser plus GRDB's authorizer and region tracking) was about 12% of a gate cycle's CPU.

extension Database {
    /// `execute(sql:arguments:)` through the connection's statement cache.
    func executeCached(sql: String, arguments: StatementArguments = StatementArguments()) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}

extension Row {
    /// The first row, decoded by `decode` straight from the statement. Rows that
    /// `fetchOne`/`fetchAll` copy look their columns up by comparing the lowercased name
    /// with every column name, lowercased again on each lookup (`String.lowercased` was
    /// ~2% self time of a gate cycle, plus its allocations); a cursor's row finds a
    /// column through a dictionary made once.
    /// `decode` must not keep the row: the cursor reuses it.
    static func fetchOneCached<T>(
        _ db: Database, sql: String, arguments: StatementArguments = StatementArguments(),
        decode: (Row) throws -> T
    ) throws -> T? {
        let cursor = try fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
        return try withExtendedLifetime(cursor) { try cursor.next().map(decode) }
    }

    /// Every row, decoded by `decode` straight from the statement (see
    /// ``fetchOneCached(_:sql:arguments:decode:)``).
    static func fetchAllCached<T>(
        _ db: Database, sql: String, arguments: StatementArguments = StatementArguments(),
        decode: (Row) throws -> T
    ) throws -> [T] {
        let cursor = try fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
        var values: [T] = []
        while let row = try cursor.next() { values.append(try decode(row)) }
        return values
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
