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

    /// A batch runs without savepoints first; when one of its writes throws, the whole
    /// transaction rolls back and the batch runs again with a savepoint per write. The
    /// writes that succeed must then count once: each adds 1 to a counter and returns
    /// the value it wrote, so a change or a result kept from the rolled-back run would
    /// show as a total above the number of successes or as a repeated value.
    @Test func aRetriedBatchAppliesEachSucceedingWriteOnce() async throws {
        let store = try SQLiteStore(path: try temporaryPath())
        try await store.migrate()
        try await store.execute(sql: "CREATE TABLE counter (v INTEGER NOT NULL)")
        try await store.execute(sql: "INSERT INTO counter VALUES (0)")
        struct Refused: Error {}
        let values = try await withThrowingTaskGroup(of: Int?.self) { group in
            for n in 0..<200 {
                group.addTask {
                    do {
                        return try await store.write { db in
                            try db.execute(sql: "UPDATE counter SET v = v + 1")
                            if n % 5 == 0 { throw Refused() }
                            return try Int.fetchOne(db, sql: "SELECT v FROM counter")!
                        }
                    } catch is Refused {
                        return nil
                    }
                }
            }
            var all: [Int] = []
            for try await value in group { if let value { all.append(value) } }
            return all
        }
        #expect(values.count == 160)
        #expect(values.sorted() == Array(1...160))
        let total = try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT v FROM counter") }
        #expect(total == 160)
        #expect(try #require(store.groupCommit).retriedBatches > 0, "no batch held a failing write with others")
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
