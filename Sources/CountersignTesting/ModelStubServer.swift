import Foundation
import GateCore
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A local stand-in for an OpenAI-compatible or Anthropic endpoint: a small Hummingbird
/// server on a free loopback port that replays recorded exchanges (cassettes) in order.
/// Each request is checked against the next exchange's expected method, path, headers
/// and body (a subset match); a request that does not match, or one beyond the script,
/// gets HTTP 400 with a `stub_mismatch` error and is remembered, so
/// ``assertConsumed()`` fails the test loudly. Responses are replayed as recorded: SSE
/// chunks written one by one, whole JSON bodies, error statuses with their headers —
/// or a stream that stops sending and holds the connection open (`stall`).
public final class ModelStubServer: Sendable {
    // MARK: Cassettes

    /// A recorded conversation with a provider.
    public struct Cassette: Codable, Sendable {
        public var description: String?
        public var exchanges: [Exchange]

        public init(description: String? = nil, exchanges: [Exchange]) {
            self.description = description
            self.exchanges = exchanges
        }

        /// Reads a cassette file (JSON).
        public static func load(_ url: URL) throws -> Cassette {
            try JSONDecoder().decode(Cassette.self, from: Data(contentsOf: url))
        }
    }

    public struct Exchange: Codable, Sendable {
        public var request: ExpectedRequest
        public var response: StubResponse

        public init(request: ExpectedRequest, response: StubResponse) {
            self.request = request
            self.response = response
        }
    }

    /// What the next request must look like. `body` is matched as a subset: every key
    /// given must be present with a matching value (arrays element by element, same
    /// length); the string `"$any"` matches any value and `{"$contains": "text"}` any
    /// string containing the text.
    public struct ExpectedRequest: Codable, Sendable {
        public var method: String?
        public var path: String
        /// Header names in lower case; values must be equal.
        public var headers: [String: String]?
        public var body: JSONValue?

        public init(method: String? = "POST", path: String, headers: [String: String]? = nil, body: JSONValue? = nil) {
            self.method = method
            self.path = path
            self.headers = headers
            self.body = body
        }
    }

    public struct StubResponse: Codable, Sendable {
        public var status: Int
        public var headers: [String: String]?
        /// Streamed: each chunk is written as it is, in order.
        public var chunks: [String]?
        /// A whole JSON body.
        public var json: JSONValue?
        /// A whole raw body.
        public var text: String?
        /// After the chunks, send nothing more and keep the connection open until the
        /// stub stops (an idle stream).
        public var stall: Bool?

        public init(
            status: Int = 200, headers: [String: String]? = nil, chunks: [String]? = nil, json: JSONValue? = nil,
            text: String? = nil, stall: Bool? = nil
        ) {
            self.status = status
            self.headers = headers
            self.chunks = chunks
            self.json = json
            self.text = text
            self.stall = stall
        }
    }

    /// A request the stub received.
    public struct ReceivedRequest: Sendable {
        public var method: String
        public var path: String
        /// Lower-case names.
        public var headers: [String: String]
        public var text: String
        public var json: JSONValue? { try? JSONValue.parse(text) }
    }

    public struct Unconsumed: Error, CustomStringConvertible {
        public var description: String
    }

    // MARK: Running

    public let port: Int
    let state: StubState

    /// `http://127.0.0.1:PORT`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    init(port: Int, state: StubState) {
        self.port = port
        self.state = state
    }

    /// Every request received so far, in order.
    public var received: [ReceivedRequest] { state.received }

    /// Requests that did not match their exchange (or came beyond the script).
    public var mismatches: [String] { state.mismatches }

    /// Throws unless every exchange was used and every request matched.
    public func assertConsumed() throws {
        let (used, total, mismatches) = state.progress
        if !mismatches.isEmpty {
            throw Unconsumed(description: "ModelStubServer: \(mismatches.joined(separator: "; "))")
        }
        if used < total {
            throw Unconsumed(description: "ModelStubServer: \(total - used) exchange(s) never requested")
        }
    }

    /// Returns once a response has reached its `stall` point (the chunks before it sent).
    public func stalled() async { await state.waitForStall() }

    /// Runs `body` with a stub replaying `exchanges`, then stops it (releasing stalled
    /// streams first).
    public static func with<T: Sendable>(
        _ exchanges: [Exchange], _ body: @Sendable (ModelStubServer) async throws -> T
    ) async throws -> T {
        let state = StubState(exchanges: exchanges)
        var logger = Logger(label: "countersign.model-stub")
        logger.logLevel = ProcessInfo.processInfo.environment["COUNTERSIGN_TEST_LOG"] == nil ? .critical : .debug
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            responder: CallbackResponder { (request: Request, _: BasicRequestContext) in
                try await state.respond(to: request)
            },
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0), serverName: "model-stub"),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CountersignError(.internal, "stub did not start") }
            let stub = ModelStubServer(port: port, state: state)
            let result: Result<T, any Error>
            do {
                result = .success(try await body(stub))
            } catch {
                result = .failure(error)
            }
            state.releaseStalls()
            await group.triggerGracefulShutdown()
            tasks.cancelAll()
            return try result.get()
        }
    }

    /// Runs `body` with a stub replaying the exchanges of several cassettes, in order.
    public static func with<T: Sendable>(
        cassettes: [Cassette], _ body: @Sendable (ModelStubServer) async throws -> T
    ) async throws -> T {
        try await with(cassettes.flatMap(\.exchanges), body)
    }
}

/// The stub's script and what it saw.
final class StubState: Sendable {
    private enum Outcome {
        case respond(ModelStubServer.StubResponse)
        case mismatch(String)
    }

    private struct Data {
        var exchanges: [ModelStubServer.Exchange]
        var next = 0
        var received: [ModelStubServer.ReceivedRequest] = []
        var mismatches: [String] = []
        var stalls = 0
        var stallWaiters: [CheckedContinuation<Void, Never>] = []
        var held: [CheckedContinuation<Void, Never>] = []
        var released = false
    }

    private let data: Mutex<Data>

    init(exchanges: [ModelStubServer.Exchange]) {
        data = Mutex(Data(exchanges: exchanges))
    }

    var received: [ModelStubServer.ReceivedRequest] { data.withLock { $0.received } }
    var mismatches: [String] { data.withLock { $0.mismatches } }
    var progress: (Int, Int, [String]) { data.withLock { ($0.next, $0.exchanges.count, $0.mismatches) } }

    func respond(to request: Request) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 16 << 20)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let received = ModelStubServer.ReceivedRequest(
            method: request.method.rawValue, path: request.uri.path, headers: headers, text: String(buffer: body))
        let outcome: Outcome = data.withLock { data in
            data.received.append(received)
            let number = data.received.count
            guard data.next < data.exchanges.count else {
                let problem = "request #\(number) (\(received.method) \(received.path)) came after the script ended"
                data.mismatches.append(problem)
                return .mismatch(problem)
            }
            let exchange = data.exchanges[data.next]
            data.next += 1
            if let problem = Self.mismatch(exchange.request, received) {
                let text = "request #\(number) (\(received.method) \(received.path)): \(problem)"
                data.mismatches.append(text)
                return .mismatch(text)
            }
            return .respond(exchange.response)
        }
        switch outcome {
        case .mismatch(let problem):
            let json: JSONValue = [
                "error": ["message": .string("ModelStubServer: \(problem)"), "type": "stub_mismatch"]
            ]
            return Response(
                status: .badRequest, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: json.canonicalString)))
        case .respond(let response):
            return makeResponse(response)
        }
    }

    private func makeResponse(_ stub: ModelStubServer.StubResponse) -> Response {
        var fields = HTTPFields()
        for (name, value) in (stub.headers ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let name = HTTPField.Name(name) { fields[name] = value }
        }
        let status = HTTPResponse.Status(code: stub.status)
        if let chunks = stub.chunks {
            let stall = stub.stall ?? false
            return Response(
                status: status, headers: fields,
                body: ResponseBody { [self] writer in
                    for chunk in chunks { try await writer.write(ByteBuffer(string: chunk)) }
                    if stall { await self.hold() }
                    try await writer.finish(nil)
                })
        }
        let text = stub.text ?? stub.json?.canonicalString ?? ""
        if stub.json != nil, fields[.contentType] == nil { fields[.contentType] = "application/json" }
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// Keeps a stalled stream open until the stub stops.
    private func hold() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiters: [CheckedContinuation<Void, Never>]? = data.withLock { data in
                data.stalls += 1
                if data.released { return nil }
                data.held.append(continuation)
                defer { data.stallWaiters = [] }
                return data.stallWaiters
            }
            guard let waiters else {
                continuation.resume()
                return
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    func waitForStall() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = data.withLock { data in
                if data.stalls > 0 { return true }
                data.stallWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    func releaseStalls() {
        let held = data.withLock { data in
            data.released = true
            defer { data.held = [] }
            return data.held
        }
        for continuation in held { continuation.resume() }
    }

    // MARK: Matching

    static func mismatch(_ expected: ModelStubServer.ExpectedRequest, _ received: ModelStubServer.ReceivedRequest)
        -> String?
    {
        if let method = expected.method, method.uppercased() != received.method.uppercased() {
            return "expected method \(method)"
        }
        if expected.path != received.path { return "expected path \(expected.path)" }
        for (name, value) in expected.headers ?? [:] where received.headers[name.lowercased()] != value {
            return "expected header \(name): \(value), got \(received.headers[name.lowercased()] ?? "none")"
        }
        if let body = expected.body {
            guard let actual = received.json else { return "expected a JSON body" }
            if let problem = subsetMismatch(body, actual, path: "body") { return problem }
        }
        return nil
    }

    /// Where `actual` does not match `expected` (see ``ModelStubServer/ExpectedRequest``).
    static func subsetMismatch(_ expected: JSONValue, _ actual: JSONValue?, path: String) -> String? {
        if expected == "$any" { return actual == nil ? "\(path) is missing" : nil }
        guard let actual else { return "\(path) is missing" }
        switch expected {
        case .object(let fields):
            if fields.count == 1, let needle = fields["$contains"]?.stringValue {
                return actual.stringValue?.contains(needle) == true
                    ? nil : "\(path) should contain \(needle), got \(actual.canonicalString)"
            }
            guard let object = actual.objectValue else { return "\(path) should be an object" }
            for key in fields.keys.sorted() {
                if let problem = subsetMismatch(fields[key]!, object[key], path: "\(path).\(key)") { return problem }
            }
            return nil
        case .array(let items):
            guard let array = actual.arrayValue else { return "\(path) should be an array" }
            guard array.count == items.count else {
                return "\(path) should have \(items.count) items, got \(array.count): \(actual.canonicalString)"
            }
            for (index, item) in items.enumerated() {
                if let problem = subsetMismatch(item, array[index], path: "\(path)[\(index)]") { return problem }
            }
            return nil
        case .int, .double:
            return expected.doubleValue == actual.doubleValue
                ? nil : "\(path) should be \(expected.canonicalString), got \(actual.canonicalString)"
        default:
            return expected == actual
                ? nil : "\(path) should be \(expected.canonicalString), got \(actual.canonicalString)"
        }
    }
}
