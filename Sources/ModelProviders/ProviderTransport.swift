import AgentRuntime
import AsyncHTTPClient
import Foundation
import GateCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The time limits of one provider.
public struct ProviderTimeouts: Sendable, Equatable {
    /// Establishing the TCP (and TLS) connection.
    public var connect: Duration
    /// From sending the request to the response head (a non-streaming completion comes
    /// with its head, so this bounds the whole answer there).
    public var response: Duration
    /// Longest silence inside a streamed body before the stream is abandoned. Enforced by
    /// the transport itself: AsyncHTTPClient's deadline covers only the head.
    public var idle: Duration

    public init(connect: Duration = .seconds(10), response: Duration = .seconds(120), idle: Duration = .seconds(60)) {
        self.connect = connect
        self.response = response
        self.idle = idle
    }
}

/// The HTTP half of a provider, shared by the OpenAI-compatible and Anthropic ones:
/// POSTs JSON, retries what is worth retrying, turns what is not into a
/// ``CountersignError`` carrying the provider's own message, and reads streamed bodies
/// under an idle watchdog.
public struct ProviderTransport: Sendable {
    /// How errors name the provider: `OpenAI-compatible provider at https://…/v1`.
    public var label: String
    public let timeouts: ProviderTimeouts
    public var retry: RetryPolicy
    /// Waits between retries.
    public var sleeper: any ProviderSleeper
    /// Paces the idle watchdog of streamed bodies.
    public let watchdogSleeper: any ProviderSleeper
    /// Watches this provider's streamed answers for stalls.
    let watchdog: IdleWatchdog
    public var logger: Logger
    let client: HTTPClient

    public init(
        label: String, timeouts: ProviderTimeouts = ProviderTimeouts(), retry: RetryPolicy = RetryPolicy(),
        client: HTTPClient? = nil, sleeper: any ProviderSleeper = TaskSleeper(),
        watchdogSleeper: any ProviderSleeper = TaskSleeper(), logger: Logger = Logger(label: "countersign.model")
    ) {
        self.label = label
        self.timeouts = timeouts
        self.retry = retry
        self.client = client ?? ProviderHTTPClients.client(connectTimeout: timeouts.connect)
        self.sleeper = sleeper
        self.watchdogSleeper = watchdogSleeper
        self.watchdog = IdleWatchdog(idle: timeouts.idle, sleeper: watchdogSleeper)
        self.logger = logger
    }

    /// POSTs `body` to `url` and hands a 2xx response to `handle`. Statuses and
    /// connection errors worth retrying are retried under ``retry``; everything else, and
    /// the last failure, is thrown as `CountersignError(.unavailable)` with the provider's
    /// message. `handle` is not retried: once a stream delivered text, trying again would
    /// repeat it.
    public func post<T: Sendable>(
        url: String, headers: HTTPHeaders, body: JSONValue,
        handle: @escaping @Sendable (HTTPClientResponse) async throws -> T
    ) async throws -> T {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers = headers
        request.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        request.headers.replaceOrAdd(name: "User-Agent", value: "countersign/1")
        request.body = .bytes(ByteBuffer(string: body.canonicalString))
        var attempt = 0
        while true {
            attempt += 1
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: .nanoseconds(timeouts.response.nanoseconds))
            } catch {
                if error is CancellationError { throw error }
                let retryable = Self.isRetryable(error)
                if retryable, attempt < retry.maxAttempts {
                    let wait = retry.delay(afterAttempt: attempt, retryAfter: nil, random: Double.random(in: 0..<1))
                    logger.warning(
                        "model provider unreachable, retrying",
                        metadata: ["provider": "\(label)", "attempt": "\(attempt)", "error": "\(error)"])
                    try await sleeper.sleep(for: wait)
                    continue
                }
                let tries = attempt > 1 ? " after \(attempt) attempts" : ""
                throw CountersignError(
                    .unavailable, "Could not reach the model provider (\(label))\(tries): \(Self.describe(error)).")
            }
            let status = Int(response.status.code)
            if (200..<300).contains(status) { return try await handle(response) }
            let message = await errorMessage(of: response)
            if RetryPolicy.isRetryable(status: status), attempt < retry.maxAttempts {
                let retryAfter = RetryPolicy.retryAfter(headers: response.headers.map { ($0.name, $0.value) })
                let wait = retry.delay(
                    afterAttempt: attempt, retryAfter: retryAfter, random: Double.random(in: 0..<1))
                logger.warning(
                    "model provider answered \(status), retrying",
                    metadata: [
                        "provider": "\(label)", "attempt": "\(attempt)", "wait_ms": "\(wait.milliseconds)",
                        "message": "\(message)",
                    ])
                try await sleeper.sleep(for: wait)
                continue
            }
            let tries = attempt > 1 ? " after \(attempt) attempts" : ""
            throw CountersignError(
                .unavailable, "The model provider (\(label)) answered HTTP \(status)\(tries): \(message)",
                details: ["provider_status": .int(Int64(status))])
        }
    }

    /// Reads a streamed body as server-sent events under the idle watchdog: `onEvent`
    /// folds each event into `state` as it completes. Returns the final state.
    public func readEvents<State: Sendable>(
        _ response: HTTPClientResponse, into initial: State,
        _ onEvent: @escaping @Sendable (inout State, SSEEvent) async throws -> Void
    ) async throws -> State {
        do {
            return try await withIdleTimeout(watchdog) { activity in
                var state = initial
                var decoder = SSEDecoder()
                for try await chunk in response.body {
                    activity.touch()
                    for event in decoder.feed(chunk.readableBytesView) {
                        try await onEvent(&state, event)
                        activity.touch()
                    }
                }
                for event in decoder.finish() { try await onEvent(&state, event) }
                return state
            }
        } catch {
            throw readFailure(error)
        }
    }

    /// Reads a whole (non-streamed) body under the idle watchdog.
    public func readBody(_ response: HTTPClientResponse, limit: Int = 32 << 20) async throws -> ByteBuffer {
        do {
            return try await withIdleTimeout(watchdog) { activity in
                var collected = ByteBuffer()
                for try await var chunk in response.body {
                    activity.touch()
                    guard collected.readableBytes + chunk.readableBytes <= limit else {
                        throw CountersignError(
                            .unavailable, "The model provider (\(label)) sent an answer larger than \(limit) bytes.")
                    }
                    collected.writeBuffer(&chunk)
                }
                return collected
            }
        } catch {
            throw readFailure(error)
        }
    }

    /// What a failed read of an answer reports: a stalled stream as the idle error, our
    /// own errors and cancellation as they are, anything else as a broken-off answer.
    func readFailure(_ error: any Error) -> any Error {
        if error is StreamIdleTimeout { return idleError() }
        if error is CountersignError || error is CancellationError { return error }
        return CountersignError(
            .unavailable, "The model provider (\(label)) broke off its answer: \(Self.describe(error)).")
    }

    func idleError() -> CountersignError {
        CountersignError(
            .unavailable,
            "The model provider (\(label)) sent nothing for \(timeouts.idle.seconds) s in the middle of its answer; "
                + "the stream was abandoned.")
    }

    // MARK: Errors

    /// Connection-level failures worth another try: refused, reset, timed out.
    static func isRetryable(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError {
            return [
                HTTPClientError.connectTimeout, .remoteConnectionClosed, .readTimeout, .writeTimeout,
                .getConnectionFromPoolTimeout, .deadlineExceeded, .tlsHandshakeTimeout,
            ].contains(error)
        }
        if error is NIOConnectionError || error is IOError || error is ChannelError { return true }
        return false
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "the connection timed out"
            case .deadlineExceeded: return "no response head before the timeout"
            case .remoteConnectionClosed: return "the connection was closed"
            default: return "\(error)"
            }
        }
        if error is NIOConnectionError { return "the connection was refused" }
        return "\(error)"
    }

    /// The provider's own words from an error body: OpenAI's `{"error": {"message"}}`,
    /// Anthropic's `{"type": "error", "error": {"type", "message"}}`, or the text itself.
    func errorMessage(of response: HTTPClientResponse) async -> String {
        let reason = response.status.reasonPhrase
        guard let body = try? await readBody(response, limit: 1 << 20) else { return reason }
        let text = String(buffer: body)
        return Self.providerMessage(text) ?? (text.isEmpty ? reason : String(text.prefix(500)))
    }

    static func providerMessage(_ text: String) -> String? {
        guard let json = try? JSONValue.parse(text) else { return nil }
        if let error = json["error"] {
            if let message = error["message"]?.stringValue {
                if let type = error["type"]?.stringValue, !type.isEmpty { return "\(message) (\(type))" }
                return message
            }
            if let message = error.stringValue { return message }
        }
        if let message = json["message"]?.stringValue { return message }
        if let detail = json["detail"]?.stringValue { return detail }
        return nil
    }
}

/// One `HTTPClient` per connect timeout, alive for the whole process like
/// `HTTPClient.shared` (whose connect timeout cannot be changed). Keep-alive pools are
/// shared by every model of the process.
public enum ProviderHTTPClients {
    private static let clients = Mutex<[Int64: HTTPClient]>([:])

    public static func client(connectTimeout: Duration) -> HTTPClient {
        let key = connectTimeout.nanoseconds
        return clients.withLock { clients in
            if let client = clients[key] { return client }
            var configuration = HTTPClient.Configuration(
                timeout: HTTPClient.Configuration.Timeout(connect: .nanoseconds(key)))
            // AsyncHTTPClient's default of 8 connections per host would queue the model
            // calls of a busy server behind each other; runs in flight share one provider.
            configuration.connectionPool = .init(
                idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
            // A refused connection fails the attempt at once; `post` retries it under the
            // provider's RetryPolicy. AsyncHTTPClient's own retries would spend the whole
            // connect timeout on every attempt: 43 s before a stopped provider was reported.
            configuration.connectionPool.retryConnectionEstablishment = false
            configuration.decompression = .enabled(limit: .ratio(25))
            // Countersign exports no traces: without a tracer the client skips the span
            // it would open per request (and a second parse of the URL for its attributes)
            // for the no-op tracer of an unconfigured InstrumentationSystem.
            configuration.tracing.tracer = nil
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            clients[key] = client
            return client
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    var milliseconds: Int64 { nanoseconds / 1_000_000 }

    /// Seconds, written without a trailing `.0` for whole numbers.
    var seconds: String {
        let value = Double(nanoseconds) / 1e9
        return value == value.rounded() ? String(Int64(value)) : String(value)
    }
}

/// What assembles one provider's streamed answer from its SSE events.
protocol StreamAssembler: Sendable {
    /// Applies one event; returns the text delta it carried, if any.
    mutating func apply(_ event: SSEEvent) throws -> String?
    /// The provider said the answer is complete (a stop reason or its end marker).
    var isComplete: Bool { get }
    var usage: ModelUsage { get }
    func response(names: ToolNameMap) -> ModelResponse
}

extension ProviderTransport {
    /// One model step against a provider: POSTs `body`, reads a streamed answer through
    /// `assembler` (text deltas go to `onToken` as they arrive) or a whole one through
    /// `parseWhole`, and logs the usage. Shared by the OpenAI-compatible and Anthropic
    /// models, which differ only in their URLs, bodies and parsers.
    func respond<Assembler: StreamAssembler>(
        model: String, url: String, headers: HTTPHeaders, body: JSONValue, stream: Bool, names: ToolNameMap,
        assembler: Assembler, usage meter: UsageMeter,
        parseWhole: @escaping @Sendable (Data) throws -> (ModelResponse, ModelUsage),
        onToken: @escaping @Sendable (String) async -> Void
    ) async throws -> ModelResponse {
        let label = self.label
        let (response, used) = try await post(url: url, headers: headers, body: body) {
            response -> (ModelResponse, ModelUsage) in
            let contentType = response.headers.first(name: "content-type")?.lowercased() ?? ""
            if stream, contentType.contains("text/event-stream") {
                let assembled = try await self.readEvents(response, into: assembler) { assembler, event in
                    if let delta = try assembler.apply(event), !delta.isEmpty { await onToken(delta) }
                }
                guard assembled.isComplete else {
                    throw CountersignError(
                        .unavailable, "The model provider (\(label)) ended its stream before the answer was complete.")
                }
                return (assembled.response(names: names), assembled.usage)
            }
            let buffer = try await self.readBody(response)
            let (whole, used) = try parseWhole(Data(buffer.readableBytesView))
            if !whole.text.isEmpty { await onToken(whole.text) }
            return (whole, used)
        }
        meter.record(used)
        logger.debug(
            "model step",
            metadata: [
                "model": "\(model)", "input_tokens": "\(used.inputTokens)", "output_tokens": "\(used.outputTokens)",
                "tool_calls": "\(response.toolCalls.count)",
            ])
        return response
    }
}
