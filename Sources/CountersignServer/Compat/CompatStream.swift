import AgentRuntime
import GateCore
import Hummingbird
import NIOCore
import ServiceLifecycle
import Synchronization

/// Server-Sent Events for the seed doors: like the native stream, a view of a session's
/// durable log (so a client that connects late still sees everything), with the door's
/// own encoding of each event, its own end and an optional closing frame built from the
/// run's outcome.
struct CompatStream: Sendable {
    let store: any Store
    let notifier: EventNotifier
    let heartbeat: Duration

    enum End: Sendable {
        /// When the run has stopped (completed, failed, cancelled or paused at the gate)
        /// and every event up to that point has been sent.
        case runStops(RunHandle)
        /// Once the event with this seq has been sent.
        case seq(Int64)
        /// After a `run.completed` or `run.failed` event that is the last one in the log
        /// (a Sigmic task's stream spans the pauses of its run).
        case runEnds
    }

    func response(
        sessionID: String, after: Int64, end: End, encode: @escaping @Sendable (SessionEvent) -> String?,
        closing: (@Sendable (RunOutcome?) async throws -> String?)? = nil
    ) -> Response {
        let store = self.store
        let notifier = self.notifier
        let heartbeat = self.heartbeat
        let body = ResponseBody { writer in
            let signals = notifier.subscribe(sessionID: sessionID, heartbeat: heartbeat)
            let limit = StreamLimit()
            var watcher: Task<RunOutcome, Never>?
            switch end {
            case .seq(let last): limit.set(last)
            case .runStops(let handle):
                watcher = Task {
                    let outcome = await handle.outcome
                    limit.set(outcome.lastSeq)
                    notifier.notify(sessionID: sessionID, seq: outcome.lastSeq)
                    return outcome
                }
            case .runEnds: break
            }
            defer { watcher?.cancel() }
            var cursor = after
            var lastWasTerminal = false
            // Sends what the log holds after the cursor; true when the stream is complete.
            func flush(_ writer: inout any ResponseBodyWriter) async throws -> Bool {
                while true {
                    let stop = limit.value
                    let batch = try await store.events(sessionID: sessionID, after: cursor, limit: 500)
                    var buffer = ByteBuffer()
                    var reachedStop = false
                    for event in batch {
                        if let stop, event.seq > stop {
                            reachedStop = true
                            break
                        }
                        if let text = encode(event) { buffer.writeString(text) }
                        cursor = event.seq
                        lastWasTerminal = EventType.terminal.contains(event.type)
                    }
                    if buffer.readableBytes > 0 { try await writer.write(buffer) }
                    if batch.count == 500, !reachedStop { continue }
                    if let stop, cursor >= stop { return true }
                    if case .runEnds = end, lastWasTerminal { return true }
                    return false
                }
            }
            try await writer.write(ByteBuffer(string: ": connected\n\n"))
            var complete = try await flush(&writer)
            if !complete {
                let shuttingDown = StreamLimit()
                complete = try await withGracefulShutdownHandler {
                    for await signal in signals {
                        if shuttingDown.value != nil { return false }
                        if case .heartbeat = signal { try await writer.write(ByteBuffer(string: ": ping\n\n")) }
                        if try await flush(&writer) { return true }
                    }
                    return false
                } onGracefulShutdown: {
                    shuttingDown.set(0)
                    notifier.notify(sessionID: sessionID, seq: 0)
                }
            }
            if complete, let closing, let text = try await closing(await watcher?.value) {
                try await writer.write(ByteBuffer(string: text))
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "keep-alive"],
            body: body)
    }
}

/// A seq set once from another task.
private final class StreamLimit: Sendable {
    private let stored = Mutex<Int64?>(nil)
    var value: Int64? { stored.withLock { $0 } }
    func set(_ seq: Int64) { stored.withLock { $0 = seq } }
}
