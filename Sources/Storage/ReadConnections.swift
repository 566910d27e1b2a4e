import GRDB
import Synchronization

/// Read-only connections to the store's file for ``SQLiteStore/readNow(_:)``, handed out
/// from a free list.
///
/// GRDB's `DatabasePool.read` checks a reader out through a barrier queue, a semaphore,
/// a dispatch group and a search of its readers with a key path that Swift instantiates
/// at run time on every call (`Pool.get`: about 1.5% of the server's CPU over HTTP, for
/// some ten reads per conversation), and asks SQLite for the schema version at the start
/// of each read. Here a read takes a connection from a locked array and gives it back:
/// each connection is a read-only `DatabaseQueue`, whose read is a deferred transaction
/// on the calling thread when the connection is idle, as the pool's is. In WAL mode a
/// read never waits for the writer, and sees every transaction committed before it
/// began.
///
/// Connections are opened on demand, up to `limit`; a read that finds none free and the
/// limit reached goes through the pool instead. The store's schema only changes in
/// migrations, which run before the first read.
final class ReadConnections: Sendable {
    private let path: String
    private let configuration: Configuration
    private let limit: Int
    private struct State {
        var free: [DatabaseQueue] = []
        var opened = 0
    }
    private let state = Mutex(State())
    private enum Checkout {
        case reuse(DatabaseQueue)
        case open
        case none
    }

    init(path: String, busyTimeout: Double, limit: Int) {
        self.path = path
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "countersign.read"
        self.configuration = configuration
        self.limit = limit
    }

    /// Connections opened so far.
    var openedCount: Int { state.withLock { $0.opened } }

    /// Runs `body` in a read transaction on a free connection; nil when none is free and
    /// no more may be opened.
    func read<T>(_ body: (Database) throws -> T) throws -> T? {
        let checkout = state.withLock { state -> Checkout in
            if let connection = state.free.popLast() { return .reuse(connection) }
            guard state.opened < limit else { return .none }
            state.opened += 1
            return .open
        }
        let connection: DatabaseQueue
        switch checkout {
        case .reuse(let reused):
            connection = reused
        case .open:
            do {
                connection = try DatabaseQueue(path: path, configuration: configuration)
            } catch {
                state.withLock { $0.opened -= 1 }
                throw error
            }
        case .none:
            return nil
        }
        defer { state.withLock { $0.free.append(connection) } }
        return try connection.inDatabase { db in
            var value: T?
            try db.inCachedTransaction(.deferred) {
                value = try body(db)
                return .commit
            }
            return value!
        }
    }
}
