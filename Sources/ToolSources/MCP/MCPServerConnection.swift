import AgentRuntime
import Foundation
import GateCore
import Logging
import MCP
import ServiceLifecycle
import Synchronization

/// Waits between attempts to start an MCP server. Tests inject one that returns at once.
public protocol MCPRestartSleeper: Sendable {
    func sleep(for duration: Duration) async throws
}

/// Sleeps with `Task.sleep` (cancellable).
public struct TaskRestartSleeper: MCPRestartSleeper {
    public init() {}
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}

/// Exponential backoff between attempts to (re)start an MCP server: `initialDelay`,
/// doubled after every failed attempt, at most `maxDelay`. A server that stayed up for
/// `stableAfter` starts again from `initialDelay` when it stops.
public struct MCPRestartPolicy: Sendable, Equatable {
    public var initialDelay: Duration
    public var maxDelay: Duration
    public var stableAfter: Duration

    public init(
        initialDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(30),
        stableAfter: Duration = .seconds(60)
    ) {
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.stableAfter = stableAfter
    }

    /// The wait before the next attempt when `failures` attempts in a row have failed
    /// (or the server stopped) so far: 0 → `initialDelay`.
    public func delay(afterFailures failures: Int) -> Duration {
        var delay = initialDelay
        for _ in 0..<min(failures, 62) {
            delay *= 2
            if delay >= maxDelay { return maxDelay }
        }
        return min(delay, maxDelay)
    }
}

/// One configured MCP server, kept connected: it spawns a stdio server (or connects to
/// a Streamable HTTP one), lists its tools, lists them again on
/// `notifications/tools/list_changed`, restarts it with exponential backoff when it
/// stops, and shuts it down cleanly (stdin closed, SIGKILL after a grace period, the
/// child reaped). Its tools are ``MCPTool``s named `<server>.<tool>`.
///
/// As a `ToolProvider` it hands agents its current tools; as a `Service` it runs in the
/// server's service group. ``start()`` makes one attempt, so that the server is
/// connected before Countersign reports ready; ``run()`` supervises until shutdown.
public actor MCPServerConnection: ToolProvider, Service {
    public struct Options: Sendable {
        public var restart: MCPRestartPolicy
        public var sleeper: any MCPRestartSleeper
        /// How long a stdio server may take to exit after its stdin is closed.
        public var stopGrace: Duration
        public var logger: Logger

        public init(
            restart: MCPRestartPolicy = MCPRestartPolicy(), sleeper: any MCPRestartSleeper = TaskRestartSleeper(),
            stopGrace: Duration = .seconds(2), logger: Logger = Logger(label: "countersign.mcp")
        ) {
            self.restart = restart
            self.sleeper = sleeper
            self.stopGrace = stopGrace
            self.logger = logger
        }
    }

    public enum Status: String, Sendable {
        /// Not started, or stopped.
        case stopped
        /// The first attempt is under way.
        case starting
        /// Connected; the tools are listed.
        case running
        /// It stopped or could not be started; the next attempt comes after a backoff.
        case restarting
    }

    public nonisolated let config: MCPServerConfig
    public nonisolated var name: String { config.name }
    private let options: Options
    private let state = Mutex(Observed())
    private var session: Session?
    private var generation = 0
    private var stopping = false
    private var refreshing = false
    private var refreshAgain = false

    private struct Observed {
        var tools: [any AgentRuntime.Tool] = []
        var status: Status = .stopped
        var processID: Int32?
        var sessions = 0
        var lastError: String?
    }

    public init(_ config: MCPServerConfig, options: Options = Options()) {
        self.config = config
        self.options = options
    }

    // MARK: What others see (without waiting for the actor)

    /// The server's tools as of the last listing. While the server restarts they stay
    /// (a call fails with a message saying so); a server that never came up has none.
    public nonisolated var currentTools: [any AgentRuntime.Tool] { state.withLock { $0.tools } }
    public nonisolated var status: Status { state.withLock { $0.status } }
    /// The process id of a running stdio server.
    public nonisolated var processID: Int32? { state.withLock { $0.processID } }
    /// How many times a connection came up (1 after the first start, 2 after a restart …).
    public nonisolated var sessionCount: Int { state.withLock { $0.sessions } }
    /// Why the last attempt failed or the last connection ended.
    public nonisolated var lastError: String? { state.withLock { $0.lastError } }

    // MARK: Lifecycle

    /// One attempt to connect and list the tools, bounded by the startup timeout.
    /// Returns whether the server is up; on failure the reason is logged (a warning) and
    /// kept in ``lastError``, and ``run()`` keeps trying.
    @discardableResult
    public func start() async -> Bool {
        if session != nil { return true }
        stopping = false
        do {
            try await startSession()
            return true
        } catch {
            options.logger.warning(
                "MCP server \(name) could not be started; its tools are unavailable until it is",
                metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Supervises the server until graceful shutdown or cancellation, then stops it.
    public func run() async throws {
        stopping = false
        await cancelWhenGracefulShutdown { await self.supervise() }
        await stop()
    }

    /// Stops the server (and ends ``run()``): closes the connection, stops the child
    /// and waits until it has been reaped. Its tools disappear.
    public func stop() async {
        stopping = true
        if let session { await end(session) }
        state.withLock {
            $0.tools = []
            $0.status = .stopped
            $0.processID = nil
        }
    }

    private func supervise() async {
        var failures = 0
        while !Task.isCancelled, !stopping {
            if session == nil {
                do {
                    try await startSession()
                } catch {
                    if Task.isCancelled || stopping { return }
                    let delay = options.restart.delay(afterFailures: failures)
                    failures += 1
                    options.logger.warning(
                        "MCP server \(name) could not be started; retrying",
                        metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                    do { try await options.sleeper.sleep(for: delay) } catch { return }
                    continue
                }
            }
            guard let current = session else { continue }
            let upSince = ContinuousClock.now
            guard let reason = await current.ended.wait(), !Task.isCancelled, !stopping else { return }
            options.logger.warning("MCP server \(name) stopped; restarting", metadata: ["reason": "\(reason)"])
            state.withLock {
                $0.status = .restarting
                $0.processID = nil
                $0.lastError = reason
            }
            await end(current)
            if ContinuousClock.now - upSince >= options.restart.stableAfter { failures = 0 }
            let delay = options.restart.delay(afterFailures: failures)
            failures += 1
            do { try await options.sleeper.sleep(for: delay) } catch { return }
        }
    }

    // MARK: Sessions

    /// One connection, from spawn/connect to close.
    private final class Session: Sendable {
        let id: Int
        let client: Client
        let child: MCPChildProcess?
        /// Set (with the reason) when the connection is no longer usable.
        let ended: OneShot<String>

        init(id: Int, client: Client, child: MCPChildProcess?, ended: OneShot<String>) {
            self.id = id
            self.client = client
            self.child = child
            self.ended = ended
        }

        /// Disconnects the client (pending calls fail), then stops and reaps the child.
        func close(grace: Duration) async {
            ended.fulfil("closed")
            await client.disconnect()
            await child?.stop(grace: grace)
        }
    }

    private func end(_ ending: Session) async {
        if session?.id == ending.id { session = nil }
        await ending.close(grace: options.stopGrace)
    }

    private func startSession() async throws {
        state.withLock { if $0.sessions == 0 { $0.status = .starting } }
        let ended = OneShot<String>()
        do {
            try await withTaskCancellationHandler {
                try await connect(ended: ended)
            } onCancel: {
                ended.fulfil("Countersign is shutting down")
            }
        } catch {
            let stopping = self.stopping
            state.withLock {
                $0.lastError = "\(error)"
                $0.status = stopping ? .stopped : .restarting
            }
            throw error
        }
    }

    /// Spawns or reaches the server, initialises the MCP session and lists the tools,
    /// within the startup timeout. A child that exits meanwhile fails the attempt at once.
    private func connect(ended: OneShot<String>) async throws {
        generation += 1
        let id = generation
        let logger = options.logger
        let client = Client(name: "countersign", version: "1.0")
        let transport: any Transport
        var child: MCPChildProcess?
        var http: StreamableHTTPTransport?
        switch config.endpoint {
        case .command(let argv, let environment, let workingDirectory):
            let spawned = try MCPChildProcess.launch(
                argv: argv, environment: environment, workingDirectory: workingDirectory, logger: logger)
            child = spawned
            transport = ChildProcessTransport(child: spawned, logger: logger)
            Task {
                if let ending = await spawned.exit.wait() {
                    let output = spawned.recentErrorOutput
                    ended.fulfil("\(ending)" + (output.isEmpty ? "" : ": \(output)"))
                }
            }
        case .url(let url, let headers):
            let reached = StreamableHTTPTransport(
                url: url, headers: headers, requestTimeout: config.callTimeout + .seconds(10), logger: logger)
            transport = reached
            http = reached
            Task {
                if let reason = await reached.closed.wait() { ended.fulfil(reason) }
            }
        }
        let session = Session(id: id, client: client, child: child, ended: ended)
        await client.onNotification(ToolListChangedNotification.self) { [weak self] _ in
            // Not awaited here: the client's read loop delivers the answer to tools/list.
            Task { await self?.toolsChanged(session: id) }
        }
        let timeout = config.startupTimeout
        let watchdog = Task {
            _ = await ended.wait(atMost: timeout)
            if Task.isCancelled { return }
            ended.fulfil("no answer within \(timeout)")
            // The attempt may not have reached `client.connect` yet (a child that exits at
            // once ends it before it starts): a single disconnect would then come first and
            // the handshake would wait for an answer that never comes. Keep disconnecting
            // until the attempt is over (it cancels this task).
            while !Task.isCancelled {
                await client.disconnect()
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        defer { watchdog.cancel() }
        do {
            try await client.connect(transport: transport)
            // A list_changed sent before the server's stream is open would be lost.
            _ = await http?.listening.wait(atMost: .seconds(5))
            let tools = try await listTools(client)
            if let reason = ended.value { throw MCPConnectionError(reason) }
            if stopping { throw MCPConnectionError("stopped while starting") }
            watchdog.cancel()
            if self.session != nil {
                // Another attempt (start() beside the supervisor) came up first.
                await session.close(grace: options.stopGrace)
                return
            }
            self.session = session
            publish(tools)
            state.withLock {
                $0.status = .running
                $0.processID = child?.processID
                $0.sessions += 1
                $0.lastError = nil
            }
            logger.info(
                "MCP server \(name) is up",
                metadata: ["tools": "\(tools.map(\.descriptor.name).joined(separator: ", "))"])
        } catch {
            watchdog.cancel()
            let reason = ended.value ?? "\(error)"
            await session.close(grace: options.stopGrace)
            throw MCPConnectionError("MCP server \(name): \(reason)")
        }
    }

    private func listTools(_ client: Client) async throws -> [MCPTool] {
        var tools: [MCPTool] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try await client.listTools(cursor: cursor)
            tools += page.tools.map { MCPTool($0, server: name, connection: self) }
            cursor = page.nextCursor
            pages += 1
        } while cursor != nil && pages < 100
        return tools
    }

    private func publish(_ tools: [MCPTool]) {
        state.withLock { $0.tools = tools }
    }

    /// `notifications/tools/list_changed`: list again (once more if another change
    /// arrives meanwhile).
    private func toolsChanged(session id: Int) async {
        guard let session, session.id == id else { return }
        if refreshing {
            refreshAgain = true
            return
        }
        refreshing = true
        defer { refreshing = false }
        repeat {
            refreshAgain = false
            do {
                let tools = try await listTools(session.client)
                guard self.session?.id == id else { return }
                publish(tools)
                options.logger.info(
                    "MCP server \(name) changed its tools",
                    metadata: ["tools": "\(tools.map(\.descriptor.name).joined(separator: ", "))"])
            } catch {
                options.logger.warning(
                    "MCP server \(name): listing the changed tools failed", metadata: ["error": "\(error)"])
            }
        } while refreshAgain
    }

    // MARK: Calls

    /// `tools/call`. Failures — the server is down, the call timed out, the server
    /// refused it — are outputs that tell the model what happened, never thrown.
    func call(_ tool: String, arguments: JSONValue, confirmationID: String?) async -> ToolOutput {
        guard let session, session.ended.value == nil else {
            let why = lastError.map { " (\($0))" } ?? ""
            let when = stopping ? "it has been stopped" : "it is restarting"
            return .failure("The MCP server \(name) is not running\(why); \(when), so \(tool) did not run.")
        }
        let arguments = arguments.objectValue?.mapValues(MCP.Value.init) ?? [:]
        let meta = confirmationID.map { Metadata(additionalFields: ["countersign/confirmation_id": .string($0)]) }
        let context: RequestContext<CallTool.Result>
        do {
            context = try await session.client.callTool(name: tool, arguments: arguments, meta: meta)
        } catch {
            return .failure("The MCP server \(name) could not be asked to run \(tool): \(error)")
        }
        let timedOut = OneShot<Bool>()
        let timeout = config.callTimeout
        let client = session.client
        let timer = Task {
            try await Task.sleep(for: timeout)
            timedOut.fulfil(true)
            try? await client.cancelRequest(context.requestID, reason: "Countersign's call timeout passed")
        }
        defer { timer.cancel() }
        do {
            let result = try await context.value
            var output = ToolOutput(mcpContent: result.content, isError: result.isError)
            if let structured = result.structuredContent {
                output.data = JSONValue(structured)
                if output.content.isEmpty { output.content = JSONValue(structured).canonicalString }
            }
            return output
        } catch {
            if timedOut.value != nil {
                return .failure(
                    "The MCP server \(name) did not answer \(tool) within \(timeout); the call was cancelled. It may "
                        + "or may not have taken effect.")
            }
            if let reason = session.ended.value {
                return .failure(
                    "The MCP server \(name) stopped before answering \(tool) (\(reason)); the call may or may not "
                        + "have taken effect.")
            }
            if let error = error as? MCPError {
                return .failure("The MCP server \(name) refused \(tool): \(error.errorDescription ?? "\(error)")")
            }
            return .failure("The MCP server \(name) failed to run \(tool): \(error)")
        }
    }
}
