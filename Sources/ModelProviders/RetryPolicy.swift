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

/// Runs `operation` while a watchdog checks that it keeps making progress: when
/// `activity` is not touched for `idle`, the operation is cancelled (AsyncHTTPClient
/// then closes the connection) and ``StreamIdleTimeout`` is thrown. The watchdog looks
/// four times per period, so a stall is noticed between `idle` and 1.25 × `idle`.
func withIdleTimeout<T: Sendable>(
    _ idle: Duration, sleeper: any ProviderSleeper,
    _ operation: @escaping @Sendable (StreamActivity) async throws -> T
) async throws -> T {
    let activity = StreamActivity()
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation(activity) }
        group.addTask {
            let tick = idle / 4
            var quiet = 0
            var seen = activity.value
            while true {
                try await sleeper.sleep(for: tick)
                let now = activity.value
                if now == seen {
                    quiet += 1
                    if quiet >= 4 { throw StreamIdleTimeout() }
                } else {
                    quiet = 0
                    seen = now
                }
            }
        }
        defer { group.cancelAll() }
        while let result = try await group.next() {
            if let value = result { return value }
        }
        throw CancellationError()
    }
}
