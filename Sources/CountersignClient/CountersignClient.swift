import AsyncHTTPClient
import Foundation
import GateCore
import NIOCore
import NIOHTTP1

/// A client for the Countersign native API v1: async/await for JSON calls, an async
/// sequence of events for SSE. Errors in the API's error shape arrive as
/// ``CountersignClient/APIError``.
public struct CountersignClient: Sendable {
    public var baseURL: String
    public var apiKey: String?
    public var namespace: String?
    public var httpClient: HTTPClient

    /// The HTTP client used when none is given: AsyncHTTPClient's default configuration
    /// with a 10 s connect timeout and no retries of a refused connection, so a server
    /// that cannot be reached fails the call at once. `HTTPClient.shared`, used before,
    /// keeps retrying a refused connection until the request's deadline, so every call to
    /// a stopped server took 60 s to fail, and `countersign approvals list` with no server
    /// running hung for a minute.
    public static let defaultHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            timeout: HTTPClient.Configuration.Timeout(connect: .seconds(10)))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    public init(
        baseURL: String, apiKey: String?, namespace: String? = nil, httpClient: HTTPClient = defaultHTTPClient
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.namespace = namespace
        self.httpClient = httpClient
    }

    /// A response as it came: status, headers and body.
    public struct RawResponse: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: Data

        public var json: JSONValue? { try? JSONValue.parse(body) }
        public var text: String { String(decoding: body, as: UTF8.self) }
        /// The `error.code` of an error body.
        public var errorCode: String? { json?["error"]?["code"]?.stringValue }
    }

    /// An error response of the API.
    public struct APIError: Error, Sendable, CustomStringConvertible {
        public var status: Int
        public var code: String
        public var message: String
        public var details: JSONValue
        public var description: String { "\(status) \(code): \(message)" }
    }

    /// No answer came from the server: it refused the connection, is not running, or
    /// the request failed before a response head arrived.
    public struct Unreachable: Error, Sendable, CustomStringConvertible {
        public var baseURL: String
        public var reason: String
        public var description: String {
            "Cannot reach the Countersign server at \(baseURL) (\(reason)). Is it running?"
        }
    }

    /// Sends a request; a failure before the response head is ``Unreachable``.
    func send(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        do {
            return try await httpClient.execute(request, timeout: timeout)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw Unreachable(baseURL: baseURL, reason: "\(error)")
        }
    }

    // MARK: Raw requests

    public func request(
        _ method: HTTPMethod, _ path: String, json: JSONValue? = nil, body: Data? = nil,
        headers extra: [(String, String)] = [], timeout: TimeAmount = .seconds(60)
    ) async throws -> RawResponse {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        if let namespace { request.headers.add(name: "X-Namespace", value: namespace) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json.canonicalString))
        } else if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        for (name, value) in extra { request.headers.replaceOrAdd(name: name, value: value) }
        let response = try await send(request, timeout: timeout)
        let collected = try await response.body.collect(upTo: 64 << 20)
        return RawResponse(
            status: Int(response.status.code), headers: response.headers, body: Data(collected.readableBytesView))
    }

    /// Sends a request and decodes a JSON success body; an error body throws ``APIError``.
    public func call(_ method: HTTPMethod, _ path: String, json: JSONValue? = nil) async throws -> JSONValue {
        let response = try await request(method, path, json: json)
        guard (200..<300).contains(response.status) else {
            let error = response.json?["error"]
            throw APIError(
                status: response.status, code: error?["code"]?.stringValue ?? "http_\(response.status)",
                message: error?["message"]?.stringValue ?? response.text, details: error?["details"] ?? .null)
        }
        return response.json ?? .null
    }

    // MARK: Native API

    public func createSession(agent: String, metadata: JSONValue = [:]) async throws -> JSONValue {
        try await call(.POST, "/v1/sessions", json: ["agent": .string(agent), "metadata": metadata])
    }

    public func session(_ id: String) async throws -> JSONValue {
        try await call(.GET, "/v1/sessions/\(id)")
    }

    /// Sends a message and waits until the run completes or pauses at the gate.
    public func send(sessionID: String, content: String) async throws -> JSONValue {
        try await call(.POST, "/v1/sessions/\(sessionID)/messages", json: ["content": .string(content)])
    }

    public func confirmations(status: String = "pending", sessionID: String? = nil) async throws -> [JSONValue] {
        var path = "/v1/confirmations?status=\(status)"
        if let sessionID { path += "&session_id=\(sessionID)" }
        return try await call(.GET, path)["data"]?.arrayValue ?? []
    }

    public func confirmation(_ id: String) async throws -> JSONValue {
        try await call(.GET, "/v1/confirmations/\(id)")
    }

    public func decide(
        _ id: String, approve: Bool, reason: String? = nil, editedParams: JSONValue? = nil, paramsHash: String? = nil,
        rememberForSession: Bool = false
    ) async throws -> JSONValue {
        var body: JSONValue = ["decision": .string(approve ? "approve" : "deny")]
        if let reason { body = body.setting("reason", .string(reason)) }
        if let editedParams { body = body.setting("edited_params", editedParams) }
        if let paramsHash { body = body.setting("params_hash", .string(paramsHash)) }
        if rememberForSession { body = body.setting("remember", "session") }
        return try await call(.POST, "/v1/confirmations/\(id)/decision", json: body)
    }

    public func events(sessionID: String, after: Int64 = 0, limit: Int = 1000) async throws -> [JSONValue] {
        try await call(.GET, "/v1/sessions/\(sessionID)/events?after=\(after)&limit=\(limit)")["data"]?.arrayValue
            ?? []
    }

    public func cancel(sessionID: String) async throws -> JSONValue {
        try await call(.POST, "/v1/sessions/\(sessionID)/cancel")
    }

    // MARK: SSE

    /// Opens an SSE stream (GET, or POST with a JSON body) and yields its events until
    /// the server ends it. Cancel the consuming task to disconnect.
    public func eventStream(
        _ method: HTTPMethod = .GET, _ path: String, json: JSONValue? = nil, lastEventID: String? = nil,
        includeComments: Bool = false
    ) -> AsyncThrowingStream<ServerSentEvent, any Error> {
        let client = self
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    var request = HTTPClientRequest(url: client.baseURL + path)
                    request.method = method
                    request.headers.add(name: "Accept", value: "text/event-stream")
                    if let apiKey = client.apiKey {
                        request.headers.add(name: "Authorization", value: "Bearer \(apiKey)")
                    }
                    if let namespace = client.namespace { request.headers.add(name: "X-Namespace", value: namespace) }
                    if let lastEventID { request.headers.add(name: "Last-Event-ID", value: lastEventID) }
                    if let json {
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.body = .bytes(ByteBuffer(string: json.canonicalString))
                    }
                    let response = try await client.send(request, timeout: .hours(24))
                    guard response.status == .ok else {
                        let body = try await response.body.collect(upTo: 1 << 20)
                        let error = try? JSONValue.parse(Data(body.readableBytesView))
                        throw APIError(
                            status: Int(response.status.code),
                            code: error?["error"]?["code"]?.stringValue ?? "http_\(response.status.code)",
                            message: error?["error"]?["message"]?.stringValue ?? "",
                            details: error?["error"]?["details"] ?? .null)
                    }
                    var parser = SSEParser(emitComments: includeComments)
                    for try await buffer in response.body {
                        for event in parser.feed(buffer.readableBytesView) { continuation.yield(event) }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
