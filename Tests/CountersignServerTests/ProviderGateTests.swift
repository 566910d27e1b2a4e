import AgentRuntime
import CountersignClient
import CountersignServer
import CountersignTesting
import Foundation
import GateCore
import ModelProviders
import Testing
import ToolSources

/// The recorded provider exchanges of Tests/ModelProvidersTests/Fixtures.
enum ProviderFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ModelProvidersTests/Fixtures", isDirectory: true)

    static func cassette(_ name: String) throws -> ModelStubServer.Cassette {
        try ModelStubServer.Cassette.load(directory.appendingPathComponent("\(name).json"))
    }
}

/// Writes `yaml` to a temporary file and loads it as `countersign serve --config` does.
func loadConfig(_ yaml: String, environment: [String: String] = [:]) throws -> AgentConfig {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
        "countersign-config-\(Identifier.make("t", length: 10)).yaml")
    try Data(yaml.utf8).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return try AgentConfig.load(file: url.path, environment: environment)
}

/// Loading `yaml` fails with a ConfigError that names the file (and the line) and
/// contains `expected`.
func expectConfigError(
    _ yaml: String, contains expected: String, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    do {
        _ = try loadConfig(yaml)
        Issue.record("expected a ConfigError containing \(expected)", sourceLocation: sourceLocation)
    } catch let error as ConfigError {
        #expect(error.description.contains(expected), "\(error.description)", sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix(error.file), sourceLocation: sourceLocation)
        #expect(error.file.hasSuffix(".yaml"), sourceLocation: sourceLocation)
    }
}

/// A config with one agent, `writer`, whose model is behind `baseURL`.
func writerConfig(provider: String, baseURL: String, stream: Bool) -> String {
    let model =
        provider == "openai"
        ? "{provider: openai, name: gpt-4.1-mini, base_url: \"\(baseURL)/v1\", api_key_env: TEST_OPENAI_KEY, stream: \(stream)}"
        : "{provider: anthropic, name: claude-sonnet-4-20250514, base_url: \"\(baseURL)\", api_key_env: TEST_ANTHROPIC_KEY, "
            + "max_tokens: 1024, stream: \(stream)}"
    return """
        agents:
          - name: writer
            model: \(model)
            instructions: You keep the team's notes.
            tools: [read_file, list_files, write_file, delete_file, http_fetch, git.*]
            policy:
              write_file: confirm
              delete_file: {policy: confirm, remember: never}
              rules:
                - {tool: write_file, when: {path: {prefix: "drafts/"}}, policy: auto}
        """
}

let testKeys = ["TEST_OPENAI_KEY": "sk-test-countersign", "TEST_ANTHROPIC_KEY": "sk-ant-test-countersign"]

/// The whole gate cycle against each provider through the recorded stub, with agents
/// from a configuration file: message → pending → approve → tool → final answer.
@Suite struct ProviderGateTests {
    @Test(arguments: [
        ("openai", true, "openai_stream_tool_call"), ("openai", false, "openai_whole_tool_call"),
        ("anthropic", true, "anthropic_stream_tool_call"), ("anthropic", false, "anthropic_whole_tool_call"),
    ])
    func fullCycle(provider: String, stream: Bool, fixture: String) async throws {
        let cassette = try ProviderFixtures.cassette(fixture)
        try await ModelStubServer.with(cassette.exchanges) { stub in
            let config = try loadConfig(
                writerConfig(provider: provider, baseURL: stub.baseURL, stream: stream), environment: testKeys)
            try await TestServer.with(agents: config.agents) { server in
                let client = server.client()
                let session = try await client.createSession(agent: "writer")["id"]!.string
                let reply = try await client.send(
                    sessionID: session, content: "Please write buy milk to notes/todo.txt")
                #expect(reply["status"]?.string == "awaiting_confirmation", "reply: \(reply)")
                let pending = try #require(reply["pending_confirmations"]?.arrayValue?.first)
                #expect(pending["tool_name"]?.string == "write_file")
                #expect(pending["params"] == ["path": "notes/todo.txt", "content": "buy milk"])
                #expect(pending["requested_by"]?.string == "agent:writer")
                #expect(server.file("notes/todo.txt", in: session) == nil)
                #expect(stub.received.count == 1)

                let decided = try await client.decide(pending["id"]!.string, approve: true)
                #expect(decided["run"]?["status"]?.string == "completed", "decided: \(decided)")
                #expect(decided["run"]?["reply"]?.string == "I wrote buy milk to notes/todo.txt.")
                #expect(server.file("notes/todo.txt", in: session) == "buy milk")
                #expect(try await client.confirmation(pending["id"]!.string)["status"]?.string == "succeeded")
                // The second request carried the tool call and its result (checked by the cassette).
                try stub.assertConsumed()

                let events = try await client.events(sessionID: session)
                let runID = decided["run"]?["run_id"]?.string
                let streamed = events.filter { $0["type"]?.string == "token" && $0["data"]?["run_id"]?.string == runID }
                    .compactMap { $0["data"]?["text"]?.stringValue }.joined()
                #expect(streamed.hasSuffix("I wrote buy milk to notes/todo.txt."))
                #expect(events.last?["type"]?.string == "run.completed")
                #expect(try await client.session(session)["status"]?.string == "idle")
            }
        }
    }

    @Test func invalidArgumentsAreBlockedAndTheModelIsTold() async throws {
        try await ModelStubServer.with(try ProviderFixtures.cassette("openai_invalid_arguments").exchanges) { stub in
            let config = try loadConfig(
                writerConfig(provider: "openai", baseURL: stub.baseURL, stream: true), environment: testKeys)
            try await TestServer.with(agents: config.agents) { server in
                let client = server.client()
                let session = try await client.createSession(agent: "writer")["id"]!.string
                let reply = try await client.send(
                    sessionID: session, content: "Please write buy milk to notes/todo.txt")
                #expect(reply["status"]?.string == "completed")
                #expect(reply["reply"]?.string == "My call was cut off.")
                #expect(reply["pending_confirmations"]?.arrayValue?.isEmpty == true)
                #expect(try await client.confirmations().isEmpty)
                #expect(server.file("notes/todo.txt", in: session) == nil)
                let events = try await client.events(sessionID: session)
                let created = try #require(events.first { $0["type"]?.string == "tool_call.created" })
                #expect(created["data"]?["status"]?.string == "denied_by_policy")
                try stub.assertConsumed()
            }
        }
    }

    @Test func providerErrorEndsTheRunWithItsMessage() async throws {
        try await ModelStubServer.with(try ProviderFixtures.cassette("openai_unauthorized").exchanges) { stub in
            let config = try loadConfig(
                writerConfig(provider: "openai", baseURL: stub.baseURL, stream: true),
                environment: ["TEST_OPENAI_KEY": "sk-wrong"])
            try await TestServer.with(agents: config.agents) { server in
                let client = server.client()
                let session = try await client.createSession(agent: "writer")["id"]!.string
                let reply = try await client.send(
                    sessionID: session, content: "Please write buy milk to notes/todo.txt")
                #expect(reply["status"]?.string == "failed")
                let events = try await client.events(sessionID: session)
                let failed = try #require(events.first { $0["type"]?.string == "run.failed" })
                let message = failed["data"]?["error"]?.string ?? ""
                #expect(message.contains("answered HTTP 401: Incorrect API key provided"), "\(message)")
                #expect(message.contains("OpenAI-compatible provider at \(stub.baseURL)/v1, model gpt-4.1-mini"))
                #expect(try await client.session(session)["status"]?.string == "idle")
                try stub.assertConsumed()
            }
        }
    }

    /// Streamed text reaches the log while the model is still answering: a `token` event
    /// once 100 ms have passed (on the engine's clock), the rest with the step.
    @Test func tokensAreFlushedWhileTheModelStreams() async throws {
        let clock = ManualClock()
        let model = StreamingModel(clock: clock)
        let agent = Agent(name: "streamer", instructions: "", model: model, tools: [])
        try await TestServer.with(clock: clock, agents: [agent]) { server in
            let client = server.client()
            let session = try await client.createSession(agent: "streamer")["id"]!.string
            let reply = try await client.send(sessionID: session, content: "hi")
            #expect(reply["reply"]?.string == "abc")
            let events = try await client.events(sessionID: session)
            let types = events.compactMap { $0["type"]?.stringValue }
            #expect(
                types == ["message.created", "run.started", "token", "token", "message.completed", "run.completed"])
            let tokens = events.filter { $0["type"]?.string == "token" }.compactMap { $0["data"]?["text"]?.stringValue }
            #expect(tokens == ["ab", "c"])
        }
    }
}

/// Streams "a", then (120 ms later on the manual clock) "b" and "c".
struct StreamingModel: LanguageModel {
    let clock: ManualClock

    func respond(to request: ModelRequest, onToken: @escaping @Sendable (String) async -> Void) async throws
        -> ModelResponse
    {
        await onToken("a")
        clock.advance(by: 0.12)
        await onToken("b")
        await onToken("c")
        return ModelResponse(text: "abc")
    }
}

/// The configuration file: every section, its checks and its error messages.
@Suite struct AgentConfigTests {
    @Test func theSpecExampleLoads() throws {
        let config = try loadConfig(
            """
            agents:
              - name: writer
                model: {provider: openai, name: gpt-4.1-mini, base_url: "https://llm.example.com/v1", api_key_env: OPENAI_API_KEY}
                instructions: You keep the team's notes.
                tools: [read_file, list_files, write_file, delete_file, http_fetch, git.*]
                policy:
                  write_file: confirm
                  delete_file: {policy: confirm, remember: never}
                  rules:
                    - {tool: write_file, when: {path: {prefix: "drafts/"}}, policy: auto}
            mcp_servers:
              - {name: git, command: [python3, -m, mcp_server_git, --repository, ./repo]}
              - {name: tickets, url: "http://127.0.0.1:9000/mcp"}
            webhook_tools:
              - {name: send_invoice, url: "http://127.0.0.1:9100/invoice", effect: write, schema: {…}}
            """, environment: ["OPENAI_API_KEY": "sk-x"])
        let agent = try #require(config.agents.first)
        #expect(config.agents.count == 1)
        #expect(agent.name == "writer")
        #expect(agent.instructions == "You keep the team's notes.")
        #expect(
            agent.tools.map(\.descriptor.name) == [
                "read_file", "list_files", "write_file", "delete_file", "http_fetch",
            ])
        #expect(agent.policy.tools == ["write_file": .confirm, "delete_file": .confirm])
        #expect(agent.policy.grantsForbidden == ["delete_file"])
        #expect(
            agent.policy.rules == [
                PolicyRule(id: "rules[0]", tool: "write_file", when: ["path": .prefix("drafts/")], policy: .auto)
            ])
        let model = try #require(agent.model as? OpenAIChatModel)
        #expect(model.name == "gpt-4.1-mini")
        #expect(model.provider.chatCompletionsURL == "https://llm.example.com/v1/chat/completions")
        #expect(model.settings.stream)
        #expect(config.webhookTools.map(\.descriptor.name) == ["send_invoice"])
        #expect(config.webhookTools.first?.descriptor.flags == ToolFlags(effect: .write))
        #expect(config.mcpServers.map(\.name) == ["git", "tickets"])
        #expect(agent.providedTools.map(\.patterns) == [["git.*"]])
        #expect(config.warnings.isEmpty, "\(config.warnings)")
    }

    @Test func everyKeyOfAnAgent() throws {
        let config = try loadConfig(
            """
            version: 1
            agents:
              - name: claude-notes
                description: Notes, with Claude.
                model:
                  provider: anthropic
                  name: claude-sonnet-4-20250514
                  max_tokens: 2048
                  temperature: 0.3
                  top_p: 0.9
                  stop: ["END"]
                  tool_choice: {tool: write_file}
                  parallel_tool_calls: false
                  stream: false
                  headers: {X-Team: notes}
                  anthropic_version: "2023-06-01"
                  anthropic_beta: [prompt-caching-2024-07-31]
                  connect_timeout: 5
                  response_timeout: 2m
                  idle_timeout: 30s
                  retry: {max_attempts: 6, initial_backoff: 250ms, max_backoff: 10, max_retry_after: 1m}
                instructions: |
                  Keep notes.
                  Be brief.
                tools: ["*_file"]
                policy:
                  append_file: auto
                  delete_file: {remember: session}
                  read_file: deny
                  rules:
                    - id: big-writes
                      tool: write_file
                      when: {path: {glob: "*.md"}, size: {min: 10, max: 99.5}, mode: {equals: 7}, kind: draft}
                      policy: confirm_if_tainted
                confirmation_ttl: 5m
              - name: offline
                model: demo
                tools: []
            """, environment: ["ANTHROPIC_API_KEY": "sk-ant-x"])
        #expect(config.warnings.isEmpty)
        let agent = config.agents[0]
        #expect(agent.tools.map(\.descriptor.name) == ["read_file", "write_file", "append_file", "delete_file"])
        #expect(agent.instructions == "Keep notes.\nBe brief.\n")
        #expect(agent.confirmationTTL == 300)
        #expect(agent.policy.tools == ["append_file": .auto, "read_file": .deny])
        #expect(agent.policy.destructiveGrantsAllowed == ["delete_file"])
        #expect(
            agent.policy.rules == [
                PolicyRule(
                    id: "big-writes", tool: "write_file",
                    when: [
                        "path": .glob("*.md"), "size": .range(min: 10, max: 99.5), "mode": .equals(7),
                        "kind": .equals("draft"),
                    ], policy: .confirmIfTainted)
            ])
        let model = try #require(agent.model as? AnthropicModel)
        #expect(
            model.settings
                == ModelSettings(
                    maxTokens: 2048, temperature: 0.3, topP: 0.9, stopSequences: ["END"],
                    toolChoice: .tool("write_file"),
                    parallelToolCalls: false, stream: false))
        #expect(model.provider.messagesURL == "https://api.anthropic.com/v1/messages")
        #expect(model.provider.betas == ["prompt-caching-2024-07-31"])
        #expect(model.provider.headers == ["X-Team": "notes"])
        #expect(
            model.provider.transport.timeouts
                == ProviderTimeouts(connect: .seconds(5), response: .seconds(120), idle: .seconds(30)))
        #expect(
            model.provider.transport.retry
                == RetryPolicy(
                    maxAttempts: 6, initialBackoff: .milliseconds(250), maxBackoff: .seconds(10),
                    maxRetryAfter: .seconds(60)))
        #expect(config.agents[1].model is DemoModel)
        #expect(config.agents[1].tools.isEmpty)
    }

    @Test func toolsDefaultToEveryBuiltInAndLocalServersNeedNoKey() throws {
        let config = try loadConfig(
            """
            agents:
              - name: local
                model: {provider: openai, name: llama3.1, base_url: "http://127.0.0.1:11434/v1/"}
            """)
        let agent = try #require(config.agents.first)
        #expect(agent.tools.count == AgentConfig.builtInTools.count)
        let model = try #require(agent.model as? OpenAIChatModel)
        #expect(model.provider.chatCompletionsURL == "http://127.0.0.1:11434/v1/chat/completions")
        #expect(model.provider.maxTokensField == "max_tokens")
        #expect(try loadConfig("").agents.isEmpty)
        #expect(try loadConfig("agents: []").agents.isEmpty)
    }

    static let errorCases: [(String, String)] = [
        (
            "agents:\n  - name: w\n    model: demo\n    tools: [write_file]\n    policy:\n      rules:\n"
                + "        - {tool: write_file, when: {path: {prefx: \"drafts/\"}}, policy: auto}\n",
            ":7:44: agents[0].policy.rules[0].when.path: unknown key 'prefx' — did you mean 'prefix'?"
        ),
        (
            "agents:\n  - name: w\n    model: demo\n    tools: [read_file, write_flie]\n",
            ":4:24: agents[0].tools[1]: unknown tool 'write_flie' — did you mean 'write_file'?"
        ),
        (
            "agents:\n  - name: w\n    model: demo\n    policy: {write_file: ask}\n",
            "agents[0].policy.write_file: unknown policy 'ask' (expected one of: auto, confirm, confirm_if_tainted, deny)"
        ),
        (
            "agents:\n  - name: w\n    model: demo\n    tools: [read_file]\n    policy: {write_file: confirm}\n",
            "agents[0].policy.write_file: 'write_file' is not one of this agent's tools (read_file)"
        ),
        (
            "agents:\n  - name: w\n    model: {provider: openai, name: gpt-4.1, api_key_env: MISSING_KEY}\n",
            "agents[0].model.api_key_env: the environment variable MISSING_KEY is not set or empty"
        ),
        (
            "agents:\n  - name: w\n    model: {provider: openai, name: gpt-4.1}\n",
            "agents[0].model: the environment variable OPENAI_API_KEY (the default for provider openai) is not set or empty"
        ),
        (
            "agents:\n  - name: w\n    model: {provider: openai, name: gpt-4.1, api_key: sk-123}\n",
            "agents[0].model.api_key: API keys are not written in the configuration file"
        ),
        (
            "agents:\n  - name: w\n    model: {provider: gemini, name: g}\n",
            "agents[0].model.provider: unknown provider 'gemini' (expected openai, anthropic or demo)"
        ),
        (
            "agents:\n  - name: w\n    model: {provider: openai, name: m, base_url: \"ftp://x\"}\n",
            "agents[0].model.base_url: 'ftp://x' is not an http:// or https:// URL"
        ),
        (
            "agents:\n  - name: w\n    model: {provider: openai, name: m, base_url: \"http://x/v1\", temperature: 3}\n",
            "agents[0].model.temperature: must be between 0 and 2"
        ),
        (
            "agents:\n  - name: w\n    model: demo\n  - name: w\n    model: demo\n",
            "agents[1]: duplicate agent name 'w'"
        ),
        ("agents:\n  - name: demo\n    model: demo\n", "agents[0].name: 'demo' is the name of the built-in agent"),
        ("agents:\n  - name: w\n", "agents[0]: missing key 'model'"),
        ("agent:\n  - name: w\n", ":1:1: unknown key 'agent' — did you mean 'agents'?"),
        (
            "agents:\n  - name: w\n    model: demo\n    confirmation_ttl: soon\n",
            "agents[0].confirmation_ttl: expected seconds"
        ),
        (
            "agents:\n  - name: w\n    model: demo\n    policy: {delete_file: {policy: confirm, remember: forever}}\n",
            "agents[0].policy.delete_file.remember: unknown remember 'forever' (expected never or session)"
        ),
        (
            "agents:\n  - name: w\n    model: demo\n    policy:\n      rules:\n        - {tool: read_file, when: {size: {min: 5, max: 1}}, policy: deny}\n",
            "agents[0].policy.rules[0].when.size: min (5.0) is greater than max (1.0)"
        ),
        (
            "agents:\n  - name: w\n    model: demo\n    tools: read_file\n",
            "agents[0].tools: expected a list, found a string"
        ),
        (
            "agents:\n  - name: w\n    model: {provider: openai, name: m, base_url: \"http://x/v1\", tool_choice: {tool: delete_file}}\n"
                + "    tools: [read_file]\n",
            "agents[0].model.tool_choice.tool: 'delete_file' is not one of this agent's tools"
        ),
        ("agents: [\n", "not valid YAML"),
    ]

    @Test(arguments: errorCases)
    func errorsNameTheFileThePathAndTheProblem(yaml: String, expected: String) throws {
        try expectConfigError(yaml, contains: expected)
    }

    /// The complete example of docs/configuration.md loads as documented.
    @Test func theDocumentedExampleLoads() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/configuration.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        let start = try #require(text.range(of: "```yaml\n"))
        let end = try #require(text.range(of: "```", range: start.upperBound..<text.endIndex))
        let config = try loadConfig(
            String(text[start.upperBound..<end.lowerBound]),
            environment: ["OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-ant-x", "INVOICE_TOKEN": "t"])
        #expect(config.agents.map(\.name) == ["writer", "reviewer", "local", "offline"])
        #expect(config.webhookTools.map(\.descriptor.name) == ["send_invoice"])
        #expect(config.agents[3].tools.map(\.descriptor.name) == ["write_file", "read_file", "send_invoice"])
        #expect(config.agents[3].policy.rules.map(\.id) == ["big-invoices", "test-customers"])
        #expect(config.fetchLimits == HTTPFetchTool.Limits())
        #expect(config.agents[0].policy.rules.map(\.id) == ["rules[0]", "no-secrets"])
        #expect(config.agents[0].confirmationTTL == 600)
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        let readme = try String(
            contentsOf: docs.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
                "README.md"),
            encoding: .utf8)
        let readmeStart = try #require(readme.range(of: "```yaml\n"))
        let readmeEnd = try #require(readme.range(of: "```", range: readmeStart.upperBound..<readme.endIndex))
        let readmeConfig = try loadConfig(
            String(readme[readmeStart.upperBound..<readmeEnd.lowerBound]),
            environment: ["OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-ant-x"])
        #expect(readmeConfig.agents.map(\.name) == ["writer", "local", "reviewer"])
        #expect(readmeConfig.warnings.isEmpty)
    }

    @Test func aMissingFileIsAConfigError() {
        #expect(throws: ConfigError.self) { try AgentConfig.load(file: "/nonexistent/countersign.yaml") }
    }
}

/// `countersign serve --config FILE` and `COUNTERSIGN_CONFIG`.
@Suite struct ServeConfigTests {
    let temporary: TemporaryDirectory
    var directory: URL { temporary.url }

    init() throws {
        temporary = try TemporaryDirectory("countersign-config-cli")
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = directory.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = ServerProcess.binary()
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "COUNTERSIGN_CONFIG")
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        // A server that starts instead of refusing would never exit: stop it after 30 s.
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { [process] in if process.isRunning { kill(pid, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: watchdog)
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        watchdog.cancel()
        return (process.terminationStatus, String(decoding: stderr, as: UTF8.self))
    }

    @Test func aBadFileStopsTheServerWithTheErrorOnStderr() throws {
        let bad = try write(
            "bad.yaml",
            "agents:\n  - name: w\n    model: demo\n    tools: [write_file]\n    policy: {write_file: ask}\n")
        let database = "sqlite:\(directory.appendingPathComponent("c.db").path)"
        let (status, stderr) = try run(["serve", "--port", "0", "--database", database, "--config", bad])
        #expect(status == 78)
        #expect(
            stderr.contains("configuration error: \(bad):5:26: agents[0].policy.write_file: unknown policy 'ask'"),
            "\(stderr)")
        let (envStatus, envStderr) = try run(
            ["serve", "--port", "0", "--database", database], environment: ["COUNTERSIGN_CONFIG": bad])
        #expect(envStatus == 78)
        #expect(envStderr.contains("unknown policy 'ask'"))
        let (missingStatus, missingStderr) = try run(
            [
                "serve", "--port", "0", "--database", database, "--config",
                directory.appendingPathComponent("none.yaml").path,
            ])
        #expect(missingStatus == 78)
        #expect(missingStderr.contains("cannot read the file"))
    }

    @Test func configuredAgentsServeBesideTheDemo() async throws {
        let path = try write(
            "good.yaml",
            """
            agents:
              - name: offline-notes
                model: {provider: demo}
                tools: [write_file, read_file]
                policy:
                  rules:
                    - {tool: write_file, when: {path: {prefix: "drafts/"}}, policy: auto}
              - name: local-llm
                model: {provider: openai, name: llama3.1, base_url: "http://127.0.0.1:9/v1"}
            """)
        let database = directory.appendingPathComponent("good.db").path
        let server = try await ServerProcess.launch(database: database, extra: ["--config", path])
        defer { server.kill() }
        let key = try String(contentsOfFile: database + ".admin-key", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let client = CountersignClient(baseURL: server.baseURL, apiKey: key)
        let session = try await client.createSession(agent: "offline-notes")["id"]!.string
        let auto = try await client.send(sessionID: session, content: "write drafts/a.txt x")
        #expect(auto["status"]?.string == "completed")
        let gated = try await client.send(sessionID: session, content: "write final/a.txt x")
        #expect(gated["status"]?.string == "awaiting_confirmation")
        _ = try await client.createSession(agent: "local-llm")
        _ = try await client.createSession(agent: "demo")
        let unknown = try await client.request(.POST, "/v1/sessions", json: ["agent": "nobody"])
        #expect(unknown.status == 400)
    }
}
