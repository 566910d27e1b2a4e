import Synchronization
import Testing

@testable import ModelProviders

/// A sleeper that returns at once and counts, so the watchdog's looks are driven as
/// fast as it can make them.
final class CountingSleeper: ProviderSleeper {
    let sleeps = Atomic<Int>(0)
    /// Touched before every sleep returns: a stream that is active between every two looks.
    let active = Mutex<StreamActivity?>(nil)
    func sleep(for duration: Duration) async throws {
        active.withLock { $0?.touch() }
        sleeps.wrappingAdd(1, ordering: .relaxed)
        await Task.yield()
    }
}

/// A sleeper that never returns before it is cancelled: a watchdog that never looks.
struct BlockedSleeper: ProviderSleeper {
    func sleep(for duration: Duration) async throws { try await Task.sleep(for: .seconds(3600)) }
}

@Suite struct IdleWatchdogTests {
    /// A stream that keeps touching its activity is never cancelled, however many looks
    /// go by; one that stops is, and the call reports the idle timeout.
    @Test func onlyAQuietStreamIsCancelled() async throws {
        let sleeper = CountingSleeper()
        let watchdog = IdleWatchdog(idle: .seconds(60), sleeper: sleeper)
        let busy = try await withIdleTimeout(watchdog) { activity in
            // Active between every two looks, across at least 20 of them.
            sleeper.active.withLock { $0 = activity }
            let start = sleeper.sleeps.load(ordering: .relaxed)
            while sleeper.sleeps.load(ordering: .relaxed) < start + 20 { await Task.yield() }
            sleeper.active.withLock { $0 = nil }
            return "done"
        }
        #expect(busy == "done")
        await #expect(throws: StreamIdleTimeout.self) {
            _ = try await withIdleTimeout(watchdog) { _ in
                try await Task.sleep(for: .seconds(3600))
                return "never"
            }
        }
        #expect(watchdog.watchedCount == 0)
    }

    /// The loop runs only while something is watched: once the last stream ends, the
    /// watchdog stops looking.
    @Test func theLoopStopsWhenNothingIsWatched() async throws {
        let sleeper = CountingSleeper()
        let watchdog = IdleWatchdog(idle: .seconds(60), sleeper: sleeper)
        _ = try await withIdleTimeout(watchdog) { activity in
            sleeper.active.withLock { $0 = activity }
            let start = sleeper.sleeps.load(ordering: .relaxed)
            while sleeper.sleeps.load(ordering: .relaxed) < start + 3 { await Task.yield() }
            sleeper.active.withLock { $0 = nil }
            return 1
        }
        #expect(watchdog.watchedCount == 0)
        // The loop notices at its next look and ends: the count settles.
        var settled = sleeper.sleeps.load(ordering: .relaxed)
        for _ in 0..<1000 {
            await Task.yield()
            let now = sleeper.sleeps.load(ordering: .relaxed)
            if now == settled { break }
            settled = now
        }
        for _ in 0..<1000 { await Task.yield() }
        #expect(sleeper.sleeps.load(ordering: .relaxed) == settled)
    }

    /// Cancelling the caller cancels the watched operation.
    @Test func cancellingTheCallerCancelsTheOperation() async {
        let watchdog = IdleWatchdog(idle: .seconds(60), sleeper: BlockedSleeper())
        let started = AsyncStream<Void>.makeStream()
        let caller = Task {
            try await withIdleTimeout(watchdog) { activity in
                started.continuation.yield()
                while true {
                    activity.touch()
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
        }
        for await _ in started.stream { break }
        caller.cancel()
        await #expect(throws: CancellationError.self) { try await caller.value }
    }
}
