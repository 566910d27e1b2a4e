import AgentRuntime
import AsyncHTTPClient
import Foundation
import GateCore
import NIOCore
import NIOHTTP1

/// A tool that is an HTTP endpoint of your own (`webhook_tools` in the config file):
/// the call's arguments are POSTed as a JSON object, and the response body is the
/// tool's output. Every request carries `Idempotency-Key`: the confirmation id for a
/// gated call (the call id otherwise), the same on every attempt of that call, so a
/// receiver can de-duplicate a call re-run after a crash.
public struct WebhookTool: Tool {
    public struct Configuration: Sendable, Equatable {
        public var name: String
        public var url: String
        public var description: String
        public var inputSchema: JSONValue
        public var flags: ToolFlags
        /// Fixed headers, with values already read from the environment.
        public var headers: [(String, String)]
        public var timeout: TimeInterval
        public var maxResponseBytes: Int
        /// The approver's sentence; `{argument}` is replaced by that argument's value.
        public var summaryTemplate: String?

        public init(
            name: String, url: String, description: String, inputSchema: JSONValue, flags: ToolFlags,
            headers: [(String, String)] = [], timeout: TimeInterval = 10, maxResponseBytes: Int = 64 * 1024,
            summaryTemplate: String? = nil
        ) {
            self.name = name
            self.url = url
            self.description = description
            self.inputSchema = inputSchema
            self.flags = flags
            self.headers = headers
            self.timeout = timeout
            self.maxResponseBytes = maxResponseBytes
            self.summaryTemplate = summaryTemplate
        }

        public static func == (lhs: Configuration, rhs: Configuration) -> Bool {
            lhs.name == rhs.name && lhs.url == rhs.url && lhs.description == rhs.description
                && lhs.inputSchema == rhs.inputSchema && lhs.flags == rhs.flags
                && lhs.headers.map { "\($0.0):\($0.1)" } == rhs.headers.map { "\($0.0):\($0.1)" }
                && lhs.timeout == rhs.timeout && lhs.maxResponseBytes == rhs.maxResponseBytes
                && lhs.summaryTemplate == rhs.summaryTemplate
        }
    }

    public let configuration: Configuration
    public let descriptor: ToolDescriptor

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        descriptor = ToolDescriptor(
            name: configuration.name, description: configuration.description, inputSchema: configuration.inputSchema,
            flags: configuration.flags, toolKey: "webhook.\(configuration.name)")
    }

    public func summary(of params: JSONValue) -> String {
        guard let template = configuration.summaryTemplate else {
            return "Send \(params.canonicalString) to \(configuration.name)"
        }
        var text = template
        for (key, value) in params.objectValue ?? [:] {
            text = text.replacingOccurrences(of: "{\(key)}", with: value.stringValue ?? value.canonicalString)
        }
        return text
    }

    public func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput {
        var request = HTTPClientRequest(url: configuration.url)
        request.method = .POST
        for (name, value) in configuration.headers { request.headers.add(name: name, value: value) }
        request.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        request.headers.replaceOrAdd(name: "Idempotency-Key", value: context.confirmationID ?? context.callID)
        request.headers.replaceOrAdd(name: "X-Countersign-Session-Id", value: context.sessionID)
        request.headers.replaceOrAdd(name: "X-Countersign-Call-Id", value: context.callID)
        if let confirmationID = context.confirmationID {
            request.headers.replaceOrAdd(name: "X-Countersign-Confirmation-Id", value: confirmationID)
        }
        request.headers.replaceOrAdd(name: "User-Agent", value: "countersign-webhook/1")
        request.body = .bytes(ByteBuffer(string: params.canonicalString))
        let prepared = request
        let limit = configuration.maxResponseBytes
        let timeout = configuration.timeout
        do {
            let (code, body, truncated) = try await OutboundHTTP.within(timeout) {
                let response = try await OutboundHTTP.client.execute(
                    prepared, timeout: .milliseconds(Int64(timeout * 1000)))
                let (body, truncated) = try await OutboundHTTP.collect(response.body, limit: limit)
                return (Int(response.status.code), body, truncated)
            }
            var text = body
            if truncated { text += "\n[response truncated at \(configuration.maxResponseBytes) bytes]" }
            var data: JSONValue = ["status": .int(Int64(code))]
            if let json = try? JSONValue.parse(body), !truncated { data = data.setting("body", json) }
            guard (200..<300).contains(code) else {
                return ToolOutput(
                    success: false, content: "\(configuration.name) answered HTTP \(code): \(text)", data: data)
            }
            return ToolOutput(success: true, content: text, data: data)
        } catch let error where OutboundHTTP.isTimeout(error) {
            return .failure(
                "\(configuration.name) did not answer within \(Self.seconds(configuration.timeout)); it may or may "
                    + "not have acted. A retry carries the same Idempotency-Key.")
        } catch {
            return .failure("Calling \(configuration.name) failed: \(error)")
        }
    }

    static func seconds(_ value: TimeInterval) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }
}

/// The HTTP client of the tools that reach out (webhooks, `http_fetch`). It never
/// follows redirects by itself: `http_fetch` follows them one hop at a time so that
/// every hop passes its address checks, and a webhook's redirect is an answer.
enum OutboundHTTP {
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5)), decompression: .disabled)
        // A refused connection is the tool's failure at once, not after 5 s of retries.
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    struct TimedOut: Error {}

    static func isTimeout(_ error: any Error) -> Bool {
        if error is TimedOut { return true }
        if let error = error as? HTTPClientError { return error == .deadlineExceeded || error == .readTimeout }
        return false
    }

    /// Runs `operation` and cancels it when `seconds` pass first (the HTTP client's own
    /// deadline covers the response head, not a body that stops arriving).
    static func within<T: Sendable>(
        _ seconds: TimeInterval, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await operation() }
            group.addTask {
                try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
                throw TimedOut()
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// Reads at most `limit` bytes of a body; says whether more was left unread.
    static func collect(_ body: HTTPClientResponse.Body, limit: Int) async throws -> (String, Bool) {
        var buffer = ByteBuffer()
        var truncated = false
        for try await chunk in body {
            let room = limit - buffer.readableBytes
            if chunk.readableBytes > room {
                var slice = chunk
                if room > 0, let head = slice.readSlice(length: room) { buffer.writeImmutableBuffer(head) }
                truncated = true
                break
            }
            buffer.writeImmutableBuffer(chunk)
        }
        return (String(buffer: buffer), truncated)
    }
}
