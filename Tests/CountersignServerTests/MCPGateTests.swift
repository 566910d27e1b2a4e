import AgentRuntime
import CountersignClient
import CountersignServer
import CountersignTesting
import Foundation
import GateCore
import Testing
import ToolSources

/// MCP tools end to end through the gate, over real HTTP: agents from a configuration
/// file with `mcp_servers`, real MCP servers from PyPI and Tests/mcp, and a scripted
/// model in place of the configured one.
@Suite(.serialized) struct MCPGateTests {
    static let ticketsScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("mcp/tickets_server.py")

    init() throws { try MCPFixtures.requirePythonPackages() }

    /// A step that asks for one call, after checking the last tool result.
    static func call(_ name: String, _ arguments: JSONValue, afterResultContaining needle: String? = nil)
        -> ScriptedModel.Step
    {
        var check: (@Sendable (ModelRequest) throws -> Void)?
        if let needle {
            check = { request in
                guard case .tool(_, _, let content) = request.messages.last, content.contains(needle) else {
                    throw ScriptedModel.ScriptError.unexpectedRequest("expected a tool result containing \(needle)")
                }
            }
        }
        return ScriptedModel.Step(
            check: check,
            ModelResponse(text: "", toolCalls: [ModelToolCall(id: "call_\(name)", name: name, arguments: arguments)]))
    }

    /// An agent of the file, with the scripted model in place of the configured one.
    static func agent(_ name: String, in config: AgentConfig, model: ScriptedModel) throws -> Agent {
        var agent = try #require(config.agents.first { $0.name == name })
        agent.model = model
        return agent
    }

    @Test func gitThroughTheGate() async throws {
        let repository = try MCPFixtures.gitRepository()
        defer { try? FileManager.default.removeItem(at: repository) }
        try Data("buy milk\n".utf8).write(to: repository.appendingPathComponent("notes.txt"))
        try MCPFixtures.git(["add", "notes.txt"], in: repository)
        let repo: JSONValue = .string(repository.path)
        let config = try loadConfig(
            """
            mcp_servers:
              - {name: git, command: [python3, -m, mcp_server_git, --repository, "\(repository.path)"]}
            agents:
              - name: gitter
                model: demo
                tools: [read_file, git.*]
              - name: trusting
                model: demo
                tools: [git.git_status, git.git_reset]
                policy:
                  git.git_reset: {remember: session}
            """)
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        let git = try #require(config.mcpServers.first)
        let model = ScriptedModel([
            Self.call("git.git_status", ["repo_path": repo]),
            Self.call(
                "git.git_commit", ["repo_path": repo, "message": "Add notes"], afterResultContaining: "notes.txt"),
            .reply("Committed.", expectLastToolResultContains: "Changes committed successfully"),
            Self.call("git.git_reset", ["repo_path": repo]),
            .reply("Unstaged.", expectLastToolResultContains: "All staged changes reset"),
            // The trusting agent: remember: session is allowed for its git_reset.
            Self.call("git.git_reset", ["repo_path": repo]),
            .reply("Unstaged.", expectLastToolResultContains: "All staged changes reset"),
            Self.call("git.git_reset", ["repo_path": repo]),
            .reply("Unstaged again.", expectLastToolResultContains: "All staged changes reset"),
        ])
        let gitter = try Self.agent("gitter", in: config, model: model)
        let trusting = try Self.agent("trusting", in: config, model: model)
        let pid: Int32 = try await TestServer.with(agents: [gitter, trusting], configure: { $0.mcpServers = [git] }) {
            server in
            #expect(git.status == .running, "started before the server listens: \(git.lastError ?? "")")
            let available = Set(gitter.availableTools.map(\.descriptor.name))
            #expect(available.isSuperset(of: ["read_file", "git.git_status", "git.git_commit", "git.git_reset"]))
            #expect(!available.contains("write_file"))
            #expect(trusting.availableTools.map(\.descriptor.name).sorted() == ["git.git_reset", "git.git_status"])

            let client = server.client()
            let session = try await client.createSession(agent: "gitter")["id"]!.string
            // git_status is read-only: it runs at once; git_commit waits for a person.
            let reply = try await client.send(sessionID: session, content: "Commit my notes")
            #expect(reply["status"]?.string == "awaiting_confirmation", "\(reply)")
            let pending = try #require(reply["pending_confirmations"]?.arrayValue)
            #expect(pending.count == 1)
            let commit = try #require(pending.first)
            #expect(commit["tool_name"]?.string == "git.git_commit")
            #expect(commit["tool_key"]?.string == "mcp.git.git_commit")
            #expect(commit["policy"]?.string == "always")
            #expect(commit["params"] == ["repo_path": repo, "message": "Add notes"])
            #expect(try MCPFixtures.git(["log", "--format=%s"], in: repository) == "first\n")
            let events = try await client.events(sessionID: session)
            let results = events.filter { $0["type"]?.string == "tool.result" }
            #expect(results.count == 1, "git_status ran without a confirmation")
            #expect(results.first?["data"]?["content"]?.stringValue?.contains("notes.txt") == true, "\(results)")
            #expect(events.filter { $0["type"]?.string == "confirmation.required" }.count == 1)

            let decided = try await client.decide(commit["id"]!.string, approve: true)
            #expect(decided["run"]?["status"]?.string == "completed", "\(decided)")
            #expect(decided["run"]?["reply"]?.string == "Committed.")
            #expect(try MCPFixtures.git(["log", "--format=%s"], in: repository) == "Add notes\nfirst\n")
            #expect(try await client.confirmation(commit["id"]!.string)["status"]?.string == "succeeded")

            // git_reset is destructive: it asks, and its approval is not remembered.
            try Data("later\n".utf8).write(to: repository.appendingPathComponent("later.txt"))
            try MCPFixtures.git(["add", "later.txt"], in: repository)
            let second = try await client.send(sessionID: session, content: "Unstage everything")
            let reset = try #require(second["pending_confirmations"]?.arrayValue?.first)
            #expect(reset["tool_name"]?.string == "git.git_reset")
            #expect(reset["tool_key"]?.string == "mcp.git.git_reset")
            await #expect {
                _ = try await client.decide(reset["id"]!.string, approve: true, rememberForSession: true)
            } throws: { error in
                (error as? CountersignClient.APIError)?.status == 400
            }
            #expect(try MCPFixtures.git(["diff", "--cached", "--name-only"], in: repository) == "later.txt\n")
            let unstaged = try await client.decide(reset["id"]!.string, approve: true)
            #expect(unstaged["run"]?["reply"]?.string == "Unstaged.", "\(unstaged)")
            #expect(try MCPFixtures.git(["diff", "--cached", "--name-only"], in: repository) == "")

            // Unless the agent config allows it.
            try MCPFixtures.git(["add", "later.txt"], in: repository)
            let trustingSession = try await client.createSession(agent: "trusting")["id"]!.string
            let asked = try await client.send(sessionID: trustingSession, content: "Unstage everything")
            let trustedReset = try #require(asked["pending_confirmations"]?.arrayValue?.first)
            let remembered = try await client.decide(
                trustedReset["id"]!.string, approve: true, rememberForSession: true)
            #expect(remembered["run"]?["reply"]?.string == "Unstaged.", "\(remembered)")
            try MCPFixtures.git(["add", "later.txt"], in: repository)
            let granted = try await client.send(sessionID: trustingSession, content: "And again")
            #expect(granted["status"]?.string == "completed", "the grant lets it run: \(granted)")
            #expect(granted["reply"]?.string == "Unstaged again.")
            #expect(try MCPFixtures.git(["diff", "--cached", "--name-only"], in: repository) == "")
            try model.assertConsumed()
            return try #require(git.processID)
        }
        #expect(git.status == .stopped)
        #expect(!MCPFixtures.processExists(pid), "the server's shutdown stopped and reaped mcp-server-git")
    }

    @Test func streamableHTTPServerThroughTheGate() async throws {
        let tickets = try await MCPHTTPServerProcess.launch(script: Self.ticketsScript)
        defer { tickets.kill() }
        let config = try loadConfig(
            """
            mcp_servers:
              - {name: tickets, url: "\(tickets.url)", headers: {X-Team: support}}
            agents:
              - name: helpdesk
                model: demo
                tools: [tickets.*]
            """)
        let server = try #require(config.mcpServers.first)
        let model = ScriptedModel([
            Self.call("tickets.create_ticket", ["title": "Printer on fire"]),
            .reply("Opened.", expectLastToolResultContains: "created ticket #1: Printer on fire"),
            Self.call("tickets.list_tickets", [:]),
            .reply("Listed.", expectLastToolResultContains: "#1: Printer on fire (conf_"),
            Self.call("tickets.enable_reports", [:]),
            .reply("Enabled.", expectLastToolResultContains: "reports enabled"),
        ])
        let agent = try Self.agent("helpdesk", in: config, model: model)
        try await TestServer.with(agents: [agent], configure: { $0.mcpServers = [server] }) { testServer in
            let client = testServer.client()
            let session = try await client.createSession(agent: "helpdesk")["id"]!.string
            let reply = try await client.send(sessionID: session, content: "Open a ticket: printer on fire")
            let pending = try #require(reply["pending_confirmations"]?.arrayValue?.first, "\(reply)")
            #expect(pending["tool_name"]?.string == "tickets.create_ticket")
            #expect(pending["tool_key"]?.string == "mcp.tickets.create_ticket")
            let before = try await tool(agent, "tickets.list_tickets").run([:], context: testContext())
            #expect(before.content == "no tickets")
            let decided = try await client.decide(pending["id"]!.string, approve: true)
            #expect(decided["run"]?["reply"]?.string == "Opened.", "\(decided)")

            // The read tool runs at once, and shows that the server got the confirmation id.
            let listed = try await client.send(sessionID: session, content: "List the tickets")
            #expect(listed["status"]?.string == "completed", "\(listed)")
            let after = try await tool(agent, "tickets.list_tickets").run([:], context: testContext())
            #expect(after.content == "#1: Printer on fire (\(pending["id"]!.string))")

            // A tool that appears later (notifications/tools/list_changed) becomes available.
            #expect(!agent.availableTools.contains { $0.descriptor.name == "tickets.ticket_report" })
            let enabling = try await client.send(sessionID: session, content: "Enable reports")
            let enable = try #require(enabling["pending_confirmations"]?.arrayValue?.first, "\(enabling)")
            let enabled = try await client.decide(enable["id"]!.string, approve: true)
            #expect(enabled["run"]?["reply"]?.string == "Enabled.")
            try await MCPFixtures.waitUntil("the agent has tickets.ticket_report") {
                agent.availableTools.contains { $0.descriptor.name == "tickets.ticket_report" }
            }
            let report = try #require(agent.tool(named: "tickets.ticket_report"))
            #expect(report.descriptor.flags.effect == .read)
            try model.assertConsumed()
        }
        #expect(server.status == .stopped)
    }

    func tool(_ agent: Agent, _ name: String) throws -> any AgentRuntime.Tool {
        try #require(agent.tool(named: name))
    }

    func testContext() -> ToolContext {
        ToolContext(
            sessionID: "ses_t", callID: "call_t", confirmationID: nil, workspace: FileManager.default.temporaryDirectory
        )
    }
}
