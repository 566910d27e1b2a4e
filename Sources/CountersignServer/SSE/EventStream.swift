import AgentRuntime
import GateCore
import Hummingbird
import NIOCore
import ServiceLifecycle
import Synchronization

/// Server-Sent Events as a view of a session's durable event log (SPEC §3): `id:` is
/// the seq, `event:` the type, `data:` one JSON line. The stream holds no state of its
/// own beyond its cursor, so reconnecting with `Last-Event-ID` is always exact.
struct EventStream: Sendable {
    let store: any Store
    let notifier: EventNotifier
    let heartbeat: Duration
    let quota: StreamQuota
    let clock: any WallClock

    /// When a stream ends.
    enum Until: Sendable {
        /// Never: the client closes it (the session events endpoint).
        case disconnect
        /// When the run has stopped (completed, failed, cancelled or paused at the
        /// gate) and every event up to that point has been sent.
        case runStops(RunHandle)
        /// Once the event with this seq has been sent.
        case seq(Int64)
    }

    static func format(_ event: SessionEvent) -> String {
        "id: \(event.seq)\nevent: \(event.type)\ndata: \(event.data.canonicalString)\n\n"
    }

    /// A stream of `sessionID`'s log after `after`. With `identity`, the stream counts
    /// against the key's stream quota (429 beyond it) and ends as soon as the key is
    /// revoked or expires.
    func response(
        sessionID: String, after: Int64, until: Until, identity: Identity? = nil,
        encode: @escaping @Sendable (SessionEvent) -> String? = format
    ) throws -> Response {
        let store = self.store
        let notifier = self.notifier
        let heartbeat = self.heartbeat
        let clock = self.clock
        if let identity, !quota.acquire(identity.keyPrefix) {
            throw CountersignError(
                .rateLimited, "Too many open event streams for this API key (at most \(quota.maxPerKey)).",
                details: ["retry_after": 1])
        }
        let ticket = identity.map { QuotaTicket(quota: quota, key: $0.keyPrefix) }
        let keyPrefix = identity?.keyPrefix
        let body = ResponseBody { writer in
            defer { ticket?.release() }
            let signals = notifier.subscribe(sessionID: sessionID, keyPrefix: keyPrefix, heartbeat: heartbeat)
            // The key is still good: not revoked, not expired.
            func keyIsValid() async -> Bool {
                guard let keyPrefix else { return true }
                guard let key = try? await store.key(prefix: keyPrefix) else { return false }
                if key.revokedAt != nil { return false }
                if let expiresAt = key.expiresAt, expiresAt <= clock.now() { return false }
                return true
            }
            let stopAt = StopMark()
            if case .seq(let last) = until { stopAt.withLock { $0 = last } }
            var watcher: Task<Void, Never>?
            if case .runStops(let handle) = until {
                watcher = Task {
                    let outcome = await handle.outcome
                    stopAt.withLock { $0 = outcome.lastSeq }
                    notifier.notify(sessionID: sessionID, seq: outcome.lastSeq)
                }
            }
            defer { watcher?.cancel() }
            var cursor = after
            // Sends everything after the cursor; returns true when the stream is done.
            func flush(_ writer: inout any ResponseBodyWriter) async throws -> Bool {
                while true {
                    let limit = stopAt.withLock { $0 }
                    let batch = try await store.events(sessionID: sessionID, after: cursor, limit: 500)
                    var buffer = ByteBuffer()
                    for event in batch {
                        if let text = encode(event) { buffer.writeString(text) }
                        cursor = event.seq
                    }
                    if buffer.readableBytes > 0 { try await writer.write(buffer) }
                    if batch.count < 500 {
                        if let limit, cursor >= limit { return true }
                        return false
                    }
                }
            }
            var initial = ByteBuffer()
            initial.writeString(": connected\n\n")
            try await writer.write(initial)
            if try await flush(&writer) {
                try await writer.finish(nil)
                return
            }
            // On graceful shutdown the stream ends cleanly; the client reconnects with
            // Last-Event-ID after the restart (or to another replica).
            let shuttingDown = StopMark()
            try await withGracefulShutdownHandler {
                loop: for await signal in signals {
                    if shuttingDown.withLock({ $0 }) != nil { break loop }
                    switch signal {
                    case .keyChanged:
                        if await !keyIsValid() { break loop }
                        continue
                    case .heartbeat:
                        if await !keyIsValid() { break loop }
                        var ping = ByteBuffer()
                        ping.writeString(": ping\n\n")
                        try await writer.write(ping)
                        if stopAt.withLock({ $0 }) != nil, try await flush(&writer) { break loop }
                    case .appended:
                        if try await flush(&writer) { break loop }
                    }
                    if let limit = stopAt.withLock({ $0 }), cursor >= limit { break loop }
                }
            } onGracefulShutdown: {
                shuttingDown.withLock { $0 = 0 }
                notifier.notify(sessionID: sessionID, seq: 0)
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "keep-alive"],
            body: body)
    }
}

/// The seq after which a stream ends, once known.
final class StopMark: Sendable {
    private let value = Mutex<Int64?>(nil)
    func withLock<T>(_ body: (inout Int64?) -> T) -> T { value.withLock { body(&$0) } }
}

/// Returns a reserved stream slot exactly once, when released or when dropped.
final class QuotaTicket: Sendable {
    private let quota: StreamQuota
    private let key: String
    private let released = Mutex(false)

    init(quota: StreamQuota, key: String) {
        self.quota = quota
        self.key = key
    }

    func release() {
        let first = released.withLock { done in
            defer { done = true }
            return !done
        }
        if first { quota.release(key) }
    }

    deinit { release() }
}
