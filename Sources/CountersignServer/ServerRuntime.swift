import AgentRuntime
import Foundation
import GateCore
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Storage
import ToolSources

/// The parts of a running Countersign: store, engine, notifier. `open` prepares them
/// (migrations, first-start bootstrap, crash recovery); `application` wires the HTTP
/// app over them. `main` and the tests use the same two calls.
public struct ServerRuntime: Sendable {
    public let configuration: ServerConfiguration
    public let store: any Store
    public let engine: RunEngine
    /// The admin key created on first start with an empty database, shown once.
    public let bootstrapKey: String?
    public let bootstrapKeyFile: String?
    /// Runs that were running when the previous process stopped, now driven again.
    public let recovered: [RunHandle]

    public static func open(_ configuration: ServerConfiguration, logger: Logger = Logger(label: "countersign"))
        async throws -> ServerRuntime
    {
        let store: any Store
        switch try configuration.database() {
        case .sqlite(let path):
            let url = URL(fileURLWithPath: path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            store = try SQLiteStore(path: path)
        case .postgres:
            throw CountersignError(
                .unavailable, "The PostgreSQL store is not available in this build yet; use sqlite:PATH.")
        }
        try await store.migrate()
        await startMCPServers(configuration.mcpServers)
        let clock = configuration.clock
        var agents = [DemoAgent.make()]
        agents.append(contentsOf: configuration.agents)
        let dataDirectory = try configuration.resolvedDataDirectory()
        var engineConfiguration = RunEngine.Configuration(
            confirmationTTL: configuration.confirmationTTL,
            maxPendingConfirmations: configuration.maxPendingConfirmationsPerSession,
            workspaceRoot: dataDirectory.appendingPathComponent("workspaces", isDirectory: true))
        engineConfiguration.failpoints = configuration.failpoints
        let engine = RunEngine(
            store: store, agents: AgentRegistry(agents), clock: clock, configuration: engineConfiguration,
            logger: logger)
        let (key, keyFile) = try await bootstrap(store: store, configuration: configuration, now: clock.now())
        let recovered = try await engine.recover()
        return ServerRuntime(
            configuration: configuration, store: store, engine: engine, bootstrapKey: key,
            bootstrapKeyFile: keyFile, recovered: recovered)
    }

    /// Connects every MCP server and lists its tools (in parallel, each within its
    /// startup timeout) before the server listens and before interrupted runs resume. A
    /// server that cannot be started is logged as a warning; the application's
    /// supervisor keeps trying, and its tools are absent until it comes up.
    static func startMCPServers(_ servers: [MCPServerConnection]) async {
        await withTaskGroup(of: Void.self) { group in
            for server in servers { group.addTask { await server.start() } }
        }
    }

    /// On first start with an empty database: namespace `default` and one admin key,
    /// written to a 0600 file beside the database.
    static func bootstrap(store: any Store, configuration: ServerConfiguration, now: Date) async throws
        -> (String?, String?)
    {
        let namespace = Namespace(id: Identifier.make("ns", length: 16), name: "default", createdAt: now)
        let issued = APIKeys.issue(namespaceID: namespace.id, actor: "admin", role: .admin, now: now)
        guard try await store.bootstrapIfEmpty(namespace: namespace, key: issued.record) else { return (nil, nil) }
        let path = try configuration.resolvedAdminKeyFile()
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(
            atPath: path, contents: Data((issued.key + "\n").utf8), attributes: [.posixPermissions: 0o600])
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        return (issued.key, path)
    }

    public func router() -> Router<AppRequestContext> {
        let router = Router(context: AppRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        let access = AccessControl(store: store)
        let stream = EventStream(
            store: store, notifier: engine.notifier, heartbeat: configuration.heartbeat,
            quota: StreamQuota(maxPerKey: configuration.maxStreamsPerKey), clock: configuration.clock)
        HealthController(store: store, engine: engine).register(on: router)
        let v1 = router.group("v1")
            .add(middleware: AuthMiddleware(store: store, clock: configuration.clock))
            .add(
                middleware: RateLimitMiddleware(
                    perKey: RateLimiter(perMinute: configuration.keyRequestsPerMinute, clock: configuration.clock),
                    perSession: RateLimiter(
                        perMinute: configuration.sessionRequestsPerMinute, clock: configuration.clock)))
        SessionsController(engine: engine, access: access, stream: stream, configuration: configuration)
            .register(on: v1)
        ConfirmationsController(engine: engine, access: access, stream: stream, configuration: configuration)
            .register(on: v1)
        PolicyController(engine: engine, access: access, configuration: configuration).register(on: v1)
        AdminController(
            store: store, access: access, clock: configuration.clock, configuration: configuration,
            notifier: engine.notifier
        )
        .register(on: v1)
        CompatDoors(store: store, engine: engine, access: access, configuration: configuration)
            .register(on: router, v1: v1)
        return router
    }

    /// The HTTP application with the expiry sweeper and the engine's drain on shutdown,
    /// and the MCP servers' supervisors (shut down after the sweeper drained the runs).
    public func application(
        logger: Logger = Logger(label: "countersign"),
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port), serverName: "countersign"),
            services: configuration.mcpServers.map { $0 as any Service }
                + [ExpirySweeper(engine: engine, interval: configuration.sweepInterval, logger: logger)],
            onServerRunning: { [engine] channel in
                if let port = channel.localAddress?.port { engine.addServerPort(port) }
                await onServerRunning(channel)
            }, logger: logger)
    }
}

/// Expires due confirmations in the background. Expiry is also enforced at decision
/// time by the store's clock check, so the sweeper only makes expiry visible sooner.
struct ExpirySweeper: Service {
    let engine: RunEngine
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await engine.expireDue()
                } catch {
                    logger.warning("expiry sweep failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
        await engine.drain()
    }
}

/// `buildApplication(configuration)` of the Hummingbird templates.
public func buildApplication(_ configuration: ServerConfiguration) async throws -> some ApplicationProtocol {
    try await ServerRuntime.open(configuration).application()
}
