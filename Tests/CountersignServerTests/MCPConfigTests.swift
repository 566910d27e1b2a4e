import AgentRuntime
import CountersignClient
import CountersignServer
import CountersignTesting
import Foundation
import GateCore
import Testing
import ToolSources

/// `mcp_servers` in the configuration file, and MCP servers under `countersign serve`.
@Suite struct MCPConfigTests {
    @Test func serversAndTheAgentsThatUseThem() throws {
        let config = try loadConfig(
            """
            mcp_servers:
              - name: git
                command: [python3, -m, mcp_server_git, --repository, ./repo]
                env: {GIT_AUTHOR_NAME: Countersign}
                pass_env: [TEST_MCP_TOKEN]
                cwd: /tmp
                startup_timeout: 5s
                call_timeout: 1m
              - {name: tickets, url: "http://127.0.0.1:9000/mcp", headers: {X-Team: support},
                 headers_env: {Authorization: TEST_MCP_TOKEN}}
            agents:
              - name: both
                model: demo
                tools: [read_file, git.*, tickets.create_ticket, "*_file"]
                policy:
                  git.git_reset: {remember: session}
                  tickets.create_ticket: auto
                  rules:
                    - {tool: git.git_commit, when: {message: {prefix: "wip"}}, policy: deny}
            """,
            environment: ["TEST_MCP_TOKEN": "secret"])
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        let git = try #require(config.mcpServers.first)
        #expect(
            git.config
                == MCPServerConfig(
                    name: "git",
                    endpoint: .command(
                        argv: ["python3", "-m", "mcp_server_git", "--repository", "./repo"],
                        environment: ["GIT_AUTHOR_NAME": "Countersign", "TEST_MCP_TOKEN": "secret"],
                        workingDirectory: "/tmp"),
                    startupTimeout: .seconds(5), callTimeout: .seconds(60)))
        #expect(
            config.mcpServers.last?.config.endpoint
                == .url("http://127.0.0.1:9000/mcp", headers: ["X-Team": "support", "Authorization": "secret"]))
        let agent = try #require(config.agents.first)
        #expect(agent.providedTools.map(\.patterns) == [["git.*"], ["tickets.create_ticket"]])
        #expect(agent.providedTools.first?.provider as? MCPServerConnection === git)
        #expect(agent.policy.destructiveGrantsAllowed == ["git.git_reset"])
        #expect(agent.policy.tools == ["tickets.create_ticket": .auto])
        #expect(agent.policy.rules.map(\.tool) == ["git.git_commit"])
        // Not started: no tools yet, and the agent has only its built-in ones.
        #expect(git.status == .stopped)
        #expect(agent.availableTools.map(\.descriptor.name).sorted() == agent.tools.map(\.descriptor.name).sorted())
    }

    static let errorCases: [(String, String)] = [
        (
            "mcp_servers:\n  - {name: Git, command: [x]}\n",
            ":2:12: mcp_servers[0].name: 'Git' is not a valid MCP server name"
        ),
        ("mcp_servers:\n  - {name: g.h, command: [x]}\n", "mcp_servers[0].name: 'g.h' is not a valid MCP server name"),
        ("mcp_servers:\n  - {command: [x]}\n", ":2:5: mcp_servers[0]: missing key 'name'"),
        (
            "mcp_servers:\n  - {name: g}\n",
            "mcp_servers[0]: an MCP server needs either 'command' (stdio) or 'url' (Streamable HTTP)"
        ),
        (
            "mcp_servers:\n  - {name: g, command: [x], url: \"http://x/mcp\"}\n",
            "mcp_servers[0].url: give either 'command' or 'url', not both"
        ),
        ("mcp_servers:\n  - {name: g, command: []}\n", "mcp_servers[0].command: the command must not be empty"),
        (
            "mcp_servers:\n  - {name: g, command: [x], headers: {A: b}}\n",
            "mcp_servers[0].headers: only for a server given by url"
        ),
        (
            "mcp_servers:\n  - {name: g, url: \"http://x/mcp\", cwd: /tmp}\n",
            "mcp_servers[0].cwd: only for a server given by command"
        ),
        ("mcp_servers:\n  - {name: g, url: \"ftp://x/mcp\"}\n", "mcp_servers[0].url: 'ftp://x/mcp' is not an http://"),
        (
            "mcp_servers:\n  - {name: g, command: [x], pass_env: [COUNTERSIGN_TEST_UNSET]}\n",
            "mcp_servers[0].pass_env[0]: the environment variable COUNTERSIGN_TEST_UNSET is not set"
        ),
        (
            "mcp_servers:\n  - {name: g, url: \"http://x/mcp\", headers_env: {Authorization: COUNTERSIGN_TEST_UNSET}}\n",
            "mcp_servers[0].headers_env.Authorization: the environment variable COUNTERSIGN_TEST_UNSET is not set"
        ),
        (
            "mcp_servers:\n  - {name: g, command: [x]}\n  - {name: g, command: [y]}\n",
            "mcp_servers[1].name: duplicate MCP server name 'g' (first defined at mcp_servers[0])"
        ),
        ("mcp_servers:\n  - {name: g, comand: [x]}\n", "unknown key 'comand' — did you mean 'command'?"),
        (
            "mcp_servers:\n  - {name: g, command: [x], call_timeout: 0}\n",
            "mcp_servers[0].call_timeout: must be greater"
        ),
        // Without a server of that name, `git.…` is an ordinary (unknown) tool.
        (
            "agents:\n  - name: w\n    model: demo\n    tools: [git.git_status]\n",
            "agents[0].tools[0]: unknown tool 'git.git_status'"
        ),
        (
            "mcp_servers:\n  - {name: git, command: [x]}\nagents:\n  - name: w\n    model: demo\n    tools: [git.*]\n"
                + "    policy: {tickets.create_ticket: auto}\n",
            "agents[0].policy[\"tickets.create_ticket\"]: 'tickets.create_ticket' is not one of this agent's tools (git.*)"
        ),
    ]

    @Test(arguments: errorCases)
    func errorsNameTheFileThePathAndTheProblem(yaml: String, expected: String) throws {
        try expectConfigError(yaml, contains: expected)
    }

    @Test func aPatternOfAnUnknownServerStillWarns() throws {
        let config = try loadConfig(
            "mcp_servers:\n  - {name: git, command: [x]}\nagents:\n  - name: w\n    model: demo\n"
                + "    tools: [git.*, jira.*]\n")
        #expect(config.warnings.count == 1)
        #expect(
            config.warnings.first?.contains("agents[0].tools[1]: 'jira.*' matches no built-in or webhook tool") == true)
        #expect(config.agents.first?.providedTools.map(\.patterns) == [["git.*"]])
    }
}

/// `countersign serve --config` with an MCP server: it is up before the server listens,
/// and SIGTERM (graceful shutdown) stops it.
@Suite struct MCPServeTests {
    init() throws { try MCPFixtures.requirePythonPackages() }

    /// The children of a process, from /proc.
    static func children(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == parent ? pid : nil
        }
    }

    @Test func serveStartsAndStopsTheServersOfItsConfig() async throws {
        let directory = try TemporaryDirectory.create("countersign-mcp-serve")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("countersign.yaml").path
        try Data(
            """
            mcp_servers:
              - {name: time, command: [python3, -m, mcp_server_time]}
            agents:
              - name: clock
                model: demo
                tools: [time.*]
            """.utf8
        ).write(to: URL(fileURLWithPath: path))
        let server = try await ServerProcess.launch(
            database: directory.appendingPathComponent("c.db").path, extra: ["--config", path])
        defer { server.kill() }
        let children = Self.children(of: server.process.processIdentifier)
        let time = children.filter { pid in
            let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return command.contains("mcp_server_time")
        }
        #expect(time.count == 1, "the MCP server runs when serve listens (children: \(children))")
        server.terminate()
        #expect(server.process.terminationReason == .exit, "graceful shutdown, not the watchdog's SIGKILL")
        for pid in time { #expect(!MCPFixtures.processExists(pid), "serve stopped its MCP server") }
    }
}
