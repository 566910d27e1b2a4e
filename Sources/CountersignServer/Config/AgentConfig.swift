import AgentRuntime
import Foundation
import GateCore
import Logging
import ModelProviders
import ToolSources
import Yams

/// The agents of a configuration file (SPEC §8), ready for ``ServerConfiguration/agents``.
/// Everything is checked when the file is loaded — structure, tool names, policies,
/// model settings, the API-key variables — so a server with a bad file refuses to start
/// instead of failing on its first message. See docs/configuration.md for every key.
public struct AgentConfig: Sendable {
    public var agents: [Agent]
    /// The `webhook_tools` of the file (agents name the ones they use).
    public var webhookTools: [WebhookTool] = []
    /// The `http_fetch` section: limits of the `http_fetch` tool of the file's agents.
    public var fetchLimits = HTTPFetchTool.Limits()
    /// The `mcp_servers`, not yet started: ``ServerConfiguration/mcpServers`` starts and
    /// supervises them. The agents that name their tools hold them as tool providers.
    public var mcpServers: [MCPServerConnection] = []
    /// Things worth telling the operator that do not stop the server, such as tool
    /// patterns that match nothing.
    public var warnings: [String]

    public init(
        agents: [Agent], webhookTools: [WebhookTool] = [], fetchLimits: HTTPFetchTool.Limits = .init(),
        mcpServers: [MCPServerConnection] = [], warnings: [String]
    ) {
        self.mcpServers = mcpServers
        self.agents = agents
        self.webhookTools = webhookTools
        self.fetchLimits = fetchLimits
        self.warnings = warnings
    }

    /// How models built from the file reach their providers. Tests inject sleepers so
    /// that nothing waits in real time.
    public struct ProviderOptions: Sendable {
        public var sleeper: any ProviderSleeper
        public var watchdogSleeper: any ProviderSleeper
        public var logger: Logger
        /// Restart backoff, its sleeper and the logger of the MCP servers.
        public var mcp = MCPServerConnection.Options()

        public init(
            sleeper: any ProviderSleeper = TaskSleeper(), watchdogSleeper: any ProviderSleeper = TaskSleeper(),
            logger: Logger = Logger(label: "countersign.model")
        ) {
            self.sleeper = sleeper
            self.watchdogSleeper = watchdogSleeper
            self.logger = logger
        }
    }

    /// The built-in tools: the workspace file tools and `http_fetch` (with default limits).
    public static var builtInTools: [any Tool] { WorkspaceFiles.tools + [HTTPFetchTool()] }

    /// Loads and checks a configuration file.
    public static func load(
        file path: String, environment: [String: String] = ProcessInfo.processInfo.environment,
        options: ProviderOptions = ProviderOptions()
    ) throws -> AgentConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, path: "", message: "cannot read the file (\(error.localizedDescription))")
        }
        return try parse(text, file: path, environment: environment, options: options)
    }

    /// Checks a configuration given as text; `file` names it in errors.
    public static func parse(
        _ yaml: String, file: String, environment: [String: String] = ProcessInfo.processInfo.environment,
        options: ProviderOptions = ProviderOptions()
    ) throws -> AgentConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw syntaxError(error, file: file)
        } catch {
            throw ConfigError(file: file, path: "", message: "not valid YAML: \(error)")
        }
        guard let root else { return AgentConfig(agents: [], warnings: ["\(file): the file is empty; only demo runs"]) }
        var reader = Reader(file: file, environment: environment, options: options)
        return try reader.read(ConfigNode(node: root, path: "", file: file))
    }

    static func syntaxError(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let detail = context.map { "\(problem) \($0.text)" } ?? problem
            return ConfigError(
                file: file, line: mark.line, column: mark.column, path: "", message: "not valid YAML: \(detail)")
        default:
            return ConfigError(file: file, path: "", message: "not valid YAML: \(error)")
        }
    }
}

/// Reads the document into agents, collecting warnings.
struct Reader {
    let file: String
    let environment: [String: String]
    let options: AgentConfig.ProviderOptions
    var warnings: [String] = []

    init(file: String, environment: [String: String], options: AgentConfig.ProviderOptions) {
        self.file = file
        self.environment = environment
        self.options = options
    }

    static let topKeys = ["version", "agents", "mcp_servers", "webhook_tools", "http_fetch"]
    static let webhookKeys = [
        "name", "url", "description", "effect", "idempotent", "open_world", "schema", "timeout", "headers", "summary",
        "max_response_bytes",
    ]
    static let fetchKeys = ["max_bytes", "timeout", "max_redirects", "allow_hosts"]
    var webhookTools: [WebhookTool] = []
    var fetchLimits = HTTPFetchTool.Limits()
    /// The MCP servers read so far; agents' `tools` entries `<server>.…` name their tools.
    var mcpServers: [MCPServerConnection] = []

    /// The tools agents of this file may name.
    var availableTools: [any Tool] {
        WorkspaceFiles.tools + [HTTPFetchTool(limits: fetchLimits)] + webhookTools
    }
    static let agentKeys = ["name", "description", "model", "instructions", "tools", "policy", "confirmation_ttl"]
    static let modelKeys = [
        "provider", "name", "base_url", "api_key_env", "api_key", "max_tokens", "temperature", "top_p", "stop",
        "tool_choice", "parallel_tool_calls", "stream", "stream_usage", "headers", "anthropic_version",
        "anthropic_beta", "connect_timeout", "response_timeout", "idle_timeout", "retry",
    ]
    static let retryKeys = ["max_attempts", "initial_backoff", "max_backoff", "max_retry_after"]
    static let policies = ToolPolicy.allCases.map(\.rawValue)

    mutating func read(_ root: ConfigNode) throws -> AgentConfig {
        let fields = try root.fields(Self.topKeys)
        if let version = fields["version"], try version.int() != 1 {
            throw version.error("only version 1 is known")
        }
        if let node = fields["http_fetch"], !node.isNull { fetchLimits = try readFetchLimits(node) }
        if let node = fields["webhook_tools"], !node.isNull {
            var seen: [String: String] = [:]
            for item in try node.list() {
                let tool = try readWebhook(item)
                if let first = seen[tool.descriptor.name] {
                    throw item.error(
                        "duplicate webhook tool name '\(tool.descriptor.name)' (first defined at \(first))")
                }
                seen[tool.descriptor.name] = item.path
                webhookTools.append(tool)
            }
        }
        if let node = fields["mcp_servers"], !node.isNull {
            mcpServers = try readMCPServers(node)
        }
        var agents: [Agent] = []
        var names: [String: String] = [:]
        if let list = fields["agents"], !list.isNull {
            for item in try list.list() {
                let agent = try readAgent(item)
                if agent.name == DemoAgent.make().name {
                    throw item.child("name", item.node["name"] ?? item.node).error(
                        "'demo' is the name of the built-in agent; choose another name")
                }
                if let first = names[agent.name] {
                    throw item.error("duplicate agent name '\(agent.name)' (first defined at \(first))")
                }
                names[agent.name] = item.path
                agents.append(agent)
            }
        }
        return AgentConfig(
            agents: agents, webhookTools: webhookTools, fetchLimits: fetchLimits, mcpServers: mcpServers,
            warnings: warnings)
    }

    // MARK: Tools

    func readFetchLimits(_ node: ConfigNode) throws -> HTTPFetchTool.Limits {
        let fields = try node.fields(Self.fetchKeys)
        var limits = HTTPFetchTool.Limits()
        if let value = fields["max_bytes"] { limits.maxBytes = try value.int(min: 1) }
        if let value = fields["timeout"] { limits.timeout = try value.seconds() }
        if let value = fields["max_redirects"] { limits.maxRedirects = try value.int(min: 0) }
        if let value = fields["allow_hosts"] {
            limits.allowedHosts = Set(try value.list().map { try $0.nonEmptyString().lowercased() })
        }
        return limits
    }

    func readWebhook(_ node: ConfigNode) throws -> WebhookTool {
        let fields = try node.fields(Self.webhookKeys)
        guard let nameNode = fields["name"] else { throw node.error("missing key 'name'") }
        let name = try nameNode.nonEmptyString()
        guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-".contains($0)) }) else {
            throw nameNode.error("'\(name)' is not a valid tool name (letters, digits, '_', '-')")
        }
        if AgentConfig.builtInTools.contains(where: { $0.descriptor.name == name }) {
            throw nameNode.error("'\(name)' is the name of a built-in tool; choose another name")
        }
        guard let urlNode = fields["url"] else { throw node.error("missing key 'url'") }
        let url = try urlNode.nonEmptyString()
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
            scheme == "http" || scheme == "https", parsed.host?.isEmpty == false
        else { throw urlNode.error("'\(url)' is not an http:// or https:// URL") }
        guard let effectNode = fields["effect"] else {
            throw node.error("missing key 'effect' (read, write or destructive: what the call does to the world)")
        }
        let effectText = try effectNode.string()
        guard let effect = ToolEffect(rawValue: effectText) else {
            throw effectNode.error("unknown effect '\(effectText)' (expected read, write or destructive)")
        }
        var schema: JSONValue = ["type": "object"]
        if let schemaNode = fields["schema"] {
            guard case .mapping = schemaNode.node else {
                throw schemaNode.error("expected a JSON Schema (a mapping) for the arguments")
            }
            schema = try schemaNode.json()
            if let type = schema["type"], type != "object" {
                throw schemaNode.error("the arguments are a JSON object: the schema's type must be object")
            }
        }
        var headers: [(String, String)] = []
        if let headersNode = fields["headers"] {
            for (header, value) in try headersNode.mapping() {
                if case .mapping = value.node {
                    let variableNode = try value.fields(["env"])["env"]
                    guard let variableNode else { throw value.error("expected a string or {env: VARIABLE}") }
                    let variable = try variableNode.nonEmptyString()
                    guard let secret = environment[variable], !secret.isEmpty else {
                        throw variableNode.error("the environment variable \(variable) is not set")
                    }
                    headers.append((header, secret))
                } else {
                    headers.append((header, try value.string()))
                }
            }
        }
        var configuration = WebhookTool.Configuration(
            name: name, url: url, description: try fields["description"].map { try $0.string() } ?? "",
            inputSchema: schema,
            flags: ToolFlags(
                effect: effect, openWorld: try fields["open_world"].map { try $0.bool() } ?? false,
                idempotent: try fields["idempotent"].map { try $0.bool() } ?? false),
            headers: headers)
        if let value = fields["timeout"] { configuration.timeout = try value.seconds() }
        if let value = fields["max_response_bytes"] { configuration.maxResponseBytes = try value.int(min: 1) }
        if let value = fields["summary"] { configuration.summaryTemplate = try value.nonEmptyString() }
        return WebhookTool(configuration)
    }

    // MARK: Agents

    mutating func readAgent(_ node: ConfigNode) throws -> Agent {
        let fields = try node.fields(Self.agentKeys)
        guard let nameNode = fields["name"] else { throw node.error("missing key 'name'") }
        let name = try nameNode.nonEmptyString()
        guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }) else {
            throw nameNode.error("'\(name)' is not a valid agent name (letters, digits, '_', '-', '.')")
        }
        guard let modelNode = fields["model"] else { throw node.error("missing key 'model'") }
        let model = try readModel(modelNode)
        let instructions = try fields["instructions"].map { try $0.string() } ?? ""
        let (tools, patterns) = try readTools(fields["tools"], agentPath: node.path)
        let policy = try fields["policy"].map { try readPolicy($0, tools: tools, patterns: patterns) } ?? AgentPolicy()
        // `tool_choice: {tool: NAME}` must name one of the agent's tools.
        if case .mapping = modelNode.node, let choice = try modelNode.fields(Self.modelKeys)["tool_choice"],
            case .mapping = choice.node, let forced = try choice.fields(["tool"])["tool"]
        {
            let name = try forced.string()
            if !tools.contains(where: { $0.descriptor.name == name }), mcpServer(for: name) == nil {
                throw forced.error("'\(name)' is not one of this agent's tools")
            }
        }
        let ttl = try fields["confirmation_ttl"].map { try $0.seconds() }
        var agent = Agent(
            name: name, instructions: instructions, model: model, tools: tools, policy: policy, confirmationTTL: ttl)
        agent.providedTools = mcpServers.compactMap { server in
            let chosen = patterns.filter { mcpServer(for: $0) === server }
            return chosen.isEmpty ? nil : ProvidedTools(provider: server, patterns: chosen)
        }
        return agent
    }

    /// The agent's tools, and the patterns it listed (`git.*`), which policies may name
    /// too. Omitted: every built-in tool; `[]`: none. Entries `<server>.<tool>` or
    /// `<server>.*` of a configured MCP server are patterns too: its tools are known only
    /// once it runs.
    mutating func readTools(_ node: ConfigNode?, agentPath: String) throws -> ([any Tool], [String]) {
        let available = availableTools
        guard let node, !node.isNull else { return (available, []) }
        var chosen: [any Tool] = []
        var patterns: [String] = []
        func add(_ tool: any Tool) {
            if !chosen.contains(where: { $0.descriptor.name == tool.descriptor.name }) { chosen.append(tool) }
        }
        for item in try node.list() {
            let name = try item.nonEmptyString()
            if mcpServer(for: name) != nil {
                if !patterns.contains(name) { patterns.append(name) }
            } else if name.contains("*") || name.contains("?") {
                patterns.append(name)
                let matched = available.filter { Glob.matches($0.descriptor.name, pattern: name) }
                if matched.isEmpty {
                    warnings.append(
                        "\(file): \(item.path): '\(name)' matches no built-in or webhook tool and names no "
                            + "MCP server of this file")
                }
                matched.forEach(add)
            } else if let tool = available.first(where: { $0.descriptor.name == name }) {
                add(tool)
            } else {
                let names = available.map(\.descriptor.name)
                var hint = ""
                if let close = names.min(by: { editDistance($0, name) < editDistance($1, name) }),
                    editDistance(close, name) <= 3
                {
                    hint = " — did you mean '\(close)'?"
                }
                throw item.error(
                    "unknown tool '\(name)'\(hint) (available: \(names.joined(separator: ", ")); patterns such as "
                        + "'git.*' are matched against these)")
            }
        }
        return (chosen, patterns)
    }

    // MARK: Policy

    func readPolicy(_ node: ConfigNode, tools: [any Tool], patterns: [String]) throws -> AgentPolicy {
        var policy = AgentPolicy()
        let toolNames = tools.map(\.descriptor.name)
        func checkTool(_ name: String, at node: ConfigNode) throws {
            if toolNames.contains(name) || patterns.contains(where: { Glob.matches(name, pattern: $0) }) { return }
            let known = toolNames + patterns
            throw node.error(
                "'\(name)' is not one of this agent's tools (\(known.isEmpty ? "none" : known.joined(separator: ", ")))"
            )
        }
        for (key, value) in try node.mapping() {
            if key == "rules" {
                for (index, item) in try value.list().enumerated() {
                    policy.rules.append(try readRule(item, index: index, check: checkTool))
                }
                continue
            }
            try checkTool(key, at: value)
            if case .mapping = value.node {
                let fields = try value.fields(["policy", "remember"])
                if let chosen = fields["policy"] { policy.tools[key] = try readToolPolicy(chosen) }
                if let remember = fields["remember"] {
                    switch try remember.string() {
                    case "never": policy.grantsForbidden.insert(key)
                    case "session": policy.destructiveGrantsAllowed.insert(key)
                    case let other:
                        throw remember.error("unknown remember '\(other)' (expected never or session)")
                    }
                }
                if fields.isEmpty { throw value.error("expected 'policy' and/or 'remember'") }
            } else {
                policy.tools[key] = try readToolPolicy(value)
            }
        }
        return policy
    }

    func readToolPolicy(_ node: ConfigNode) throws -> ToolPolicy {
        let text = try node.string()
        guard let policy = ToolPolicy(rawValue: text) else {
            throw node.error("unknown policy '\(text)' (expected one of: \(Self.policies.joined(separator: ", ")))")
        }
        return policy
    }

    func readRule(_ node: ConfigNode, index: Int, check: (String, ConfigNode) throws -> Void) throws -> PolicyRule {
        let fields = try node.fields(["id", "tool", "when", "policy"])
        guard let toolNode = fields["tool"] else { throw node.error("missing key 'tool'") }
        let tool = try toolNode.nonEmptyString()
        if !tool.contains("*") && !tool.contains("?") { try check(tool, toolNode) }
        guard let policyNode = fields["policy"] else { throw node.error("missing key 'policy'") }
        let id = try fields["id"].map { try $0.nonEmptyString() } ?? "rules[\(index)]"
        var when: [String: ValueMatcher] = [:]
        if let whenNode = fields["when"] {
            for (argument, matcher) in try whenNode.mapping() {
                when[argument] = try readMatcher(matcher)
            }
        }
        return PolicyRule(id: id, tool: tool, when: when, policy: try readToolPolicy(policyNode))
    }

    /// `{prefix: …}`, `{equals: …}`, `{glob: …}`, `{regex: …}`, `{min: …, max: …}`; a
    /// plain value means `equals`. The same shapes as `grant_scope` in the API.
    func readMatcher(_ node: ConfigNode) throws -> ValueMatcher {
        guard case .mapping = node.node else { return .equals(try node.json()) }
        for (key, value) in try node.fields(["prefix", "equals", "glob", "regex", "min", "max"])
        where key == "min" || key == "max" {
            _ = try value.number()
        }
        let json = try node.json()
        do {
            return try ValueMatcher.parse(json)
        } catch {
            throw node.error(error.message)
        }
    }

    // MARK: Models

    func readModel(_ node: ConfigNode) throws -> any LanguageModel {
        if case .scalar = node.node {
            let provider = try node.string()
            guard provider == "demo" || provider == "scripted" else {
                throw node.error("a model given as a single word must be 'demo'; use {provider: …, name: …}")
            }
            return DemoModel()
        }
        let fields = try node.fields(Self.modelKeys)
        guard let providerNode = fields["provider"] else { throw node.error("missing key 'provider'") }
        let provider = try providerNode.string()
        if let literal = fields["api_key"] {
            throw literal.error(
                "API keys are not written in the configuration file; put the key in an environment variable and "
                    + "name it with api_key_env")
        }
        switch provider {
        case "demo", "scripted":
            return DemoModel()
        case "openai", "anthropic":
            break
        default:
            throw providerNode.error("unknown provider '\(provider)' (expected openai, anthropic or demo)")
        }
        guard let nameNode = fields["name"] else { throw node.error("missing key 'name' (the provider's model id)") }
        let name = try nameNode.nonEmptyString()
        let defaultBase = provider == "openai" ? OpenAIProvider.defaultBaseURL : AnthropicProvider.defaultBaseURL
        var baseURL = defaultBase
        if let baseNode = fields["base_url"] {
            baseURL = try baseNode.nonEmptyString()
            guard let url = URL(string: baseURL), let scheme = url.scheme?.lowercased(),
                scheme == "http" || scheme == "https", url.host?.isEmpty == false
            else { throw baseNode.error("'\(baseURL)' is not an http:// or https:// URL") }
        }
        // The key: named by api_key_env; OpenAI's and Anthropic's own endpoints need one.
        var keyVariable = try fields["api_key_env"].map { try $0.nonEmptyString() }
        if keyVariable == nil, provider == "anthropic" { keyVariable = "ANTHROPIC_API_KEY" }
        if keyVariable == nil, provider == "openai", baseURL == OpenAIProvider.defaultBaseURL {
            keyVariable = "OPENAI_API_KEY"
        }
        var apiKey: String?
        if let keyVariable {
            guard let value = environment[keyVariable], !value.isEmpty else {
                let at = fields["api_key_env"] ?? node
                let why = fields["api_key_env"] == nil ? " (the default for provider \(provider))" : ""
                throw at.error("the environment variable \(keyVariable)\(why) is not set or empty")
            }
            apiKey = value
        }

        var settings = ModelSettings()
        settings.maxTokens = try fields["max_tokens"].map { try $0.int(min: 1) }
        if let node = fields["temperature"] {
            let value = try node.number()
            guard (0...2).contains(value) else { throw node.error("must be between 0 and 2") }
            settings.temperature = value
        }
        if let node = fields["top_p"] {
            let value = try node.number()
            guard (0...1).contains(value) else { throw node.error("must be between 0 and 1") }
            settings.topP = value
        }
        if let node = fields["stop"] {
            settings.stopSequences = try node.list().map { try $0.nonEmptyString() }
        }
        if let node = fields["tool_choice"] { settings.toolChoice = try readToolChoice(node) }
        settings.parallelToolCalls = try fields["parallel_tool_calls"].map { try $0.bool() }
        settings.stream = try fields["stream"].map { try $0.bool() } ?? true

        var headers: [String: String] = [:]
        if let node = fields["headers"] {
            for (key, value) in try node.mapping() { headers[key] = try value.string() }
        }
        var timeouts = ProviderTimeouts()
        if let node = fields["connect_timeout"] { timeouts.connect = .seconds(try node.seconds()) }
        if let node = fields["response_timeout"] { timeouts.response = .seconds(try node.seconds()) }
        if let node = fields["idle_timeout"] { timeouts.idle = .seconds(try node.seconds()) }
        var retry = RetryPolicy()
        if let node = fields["retry"] {
            let retryFields = try node.fields(Self.retryKeys)
            if let value = retryFields["max_attempts"] { retry.maxAttempts = try value.int(min: 1) }
            if let value = retryFields["initial_backoff"] {
                retry.initialBackoff = .seconds(try value.seconds(allowZero: true))
            }
            if let value = retryFields["max_backoff"] {
                retry.maxBackoff = .seconds(try value.seconds(allowZero: true))
            }
            if let value = retryFields["max_retry_after"] {
                retry.maxRetryAfter = .seconds(try value.seconds(allowZero: true))
            }
        }
        var trimmedBase = baseURL
        while trimmedBase.hasSuffix("/") { trimmedBase.removeLast() }
        func transport(_ label: String) -> ProviderTransport {
            ProviderTransport(
                label: label, timeouts: timeouts, retry: retry, sleeper: options.sleeper,
                watchdogSleeper: options.watchdogSleeper, logger: options.logger)
        }
        if provider == "openai" {
            if let node = fields["anthropic_version"] ?? fields["anthropic_beta"] {
                throw node.error("only for provider anthropic")
            }
            let streamUsage = try fields["stream_usage"].map { try $0.bool() } ?? true
            let connection = OpenAIProvider(
                baseURL: baseURL, apiKey: apiKey, headers: headers,
                transport: transport("OpenAI-compatible provider at \(trimmedBase), model \(name)"))
            return OpenAIChatModel(name: name, provider: connection, settings: settings, streamUsage: streamUsage)
        }
        if let node = fields["stream_usage"] { throw node.error("only for provider openai") }
        let version =
            try fields["anthropic_version"].map { try $0.nonEmptyString() } ?? AnthropicProvider.defaultVersion
        let betas = try fields["anthropic_beta"].map { try $0.list().map { try $0.nonEmptyString() } } ?? []
        let connection = AnthropicProvider(
            baseURL: baseURL, apiKey: apiKey ?? "", version: version, betas: betas, headers: headers,
            transport: transport("Anthropic provider at \(trimmedBase), model \(name)"))
        return AnthropicModel(name: name, provider: connection, settings: settings)
    }

    /// `auto`, `required`, `none`, or `{tool: NAME}`.
    func readToolChoice(_ node: ConfigNode) throws -> ToolChoice {
        if case .mapping = node.node {
            let fields = try node.fields(["tool"])
            guard let tool = fields["tool"] else { throw node.error("expected {tool: NAME}") }
            return .tool(try tool.nonEmptyString())
        }
        switch try node.string() {
        case "auto": return .auto
        case "required", "any": return .required
        case "none": return .noTools
        case let other:
            throw node.error("unknown tool_choice '\(other)' (expected auto, required, none or {tool: NAME})")
        }
    }
}
