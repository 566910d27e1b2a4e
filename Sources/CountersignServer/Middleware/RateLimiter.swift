import AgentRuntime
import Foundation
import GateCore
import Hummingbird
import Synchronization

/// Token buckets by name: `capacity` requests at once, refilled at `capacity` per
/// minute. Time comes from the injected clock, so tests need no sleeps.
public final class RateLimiter: Sendable {
    struct Bucket {
        var tokens: Double
        var updated: Date
    }

    public let perMinute: Int
    let clock: any WallClock
    private let buckets = Mutex<[String: Bucket]>([:])

    public init(perMinute: Int, clock: any WallClock) {
        self.perMinute = perMinute
        self.clock = clock
    }

    /// Takes one token from `name`'s bucket. Returns nil when allowed, else the whole
    /// seconds to wait before the next request would be allowed.
    public func take(_ name: String) -> Int? {
        guard perMinute > 0 else { return nil }
        let now = clock.now()
        let capacity = Double(perMinute)
        let refill = capacity / 60
        return buckets.withLock { table in
            var bucket = table[name] ?? Bucket(tokens: capacity, updated: now)
            bucket.tokens = min(capacity, bucket.tokens + max(0, now.timeIntervalSince(bucket.updated)) * refill)
            bucket.updated = now
            defer {
                table[name] = bucket
                if table.count > 50_000 { Self.prune(&table, now: now, capacity: capacity, refill: refill) }
            }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / refill).rounded(.up)))
        }
    }

    /// Drops buckets that have refilled completely: they carry no state.
    private static func prune(_ table: inout [String: Bucket], now: Date, capacity: Double, refill: Double) {
        table = table.filter { _, bucket in
            bucket.tokens + now.timeIntervalSince(bucket.updated) * refill < capacity
        }
    }
}

/// Per-key and per-session request limits on the native API (SPEC §4: 429
/// `rate_limited` with `Retry-After`). `/health` and `/ready` are outside `/v1` and
/// never limited.
public struct RateLimitMiddleware: RouterMiddleware {
    public typealias Context = AppRequestContext
    let perKey: RateLimiter
    let perSession: RateLimiter

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let identity = try context.requireIdentity()
        if let wait = perKey.take("key:" + identity.keyPrefix) {
            throw Self.limited(wait, "Too many requests for this API key.")
        }
        let parts = request.uri.path.split(separator: "/" as Character)
        if parts.count >= 3, parts[0] == "v1", parts[1] == "sessions", let wait = perSession.take("session:" + parts[2])
        {
            throw Self.limited(wait, "Too many requests for this session.")
        }
        return try await next(request, context)
    }

    static func limited(_ seconds: Int, _ message: String) -> CountersignError {
        CountersignError(.rateLimited, message, details: ["retry_after": .int(Int64(seconds))])
    }
}

/// Bounds the event streams a key may hold open at once.
public final class StreamQuota: Sendable {
    public let maxPerKey: Int
    private let open = Mutex<[String: Int]>([:])

    public init(maxPerKey: Int) {
        self.maxPerKey = maxPerKey
    }

    /// Reserves a stream for `key`; false when the key is at its limit.
    public func acquire(_ key: String) -> Bool {
        open.withLock { table in
            let count = table[key, default: 0]
            guard count < maxPerKey else { return false }
            table[key] = count + 1
            return true
        }
    }

    public func release(_ key: String) {
        open.withLock { table in
            let count = table[key, default: 1] - 1
            table[key] = count > 0 ? count : nil
        }
    }
}
