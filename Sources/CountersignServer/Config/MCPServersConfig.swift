import AgentRuntime
import Foundation
import GateCore
import ToolSources

/// `mcp_servers` of the configuration file (docs/mcp.md).
extension Reader {
    static let mcpServerKeys = [
        "name", "command", "env", "pass_env", "cwd", "url", "headers", "headers_env", "startup_timeout", "call_timeout",
    ]

    /// `mcp_servers`: `{name, command: [argv…], env?, pass_env?, cwd?}` or
    /// `{name, url, headers?, headers_env?}`, each with optional `startup_timeout` and
    /// `call_timeout`. See docs/mcp.md.
    func readMCPServers(_ node: ConfigNode) throws -> [MCPServerConnection] {
        var servers: [MCPServerConnection] = []
        var names: [String: String] = [:]
        for item in try node.list() {
            let fields = try item.fields(Self.mcpServerKeys)
            guard let nameNode = fields["name"] else { throw item.error("missing key 'name'") }
            let name = try nameNode.nonEmptyString()
            guard MCPServerConfig.isValidName(name) else {
                throw nameNode.error("'\(name)' is not a valid MCP server name (lowercase letters, digits, '_', '-')")
            }
            if let first = names[name] {
                throw nameNode.error("duplicate MCP server name '\(name)' (first defined at \(first))")
            }
            names[name] = item.path
            let endpoint: MCPServerConfig.Endpoint
            switch (fields["command"], fields["url"]) {
            case (let command?, nil):
                for key in ["headers", "headers_env"] {
                    if let other = fields[key] { throw other.error("only for a server given by url") }
                }
                let argv = try command.list().map { try $0.nonEmptyString() }
                guard !argv.isEmpty else { throw command.error("the command must not be empty") }
                var environment: [String: String] = [:]
                if let env = fields["env"] {
                    for (key, value) in try env.mapping() { environment[key] = try value.string() }
                }
                if let pass = fields["pass_env"] {
                    for variable in try pass.list() {
                        let key = try variable.nonEmptyString()
                        guard let value = self.environment[key] else {
                            throw variable.error("the environment variable \(key) is not set")
                        }
                        environment[key] = value
                    }
                }
                let directory = try fields["cwd"].map { try $0.nonEmptyString() }
                endpoint = .command(argv: argv, environment: environment, workingDirectory: directory)
            case (nil, let urlNode?):
                for key in ["env", "pass_env", "cwd"] {
                    if let other = fields[key] { throw other.error("only for a server given by command") }
                }
                let url = try urlNode.nonEmptyString()
                guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
                    scheme == "http" || scheme == "https", parsed.host?.isEmpty == false
                else { throw urlNode.error("'\(url)' is not an http:// or https:// URL") }
                var headers: [String: String] = [:]
                if let node = fields["headers"] {
                    for (key, value) in try node.mapping() { headers[key] = try value.string() }
                }
                if let node = fields["headers_env"] {
                    for (key, variableNode) in try node.mapping() {
                        let variable = try variableNode.nonEmptyString()
                        guard let value = environment[variable], !value.isEmpty else {
                            throw variableNode.error("the environment variable \(variable) is not set or empty")
                        }
                        headers[key] = value
                    }
                }
                endpoint = .url(url, headers: headers)
            case (nil, nil):
                throw item.error("an MCP server needs either 'command' (stdio) or 'url' (Streamable HTTP)")
            case (_?, let urlNode?):
                throw urlNode.error("give either 'command' or 'url', not both")
            }
            var config = MCPServerConfig(name: name, endpoint: endpoint)
            if let node = fields["startup_timeout"] { config.startupTimeout = .seconds(try node.seconds()) }
            if let node = fields["call_timeout"] { config.callTimeout = .seconds(try node.seconds()) }
            servers.append(MCPServerConnection(config, options: options.mcp))
        }
        return servers
    }

    /// The MCP server whose tools an agent's `tools` entry names (`git.*`, `git.git_status`).
    func mcpServer(for entry: String) -> MCPServerConnection? {
        mcpServers.first { entry.hasPrefix("\($0.name).") }
    }
}
