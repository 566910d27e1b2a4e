import AsyncHTTPClient
import Foundation
import GateCore
import Logging
import MCP
import NIOCore
import NIOHTTP1
import Synchronization

/// The client side of MCP's Streamable HTTP transport, on AsyncHTTPClient.
///
/// The MCP SDK's own `HTTPClientTransport` cannot be used on Linux: there it hands a
/// `text/event-stream` answer over as one raw message and never opens the server's GET
/// stream — and servers built with the Python SDK answer every POST with an event
/// stream by default. This transport:
/// - POSTs each JSON-RPC message with `Accept: application/json, text/event-stream`;
/// - keeps the `Mcp-Session-Id` the server assigns and, once the initialize answer has
///   named the protocol version, sends `MCP-Protocol-Version`;
/// - reads `202 Accepted` (a notification or response was taken), `application/json`
///   bodies (one message or a batch) and `text/event-stream` bodies (each event's data
///   is one message), and passes every message to the client;
/// - after initialisation opens the GET stream for messages the server sends on its own
///   (such as `notifications/tools/list_changed`); a server that answers 405 has none;
/// - reports in ``closed`` that the server is gone — a POST that cannot connect, a
///   `404` for the session (it expired), a GET stream that cannot be opened again —
///   so that the supervisor reconnects;
/// - ends the session with `DELETE` on disconnect.
actor StreamableHTTPTransport: Transport {
    nonisolated let logger: Logger
    /// Why the connection is no longer usable, once it is not.
    nonisolated let closed = OneShot<String>()
    /// Whether the server's GET stream is open, once that is known: true when it
    /// answered 200, false when the server has none (405) or it could not be opened.
    /// Messages the server sends on its own before that are lost, so the tools are
    /// listed only once it is known.
    nonisolated let listening = OneShot<Bool>()

    private let url: String
    private let headers: [String: String]
    private let requestTimeout: Duration
    private let messages: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    private var sessionID: String?
    private var protocolVersion: String?
    private var lastEventID: String?
    private var listener: Task<Void, Never>?
    private var connected = false

    init(url: String, headers: [String: String], requestTimeout: Duration, logger: Logger) {
        self.url = url
        self.headers = headers
        self.requestTimeout = requestTimeout
        self.logger = logger
        (messages, continuation) = AsyncThrowingStream<Data, any Error>.makeStream()
    }

    /// One client for every MCP HTTP server of the process: no read timeout (the GET
    /// stream may be quiet for hours; calls have their own deadline), room for many open
    /// streams per host, a short connect timeout, and no retries of a refused
    /// connection: a server that went away is noticed at once, and the supervisor
    /// reconnects with its own backoff.
    static let httpClient: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            timeout: HTTPClient.Configuration.Timeout(connect: .seconds(5), read: nil))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    func connect() async throws {
        guard closed.value == nil else { throw MCPError.connectionClosed }
        connected = true
    }

    func disconnect() async {
        closed.fulfil("disconnected")
        guard connected else { return }
        connected = false
        listener?.cancel()
        listener = nil
        continuation.finish()
        if let sessionID {
            var request = makeRequest(method: .DELETE)
            request.headers.replaceOrAdd(name: "Mcp-Session-Id", value: sessionID)
            _ = try? await Self.httpClient.execute(request, timeout: .seconds(2))
        }
    }

    nonisolated func receive() -> AsyncThrowingStream<Data, any Error> { messages }

    func send(_ data: Data) async throws {
        guard connected else { throw MCPError.connectionClosed }
        var request = makeRequest(method: .POST)
        request.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        request.headers.replaceOrAdd(name: "Accept", value: "application/json, text/event-stream")
        request.body = .bytes(ByteBuffer(bytes: data))
        let outgoing = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        let isInitialized = outgoing?["method"] as? String == "notifications/initialized"
        let response: HTTPClientResponse
        do {
            response = try await Self.httpClient.execute(request, deadline: .now() + .nanoseconds(requestTimeout.nanos))
        } catch {
            closed.fulfil("cannot reach \(url): \(error)")
            throw MCPError.transportError(error)
        }
        if let assigned = response.headers.first(name: "Mcp-Session-Id"), !assigned.isEmpty {
            sessionID = assigned
        }
        switch response.status.code {
        case 202:
            _ = try? await response.body.collect(upTo: 64 * 1024)
        case 200..<300:
            try await readBody(of: response)
        case 404 where sessionID != nil:
            closed.fulfil("the server ended the session (HTTP 404)")
            throw MCPError.connectionClosed
        default:
            let body = (try? await response.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
            throw MCPError.internalError(
                "\(url) answered HTTP \(response.status.code)\(body.isEmpty ? "" : ": \(body.prefix(300))")")
        }
        if isInitialized, listener == nil { startListening() }
    }

    /// Passes on the messages of a JSON or event-stream body.
    private func readBody(of response: HTTPClientResponse) async throws {
        let type = response.headers.first(name: "Content-Type")?.lowercased() ?? ""
        if type.hasPrefix("text/event-stream") {
            var decoder = SSEDecoder()
            for try await chunk in response.body {
                for event in decoder.feed(chunk.readableBytesView) { deliver(event.data) }
            }
            for event in decoder.finish() { deliver(event.data) }
        } else {
            let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
            deliver(String(buffer: body))
        }
    }

    private func deliver(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return }
        let data = Data(trimmed.utf8)
        if protocolVersion == nil,
            let message = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let result = message["result"] as? [String: Any], result["serverInfo"] != nil,
            let version = result["protocolVersion"] as? String
        {
            protocolVersion = version
        }
        continuation.yield(data)
    }

    private func makeRequest(method: HTTPMethod) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        if let sessionID { request.headers.replaceOrAdd(name: "Mcp-Session-Id", value: sessionID) }
        if let protocolVersion { request.headers.replaceOrAdd(name: "MCP-Protocol-Version", value: protocolVersion) }
        return request
    }

    // MARK: The server's stream

    private enum Listening {
        /// The stream ended; `lasted` says for how long it was open.
        case ended(lasted: Duration)
        /// The server offers no stream (405).
        case unsupported
        /// The stream could not be opened.
        case failed(String)
    }

    private func startListening() {
        listener = Task { [weak self] in
            var reopened = false
            while !Task.isCancelled, let self {
                switch await self.listenOnce() {
                case .unsupported:
                    self.logger.debug("MCP server has no GET stream (405)")
                    self.listening.fulfil(false)
                    return
                case .failed(let why):
                    self.listening.fulfil(false)
                    if Task.isCancelled { return }
                    // The first stream may fail for reasons of its own; a reopened one
                    // that cannot even be opened means the server is gone.
                    if reopened {
                        self.closed.fulfil(why)
                        return
                    }
                    self.logger.debug("MCP server stream failed", metadata: ["reason": "\(why)"])
                    reopened = true
                case .ended(let lasted):
                    reopened = true
                    // A server that closes its stream at once is not asked again and again.
                    if lasted < .seconds(1) { try? await Task.sleep(for: .seconds(1)) }
                }
            }
        }
    }

    private func listenOnce() async -> Listening {
        var request = makeRequest(method: .GET)
        request.headers.replaceOrAdd(name: "Accept", value: "text/event-stream")
        if let lastEventID { request.headers.replaceOrAdd(name: "Last-Event-ID", value: lastEventID) }
        let opened = ContinuousClock.now
        let response: HTTPClientResponse
        do {
            response = try await Self.httpClient.execute(request, deadline: .distantFuture)
        } catch {
            return .failed("cannot reach \(url): \(error)")
        }
        switch response.status.code {
        case 200..<300:
            listening.fulfil(true)
        case 405:
            return .unsupported
        default:
            return .failed("the server's stream answered HTTP \(response.status.code)")
        }
        var decoder = SSEDecoder()
        do {
            for try await chunk in response.body {
                for event in decoder.feed(chunk.readableBytesView) { deliver(event.data) }
                if let id = decoder.lastEventID { lastEventID = id }
            }
        } catch {
            if Task.isCancelled { return .ended(lasted: ContinuousClock.now - opened) }
        }
        return .ended(lasted: ContinuousClock.now - opened)
    }
}

extension Duration {
    /// Whole nanoseconds, for NIO's `TimeAmount`.
    var nanos: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
