import Dispatch
import Foundation
import GRDB
import Synchronization
import Testing

@testable import Storage

@Suite("ReadConnections")
struct ReadConnectionsTests {
    /// A reused connection must not keep an old snapshot: every read starts a
    /// transaction of its own and sees each commit made before it.
    @Test func aReusedConnectionSeesEveryEarlierCommit() async throws {
        let database = try TemporaryDatabase()
        defer { database.remove() }
        let store = try SQLiteStore(path: database.path)
        try await store.migrate()
        try await store.execute(sql: "CREATE TABLE counter (n INTEGER NOT NULL)")
        try await store.execute(sql: "INSERT INTO counter (n) VALUES (0)")
        let readers = ReadConnections(path: database.path, busyTimeout: 10, limit: 1)
        for expected in 1...20 {
            try await store.execute(sql: "UPDATE counter SET n = ?", arguments: [expected])
            let seen = try readers.read { db in try Int.fetchOne(db, sql: "SELECT n FROM counter") }
            #expect(seen == expected)
        }
        #expect(readers.openedCount == 1)
    }

    /// More concurrent reads than connections: none waits for a connection, and no more
    /// than the limit are opened; the store's readNow falls back to GRDB's pool.
    @Test func readsBeyondTheLimitAreRefusedAndTheStoreFallsBack() async throws {
        let database = try TemporaryDatabase()
        defer { database.remove() }
        let store = try SQLiteStore(path: database.path)
        try await store.migrate()
        let readers = ReadConnections(path: database.path, busyTimeout: 10, limit: 1)
        let refused = Atomic<Int>(0)
        let wrong = Atomic<Int>(0)
        let inside = Atomic<Int>(0)
        let mostInside = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 64) { _ in
            let value = try? readers.read { db -> Int? in
                let now = inside.wrappingAdd(1, ordering: .relaxed).newValue
                mostInside.max(now, ordering: .relaxed)
                defer { inside.wrappingSubtract(1, ordering: .relaxed) }
                return try Int.fetchOne(db, sql: "SELECT 41 + 1")
            }
            switch value {
            case .some(.some(42)): break
            case .none: refused.wrappingAdd(1, ordering: .relaxed)
            default: wrong.wrappingAdd(1, ordering: .relaxed)
            }
        }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(readers.openedCount == 1)
        #expect(mostInside.load(ordering: .relaxed) == 1)
        // Through the store, reads beyond its connections still all succeed.
        let results = Mutex<[Int]>([])
        DispatchQueue.concurrentPerform(iterations: 64) { _ in
            if let value = try? store.readNow({ db in try Int.fetchOne(db, sql: "SELECT 7") }) {
                results.withLock { $0.append(value ?? -1) }
            }
        }
        #expect(results.withLock { $0 } == Array(repeating: 7, count: 64))
    }
}

@Suite("inCachedTransaction")
struct CachedTransactionTests {
    struct Boom: Error {}

    @Test func commitsRollsBackAndRethrows() throws {
        let queue = try DatabaseQueue()
        try queue.inDatabase { db in
            try db.execute(sql: "CREATE TABLE t (n INTEGER NOT NULL)")
            try db.inCachedTransaction(.immediate) {
                try db.execute(sql: "INSERT INTO t (n) VALUES (1)")
                return .commit
            }
            try db.inCachedTransaction(.immediate) {
                try db.execute(sql: "INSERT INTO t (n) VALUES (2)")
                return .rollback
            }
            #expect(throws: Boom.self) {
                try db.inCachedTransaction(.deferred) {
                    try db.execute(sql: "INSERT INTO t (n) VALUES (3)")
                    throw Boom()
                }
            }
            // A failed commit (a deferred foreign key still violated) rolls back too.
            try db.execute(sql: "CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            try db.execute(
                sql: "CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            #expect(throws: DatabaseError.self) {
                try db.inCachedTransaction(.immediate) {
                    try db.execute(sql: "INSERT INTO t (n) VALUES (4)")
                    try db.execute(sql: "INSERT INTO child (p) VALUES (99)")
                    return .commit
                }
            }
            #expect(!db.isInsideTransaction)
            #expect(try Int.fetchAll(db, sql: "SELECT n FROM t ORDER BY n") == [1])
        }
    }
}
