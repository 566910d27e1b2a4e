import Foundation
import Synchronization

/// Waits on behalf of a provider: between retries, and on the idle-read watchdog of a
/// stream. Production uses ``TaskSleeper``; tests inject their own so that nothing
/// waits in real time.
public protocol ProviderSleeper: Sendable {
    func sleep(for duration: Duration) async throws
}

/// `Task.sleep`: cancellable, real time.
public struct TaskSleeper: ProviderSleeper {
    public init() {}
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}

/// When and how often a request to a provider is tried again: on HTTP 408, 409, 429 and
/// 5xx (Anthropic's 529 included) and on connection errors, with exponential backoff and
/// jitter, honouring `Retry-After` (and OpenAI's `retry-after-ms`) when the provider
/// sends it.
public struct RetryPolicy: Sendable, Equatable {
    /// Tries in all, the first one included (1 = never retry).
    public var maxAttempts: Int
    /// Backoff before the second try; doubled for each further one.
    public var initialBackoff: Duration
    /// Largest backoff computed by doubling.
    public var maxBackoff: Duration
    /// Largest wait a `Retry-After` header may ask for; beyond it the provider's value is
    /// capped (a provider asking for an hour would otherwise hold the run for an hour).
    public var maxRetryAfter: Duration
    /// Fraction of the backoff that is random: 0.25 waits between 75 % and 100 % of it.
    public var jitter: Double

    public init(
        maxAttempts: Int = 4, initialBackoff: Duration = .milliseconds(500), maxBackoff: Duration = .seconds(20),
        maxRetryAfter: Duration = .seconds(60), jitter: Double = 0.25
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.maxRetryAfter = maxRetryAfter
        self.jitter = min(max(jitter, 0), 1)
    }

    public static let none = RetryPolicy(maxAttempts: 1)

    /// Whether an HTTP status is worth another try.
    public static func isRetryable(status: Int) -> Bool {
        status == 408 || status == 409 || status == 429 || (500...599).contains(status)
    }

    /// The wait before try `attempt + 1`, after try `attempt` (1-based) failed.
    /// `random` is in 0..<1.
    public func delay(afterAttempt attempt: Int, retryAfter: Duration?, random: Double) -> Duration {
        if let retryAfter { return min(max(retryAfter, .zero), maxRetryAfter) }
        let exponent = min(max(attempt - 1, 0), 30)
        var backoff = initialBackoff * (1 << exponent)
        if backoff > maxBackoff { backoff = maxBackoff }
        return backoff * (1 - jitter * random)
    }

    /// `Retry-After` as seconds or an HTTP date, or `retry-after-ms`; nil when absent or
    /// unreadable.
    public static func retryAfter(headers: [(name: String, value: String)], now: Date = Date()) -> Duration? {
        func value(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name }?.value.trimmingCharacters(in: .whitespaces)
        }
        if let text = value("retry-after-ms"), let millis = Double(text), millis >= 0 {
            return .milliseconds(Int64(millis.rounded(.up)))
        }
        guard let text = value("retry-after") else { return nil }
        if let seconds = Double(text), seconds >= 0 { return .milliseconds(Int64((seconds * 1000).rounded(.up))) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        let seconds = max(0, date.timeIntervalSince(now))
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }
}

/// Counts activity on a stream so that a watchdog can tell a stalled one from a slow one.
final class StreamActivity: Sendable {
    private let counter = Atomic<Int>(0)
    func touch() { counter.wrappingAdd(1, ordering: .relaxed) }
    var value: Int { counter.load(ordering: .relaxed) }
}

/// Thrown by the watchdog when a stream sent nothing for its idle timeout.
struct StreamIdleTimeout: Error {}

/// Watches a provider's streamed answers for stalls: one loop for all of them instead
/// of a sleeping watchdog task (and a `Task.sleep` timer in libdispatch) per model call.
/// Every `idle / 4` it compares each watched stream's ``StreamActivity`` with what it
/// saw last; a stream quiet for five looks in a row (the first comes up to a quarter
/// period after the stream started) is cancelled and reported as timed out, so a stall
/// is noticed between `idle` and 1.25 × `idle`. The loop runs only while something is
/// watched.
final class IdleWatchdog: Sendable {
    let idle: Duration
    let sleeper: any ProviderSleeper

    /// One watched stream.
    final class Watch: Sendable {
        let activity: StreamActivity
        let cancel: @Sendable () -> Void
        private let expired = Atomic<Bool>(false)
        /// Whether the watchdog cancelled the stream for its silence.
        var timedOut: Bool { expired.load(ordering: .acquiring) }
        func expire() { expired.store(true, ordering: .releasing) }

        init(activity: StreamActivity, cancel: @escaping @Sendable () -> Void) {
            self.activity = activity
            self.cancel = cancel
        }
    }

    private struct Watched {
        var watch: Watch
        var seen: Int
        var quiet = 0
    }

    private struct State {
        var watched: [ObjectIdentifier: Watched] = [:]
        var looping = false
    }
    private let state = Mutex(State())

    init(idle: Duration, sleeper: any ProviderSleeper) {
        self.idle = idle
        self.sleeper = sleeper
    }

    /// Number of streams watched now.
    var watchedCount: Int { state.withLock { $0.watched.count } }

    func watch(_ activity: StreamActivity, cancel: @escaping @Sendable () -> Void) -> Watch {
        let watch = Watch(activity: activity, cancel: cancel)
        let start = state.withLock { state -> Bool in
            state.watched[ObjectIdentifier(watch)] = Watched(watch: watch, seen: activity.value)
            if state.looping { return false }
            state.looping = true
            return true
        }
        if start { Task { await self.loop() } }
        return watch
    }

    func unwatch(_ watch: Watch) {
        _ = state.withLock { $0.watched.removeValue(forKey: ObjectIdentifier(watch)) }
    }

    private func loop() async {
        let tick = idle / 4
        while true {
            // A sleeper that fails (only a test's, cancelled) ends nothing: look again.
            try? await sleeper.sleep(for: tick)
            let (stalled, more) = state.withLock { state -> ([Watch], Bool) in
                var stalled: [Watch] = []
                for (key, var entry) in state.watched {
                    let now = entry.watch.activity.value
                    if now == entry.seen {
                        entry.quiet += 1
                    } else {
                        entry.quiet = 0
                        entry.seen = now
                    }
                    if entry.quiet >= 5 {
                        stalled.append(entry.watch)
                        state.watched.removeValue(forKey: key)
                    } else {
                        state.watched[key] = entry
                    }
                }
                if state.watched.isEmpty { state.looping = false }
                return (stalled, !state.watched.isEmpty)
            }
            for watch in stalled {
                watch.expire()
                watch.cancel()
            }
            if !more { return }
        }
    }
}

/// Runs `operation` while `watchdog` checks that it keeps making progress: when
/// `activity` is not touched for the watchdog's idle period, the operation is cancelled
/// (AsyncHTTPClient then closes the connection) and ``StreamIdleTimeout`` is thrown.
/// Cancelling the caller cancels the operation.
func withIdleTimeout<T: Sendable>(
    _ watchdog: IdleWatchdog, _ operation: @escaping @Sendable (StreamActivity) async throws -> T
) async throws -> T {
    let activity = StreamActivity()
    let task = Task { try await operation(activity) }
    let watch = watchdog.watch(activity) { task.cancel() }
    defer { watchdog.unwatch(watch) }
    do {
        return try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    } catch {
        if watch.timedOut { throw StreamIdleTimeout() }
        throw error
    }
}
