import Foundation

/// One MCP server of the configuration file (`mcp_servers`): a command to spawn and
/// talk to over stdio, or the URL of a Streamable HTTP endpoint. Its tools are named
/// `<name>.<tool>`. See docs/mcp.md.
public struct MCPServerConfig: Sendable, Equatable {
    public enum Endpoint: Sendable, Equatable {
        /// Spawn `argv` (argv[0] is looked up on `PATH` unless it contains a `/`) with
        /// `environment` added to the few variables a child inherits, in
        /// `workingDirectory` (nil: the server's own).
        case command(argv: [String], environment: [String: String], workingDirectory: String?)
        /// POST JSON-RPC messages to `url`, with `headers` on every request.
        case url(String, headers: [String: String])
    }

    public var name: String
    public var endpoint: Endpoint
    /// How long connecting and listing the tools may take before the attempt counts as
    /// failed.
    public var startupTimeout: Duration
    /// How long one `tools/call` may take before it is cancelled and fails.
    public var callTimeout: Duration

    public init(
        name: String, endpoint: Endpoint, startupTimeout: Duration = .seconds(30), callTimeout: Duration = .seconds(300)
    ) {
        self.name = name
        self.endpoint = endpoint
        self.startupTimeout = startupTimeout
        self.callTimeout = callTimeout
    }

    /// Server names are `[a-z0-9_-]+`, so that `<server>.<tool>` is never ambiguous.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty
            && name.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
            }
    }

    /// The variables of the server's environment that a spawned MCP server inherits (the
    /// same list as the MCP Python SDK's): API keys and other secrets of Countersign's
    /// own environment are not passed on unless the configuration names them.
    public static let inheritedEnvironment = [
        "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR",
    ]
}
