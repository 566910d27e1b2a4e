import Dispatch
import Foundation
import GRDB
import Synchronization

/// Group commit for SQLite: write transactions submitted while another commit is in
/// flight are run together in one transaction and made durable by one fsync. One that
/// throws rolls back alone and gets its own error (the batch runs again with a savepoint
/// per write); no result is reported before the shared commit returns, so
/// `synchronous=FULL` semantics are kept (nothing reported before it is durable).
///
/// At low load a batch holds one write and costs what a plain transaction costs; under
/// concurrency the number of fsyncs per write falls with the batch size.
final class GroupCommit: Sendable {
    /// One submitted write: `run` executes it inside the batch's transaction (in a
    /// savepoint of its own when the batch runs again after a failed write) and says
    /// whether it succeeded; `finish` reports it once the batch has committed (or failed).
    private final class Pending: @unchecked Sendable {
        let run: (_ db: Database, _ savepoint: Bool) -> Bool
        let finish: ((any Error)?) -> Void

        init(run: @escaping (Database, Bool) -> Bool, finish: @escaping ((any Error)?) -> Void) {
            self.run = run
            self.finish = finish
        }
    }

    /// The outcome of one write, written on the writer queue and read after the commit.
    private final class Outcome<T>: @unchecked Sendable {
        var result: Result<T, any Error>?
    }

    private struct State {
        var queue: [Pending] = []
        var draining = false
    }

    private let writer: DatabasePool
    /// Where batches are written: a plain thread that calls GRDB's synchronous write,
    /// which runs on this thread when the writer is idle. A write then costs two thread
    /// hand-offs (here, and back to the caller's task) instead of four through a
    /// detached task and GRDB's async API.
    private let queue = DispatchQueue(label: "countersign.group-commit", qos: .userInitiated)
    private let state = Mutex(State())
    /// Largest number of writes committed together.
    let maxBatch: Int
    private let batches = Atomic<Int>(0)
    private let writes = Atomic<Int>(0)
    /// Time the writer spent in transactions (SQL work, commit and fsync), in ns.
    private let busy = Atomic<Int>(0)
    private let retries = Atomic<Int>(0)

    /// Batches that ran a second time, with a savepoint per write, because one of their
    /// writes threw.
    var retriedBatches: Int { retries.load(ordering: .relaxed) }

    init(writer: DatabasePool, maxBatch: Int = 256) {
        self.writer = writer
        self.maxBatch = maxBatch
    }

    /// Commits (batches, writes) so far: writes / commits is the mean batch size.
    /// `busyNanoseconds` is the writer's time inside transactions, SQL work, commit and
    /// fsync included; over a wall-clock interval it says how close the single writer is
    /// to being the limit.
    var statistics: (commits: Int, writes: Int, writerBusyNanoseconds: Int) {
        (batches.load(ordering: .relaxed), writes.load(ordering: .relaxed), busy.load(ordering: .relaxed))
    }

    /// Runs `body` in a transaction (shared with concurrent writes) and returns its
    /// result once that transaction is durable.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let outcome = Outcome<T>()
            let pending = Pending(
                run: { db, savepoint in
                    /// Runs the write and records its result; false when it threw.
                    func attempt() -> Bool {
                        do {
                            outcome.result = .success(try body(db))
                            return true
                        } catch {
                            outcome.result = .failure(error)
                            return false
                        }
                    }
                    guard savepoint else { return attempt() }
                    do {
                        try db.inSavepoint { attempt() ? .commit : .rollback }
                    } catch {
                        outcome.result = .failure(error)
                    }
                    return true
                },
                finish: { commitError in
                    if let commitError {
                        continuation.resume(throwing: commitError)
                    } else if let result = outcome.result {
                        continuation.resume(with: result)
                    } else {
                        continuation.resume(throwing: CancellationError())
                    }
                })
            let startDrain = state.withLock { state -> Bool in
                state.queue.append(pending)
                if state.draining { return false }
                state.draining = true
                return true
            }
            if startDrain {
                queue.async { [self] in self.drain() }
            }
        }
    }

    private func drain() {
        while true {
            let batch = state.withLock { state -> [Pending] in
                let batch = Array(state.queue.prefix(maxBatch))
                state.queue.removeFirst(batch.count)
                if batch.isEmpty { state.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            var commitError: (any Error)?
            let started = ContinuousClock.now
            do {
                try writer.writeWithoutTransaction { db in
                    // First without savepoints: each costs two statements and a copy of
                    // every page the write changes. A write that throws may leave part
                    // of its changes behind, so the whole transaction rolls back; a
                    // write alone in its batch is then done. Otherwise the batch runs
                    // again from the rolled-back state, each write in a savepoint of its
                    // own, so the one that failed rolls back alone. Writes are functions
                    // of the database and what they captured, so running one again after
                    // a rollback is the same as running it once.
                    var again = false
                    try db.inCachedTransaction(.immediate) {
                        for pending in batch {
                            let succeeded = pending.run(db, false)
                            if !succeeded {
                                again = batch.count > 1
                                return .rollback
                            }
                        }
                        return .commit
                    }
                    guard again else { return }
                    retries.wrappingAdd(1, ordering: .relaxed)
                    try db.inCachedTransaction(.immediate) {
                        for pending in batch { _ = pending.run(db, true) }
                        return .commit
                    }
                }
            } catch {
                commitError = error
            }
            let elapsed = (ContinuousClock.now - started).components
            busy.wrappingAdd(
                Int(elapsed.seconds) * 1_000_000_000 + Int(elapsed.attoseconds / 1_000_000_000), ordering: .relaxed)
            batches.wrappingAdd(1, ordering: .relaxed)
            writes.wrappingAdd(batch.count, ordering: .relaxed)
            for pending in batch { pending.finish(commitError) }
        }
    }
}
