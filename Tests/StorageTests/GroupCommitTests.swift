import AgentRuntime
import CountersignTesting
import Foundation
import GRDB
import GateCore
import Testing

@testable import Storage

@Suite struct GroupCommitTests {
    let temporary: TemporaryDirectory

    init() throws {
        temporary = try TemporaryDirectory("group-commit")
    }

    func temporaryPath() throws -> String {
        temporary.url.appendingPathComponent("db.sqlite").path
    }

    @Test func concurrentWritesShareCommitsAndAllBecomeDurable() async throws {
        let path = try temporaryPath()
        let store = try SQLiteStore(path: path)
        try await store.migrate()
        try await store.execute(sql: "CREATE TABLE t (n INTEGER PRIMARY KEY)")
        let before = store.commitStatistics!
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<200 {
                group.addTask {
                    _ = try await store.write { db in try db.execute(sql: "INSERT INTO t VALUES (?)", arguments: [n]) }
                }
            }
            try await group.waitForAll()
        }
        let after = store.commitStatistics!
        #expect(after.writes - before.writes == 200)
        #expect(after.commits - before.commits < 200, "no batching happened: \(after)")
        #expect(after.writerBusyNanoseconds > before.writerBusyNanoseconds)
        let reopened = try SQLiteStore(path: path)
        let count = try await reopened.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") }
        #expect(count == 200)
    }

    @Test func aFailingWriteRollsBackAloneAndGetsItsOwnError() async throws {
        let store = try SQLiteStore(path: try temporaryPath())
        try await store.migrate()
        try await store.execute(sql: "CREATE TABLE t (n INTEGER PRIMARY KEY)")
        struct Refused: Error {}
        let results = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for n in 0..<100 {
                group.addTask {
                    do {
                        _ = try await store.write { db in
                            try db.execute(sql: "INSERT INTO t VALUES (?)", arguments: [n])
                            if n % 3 == 0 { throw Refused() }
                        }
                        return (n, true)
                    } catch is Refused {
                        return (n, false)
                    }
                }
            }
            var all: [(Int, Bool)] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(results.filter { !$0.1 }.map(\.0).sorted() == Array(stride(from: 0, to: 100, by: 3)))
        let stored = try await store.pool.read { db in try Int.fetchAll(db, sql: "SELECT n FROM t ORDER BY n") }
        #expect(stored == (0..<100).filter { $0 % 3 != 0 })
    }

    /// A write alone in its batch runs without a savepoint: when it throws, the whole
    /// transaction rolls back, and the writes before and after it are untouched.
    @Test func aFailingWriteAloneInItsBatchLeavesNothingBehind() async throws {
        let store = try SQLiteStore(path: try temporaryPath())
        try await store.migrate()
        try await store.execute(sql: "CREATE TABLE t (n INTEGER PRIMARY KEY)")
        struct Refused: Error {}
        let before = store.commitStatistics!
        _ = try await store.write { db in try db.execute(sql: "INSERT INTO t VALUES (1)") }
        await #expect(throws: Refused.self) {
            _ = try await store.write { db in
                try db.execute(sql: "INSERT INTO t VALUES (2)")
                try db.execute(sql: "INSERT INTO t VALUES (3)")
                throw Refused()
            }
        }
        // A write that fails inside SQLite (duplicate key) after a successful statement.
        await #expect(throws: DatabaseError.self) {
            _ = try await store.write { db in
                try db.execute(sql: "INSERT INTO t VALUES (4)")
                try db.execute(sql: "INSERT INTO t VALUES (1)")
            }
        }
        _ = try await store.write { db in try db.execute(sql: "INSERT INTO t VALUES (5)") }
        let after = store.commitStatistics!
        // One at a time: each write was a batch of its own.
        #expect(after.commits - before.commits == after.writes - before.writes)
        let stored = try await store.pool.read { db in try Int.fetchAll(db, sql: "SELECT n FROM t ORDER BY n") }
        #expect(stored == [1, 5])
    }

    @Test func withoutGroupCommitEveryWriteIsItsOwnTransaction() async throws {
        let store = try SQLiteStore(path: try temporaryPath(), groupCommit: false)
        #expect(store.commitStatistics == nil)
        try await store.migrate()
        #expect(try await store.synchronousLevel() == 2)
    }
}
