import Synchronization

/// Wakes the readers of a session's event log when new events are committed. It
/// carries no events itself: streams re-read the durable log, so a lost wake-up costs
/// latency (until the next heartbeat), never an event.
public final class EventNotifier: Sendable {
    public enum Signal: Sendable, Equatable {
        case appended(Int64)
        case heartbeat
        /// The API key the stream was opened with changed (revoked): re-check it.
        case keyChanged
    }

    private struct Subscriber {
        let continuation: AsyncStream<Signal>.Continuation
    }

    private let subscribers = Mutex<[String: [Int: Subscriber]]>([:])
    private let nextID = Atomic<Int>(0)

    public init() {}

    /// Tells every subscriber of `sessionID` that events up to `seq` are committed.
    public func notify(sessionID: String, seq: Int64) {
        let targets = subscribers.withLock { $0[sessionID].map { Array($0.values) } ?? [] }
        for target in targets { target.continuation.yield(.appended(seq)) }
    }

    public func notify(_ events: [SessionEvent]) {
        var latest: [String: Int64] = [:]
        for event in events { latest[event.sessionID] = max(latest[event.sessionID] ?? 0, event.seq) }
        for (session, seq) in latest { notify(sessionID: session, seq: seq) }
    }

    /// Tells the streams opened with the key `prefix` that it changed (was revoked).
    public func notifyKeyChanged(prefix: String) {
        let targets = subscribers.withLock { $0[Self.keyChannel(prefix)].map { Array($0.values) } ?? [] }
        for target in targets { target.continuation.yield(.keyChanged) }
    }

    static func keyChannel(_ prefix: String) -> String { "key:" + prefix }

    /// A stream of wake-ups for one session, with a heartbeat every `heartbeat` when
    /// nothing else happens, and `.keyChanged` when the key `keyPrefix` is revoked.
    /// Ends when the consuming task is cancelled.
    public func subscribe(sessionID: String, keyPrefix: String? = nil, heartbeat: Duration) -> AsyncStream<Signal> {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream<Signal>.makeStream(bufferingPolicy: .bufferingNewest(16))
        let channels = [sessionID] + (keyPrefix.map { [Self.keyChannel($0)] } ?? [])
        subscribers.withLock { table in
            for channel in channels { table[channel, default: [:]][id] = Subscriber(continuation: continuation) }
        }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: heartbeat)
                if Task.isCancelled { break }
                continuation.yield(.heartbeat)
            }
        }
        continuation.onTermination = { [weak self] _ in
            ticker.cancel()
            self?.subscribers.withLock { table in
                for channel in channels {
                    table[channel]?[id] = nil
                    if table[channel]?.isEmpty == true { table[channel] = nil }
                }
            }
        }
        return stream
    }

    /// Open subscriptions (each stream counted once).
    public var subscriberCount: Int {
        subscribers.withLock { table in
            table.filter { !$0.key.hasPrefix("key:") }.values.reduce(0) { $0 + $1.count }
        }
    }
}
