import AgentRuntime
import CountersignClient
import CountersignServer
import CountersignTesting
import Foundation
import GateCore
import Hummingbird
import Logging
import ServiceLifecycle
import Testing

/// A client that sends no API key, for doors that authenticate otherwise (or not at all).
func anonymousClient(_ server: TestServer) -> CountersignClient {
    CountersignClient(baseURL: server.baseURL, apiKey: nil)
}

/// The events of a complete `text/event-stream` body (the doors' POST streams end when
/// the run stops, so the whole body is the stream).
func sseEvents(_ response: CountersignClient.RawResponse) -> [ServerSentEvent] {
    var parser = SSEParser()
    return parser.feed(response.body)
}

extension ServerSentEvent {
    var json: JSONValue { (try? JSONValue.parse(data)) ?? .null }
}

/// Creates namespace `name` and returns an admin key of it.
func otherNamespaceKey(_ server: TestServer, name: String = "elsewhere") async throws -> String {
    let now = server.runtime.configuration.clock.now()
    let namespace = Namespace(id: Identifier.make("ns", length: 16), name: name, createdAt: now)
    try await server.store.createNamespace(
        namespace,
        audit: AuditDraft(namespaceID: namespace.id, actor: "test", action: "namespace.created", subject: namespace.id))
    return try await server.makeKey(actor: "mallory", role: .admin, namespace: name)
}

/// The bootstrap namespace's id.
func defaultNamespaceID(_ server: TestServer) async throws -> String {
    try #require(try await server.store.namespace(idOrName: "default")).id
}

/// A server on an existing database (no bootstrap key), for tests that restart with
/// another configuration. Same wiring as `TestServer`.
func withServer<T: Sendable>(
    _ configuration: ServerConfiguration, _ body: @Sendable (ServerRuntime, String) async throws -> T
) async throws -> T {
    var logger = Logger(label: "countersign.compat-test")
    logger.logLevel = .critical
    let runtime = try await ServerRuntime.open(configuration, logger: logger)
    return try await TestServer.serve(runtime, logger: logger) { port in
        try await body(runtime, "http://127.0.0.1:\(port)")
    }
}

/// The tests of the seed wire formats (`swift test --filter Compat`).
enum Compat {}
