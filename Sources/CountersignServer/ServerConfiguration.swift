import AgentRuntime
import Foundation
import GateCore
import ToolSources

/// Everything `countersign serve` can be told, with the defaults of SPEC §8.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (tests); the bound port is reported by `onServerRunning`.
    public var port: Int = 8080
    /// `sqlite:PATH` or `postgres://…`.
    public var databaseURL: String = "sqlite:./countersign.db"
    /// Where session workspaces live. Nil: `countersign-data/` beside the database.
    public var dataDirectory: String?
    public var confirmationTTL: TimeInterval = 300
    /// SSE heartbeat interval (SPEC: at least every 15 s).
    public var heartbeat: Duration = .seconds(15)
    /// How often the expiry sweeper looks for due confirmations.
    public var sweepInterval: Duration = .seconds(1)
    /// Largest request body accepted (413 beyond).
    public var maxBodyBytes: Int = 1 << 20
    /// Longest user message accepted, in characters.
    public var maxMessageCharacters: Int = 32_000
    /// Requests per minute per API key on `/v1` (0: unlimited).
    public var keyRequestsPerMinute: Int = 600
    /// Requests per minute per session on `/v1/sessions/{id}/…` (0: unlimited).
    public var sessionRequestsPerMinute: Int = 60
    /// Event streams one API key may hold open at once.
    public var maxStreamsPerKey: Int = 32
    /// Confirmations one model step may ask for; calls beyond are refused (blocked).
    public var maxPendingConfirmationsPerSession: Int = 32
    /// Crash points for the crash harness (`COUNTERSIGN_FAILPOINTS`); none by default.
    public var failpoints: Failpoints = .none
    /// Agents beside the built-in `demo`.
    public var agents: [Agent] = []
    /// MCP servers (`mcp_servers` of the configuration file): `ServerRuntime.open`
    /// connects them before the server listens, the application supervises them and
    /// stops them on shutdown. The agents hold them as tool providers.
    public var mcpServers: [MCPServerConnection] = []
    public var clock: any WallClock = SystemClock()
    /// Write the bootstrap admin key to this file (0600). Nil: `<database>.admin-key`.
    public var adminKeyFile: String?
    /// The agent of sessions created through a seed wire format (SPEC §7, docs/compat.md)
    /// when the request names none.
    public var compatAgent: String = "demo"
    /// Chat API (seed 001): requests per minute per cookie session; 0 turns the limit off.
    public var chatRateLimitPerMinute: Int = 60
    /// Chat API (seed 001): how long a `session_id` cookie is valid.
    public var chatCookieTTL: TimeInterval = 86_400

    public init() {}

    public enum Database: Equatable, Sendable {
        case sqlite(path: String)
        case postgres(url: String)
    }

    public func database() throws -> Database {
        if databaseURL.hasPrefix("sqlite:") {
            var path = String(databaseURL.dropFirst("sqlite:".count))
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else { throw CountersignError.validation("The sqlite: URL has no path.") }
            return .sqlite(path: path)
        }
        if databaseURL.hasPrefix("postgres://") || databaseURL.hasPrefix("postgresql://") {
            return .postgres(url: databaseURL)
        }
        throw CountersignError.validation(
            "Unsupported database URL '\(databaseURL)': use sqlite:PATH or postgres://user:pass@host:port/db.")
    }

    /// The resolved data directory.
    public func resolvedDataDirectory() throws -> URL {
        if let dataDirectory { return URL(fileURLWithPath: dataDirectory, isDirectory: true) }
        switch try database() {
        case .sqlite(let path):
            return URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(
                "countersign-data", isDirectory: true)
        case .postgres:
            return URL(fileURLWithPath: "countersign-data", isDirectory: true)
        }
    }

    public func resolvedAdminKeyFile() throws -> String {
        if let adminKeyFile { return adminKeyFile }
        switch try database() {
        case .sqlite(let path): return path + ".admin-key"
        case .postgres: return try resolvedDataDirectory().appendingPathComponent("admin.key").path
        }
    }
}
