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
    static func fetchOneCached(_ db: Database, sql: String, arguments: StatementArguments = StatementArguments())
        throws -> Row?
    {
        try fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }

    static func fetchAllCached(_ db: Database, sql: String, arguments: StatementArguments = StatementArguments())
        throws -> [Row]
    {
        try fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
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
