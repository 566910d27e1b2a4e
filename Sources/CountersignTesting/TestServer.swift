import AgentRuntime
import AsyncHTTPClient
import CountersignClient
import CountersignServer
import Foundation
import GateCore
import Hummingbird
import Logging
import ServiceLifecycle

/// A real Countersign server on a free loopback port with its own temporary data
/// directory and SQLite file, for tests: the same `ServerRuntime` and application as
/// `countersign serve`, with an injectable clock and agents.
public struct TestServer: Sendable {
    public let runtime: ServerRuntime
    public let port: Int
    public let adminKey: String
    public let directory: URL

    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public var engine: RunEngine { runtime.engine }
    public var store: any Store { runtime.store }

    /// A client authenticated with the bootstrap admin key (or another key).
    public func client(key: String? = nil, namespace: String? = nil) -> CountersignClient {
        CountersignClient(baseURL: baseURL, apiKey: key ?? adminKey, namespace: namespace)
    }

    public func workspace(of sessionID: String) -> URL { engine.workspace(of: sessionID) }

    /// Reads a file of a session's workspace, nil when it does not exist.
    public func file(_ path: String, in sessionID: String) -> String? {
        FileManager.default.contents(atPath: workspace(of: sessionID).appendingPathComponent(path).path)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// Creates a key directly in the store and returns it.
    public func makeKey(actor: String, role: Role, namespace: String = "default") async throws -> String {
        guard let namespace = try await store.namespace(idOrName: namespace) else {
            throw CountersignError.notFound("Namespace")
        }
        let issued = APIKeys.issue(
            namespaceID: namespace.id, actor: actor, role: role, now: runtime.configuration.clock.now())
        try await store.createKey(
            issued.record,
            audit: AuditDraft(
                namespaceID: namespace.id, actor: "test", action: "key.created", subject: issued.record.prefix))
        return issued.key
    }

    /// Runs `body` against a fresh server and shuts it down afterwards.
    public static func with<T: Sendable>(
        clock: any WallClock = SystemClock(), agents: [Agent] = [], confirmationTTL: TimeInterval = 300,
        heartbeat: Duration = .seconds(15), configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (TestServer) async throws -> T
    ) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "countersign-test-\(Identifier.make("t", length: 12))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.databaseURL = "sqlite:\(directory.path)/countersign.db"
        configuration.clock = clock
        configuration.agents = agents
        configuration.confirmationTTL = confirmationTTL
        configuration.heartbeat = heartbeat
        configure(&configuration)
        var logger = Logger(label: "countersign.test")
        logger.logLevel = ProcessInfo.processInfo.environment["COUNTERSIGN_TEST_LOG"] == nil ? .critical : .debug
        let runtime = try await ServerRuntime.open(configuration, logger: logger)
        guard let adminKey = runtime.bootstrapKey else { throw CountersignError(.internal, "no bootstrap key") }
        return try await serve(runtime, logger: logger) { port in
            try await body(TestServer(runtime: runtime, port: port, adminKey: adminKey, directory: directory))
        }
    }

    /// Serves `runtime`'s application on a free loopback port while `body` runs with
    /// that port, then shuts it down (graceful shutdown, runs drained) either way.
    public static func serve<T: Sendable>(
        _ runtime: ServerRuntime, logger: Logger, _ body: @Sendable (Int) async throws -> T
    ) async throws -> T {
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = runtime.application(logger: logger) { channel in
            portContinuation.yield(channel.localAddress?.port ?? 0)
            portContinuation.finish()
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CountersignError(.internal, "server did not start") }
            do {
                let result = try await body(port)
                await group.triggerGracefulShutdown()
                tasks.cancelAll()
                await runtime.engine.drain()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                tasks.cancelAll()
                await runtime.engine.drain()
                throw error
            }
        }
    }
}
