import Foundation
import GateCore

/// What the model and the gate know about a tool.
public struct ToolDescriptor: Sendable, Equatable {
    public var name: String
    public var description: String
    public var inputSchema: JSONValue
    public var flags: ToolFlags
    /// Stable key of the gated action, e.g. `files.write`.
    public var toolKey: String

    public init(name: String, description: String, inputSchema: JSONValue, flags: ToolFlags, toolKey: String? = nil) {
        self.name = name
        self.description = description
        self.inputSchema = inputSchema
        self.flags = flags
        self.toolKey = toolKey ?? name
    }
}

/// Where a tool runs: the session's workspace and the ids that identify the call.
public struct ToolContext: Sendable {
    public var sessionID: String
    public var callID: String
    /// The confirmation id for a gated call; tools pass it on as an idempotency key.
    public var confirmationID: String?
    public var workspace: URL
    /// The ports this server listens on: tools that reach out refuse to call back into it.
    public var serverPorts: Set<Int> = []

    public init(sessionID: String, callID: String, confirmationID: String?, workspace: URL) {
        self.sessionID = sessionID
        self.callID = callID
        self.confirmationID = confirmationID
        self.workspace = workspace
    }
}

/// The outcome of a tool run. A failed tool is not a thrown error: the model is told.
public struct ToolOutput: Sendable, Equatable, Codable {
    public var success: Bool
    public var content: String
    public var data: JSONValue?

    public init(success: Bool, content: String, data: JSONValue? = nil) {
        self.success = success
        self.content = content
        self.data = data
    }

    public static func failure(_ message: String) -> ToolOutput { ToolOutput(success: false, content: message) }
}

/// A tool the agent may call.
public protocol Tool: Sendable {
    var descriptor: ToolDescriptor { get }
    /// One human sentence saying what the call would do, shown to the approver.
    func summary(of params: JSONValue) -> String
    func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput
}

extension Tool {
    public func summary(of params: JSONValue) -> String {
        "Run \(descriptor.name) with \(params.canonicalString)"
    }
}

/// A source of tools that come and go while the server runs, such as an MCP server
/// whose tool list changes. `currentTools` is read at every model step and gate.
public protocol ToolProvider: Sendable {
    var currentTools: [any Tool] { get }
}

/// The tools an agent takes from a provider: those whose names match one of `patterns`
/// (exact names or globs such as `git.*`).
public struct ProvidedTools: Sendable {
    public var provider: any ToolProvider
    public var patterns: [String]

    public init(provider: any ToolProvider, patterns: [String]) {
        self.provider = provider
        self.patterns = patterns
    }

    public var tools: [any Tool] {
        provider.currentTools.filter { tool in
            patterns.contains { Glob.matches(tool.descriptor.name, pattern: $0) }
        }
    }
}

/// A named agent: a model, its instructions, its tools and its policy.
public struct Agent: Sendable {
    public var name: String
    public var instructions: String
    public var model: any LanguageModel
    /// Tools fixed when the agent is built.
    public var tools: [any Tool]
    /// Tools taken from providers at the moment they are needed (see ``availableTools``).
    public var providedTools: [ProvidedTools] = []
    public var policy: AgentPolicy
    /// Seconds a confirmation stays pending; nil uses the server's default.
    public var confirmationTTL: TimeInterval?

    public init(
        name: String, instructions: String, model: any LanguageModel, tools: [any Tool],
        policy: AgentPolicy = AgentPolicy(), confirmationTTL: TimeInterval? = nil
    ) {
        self.name = name
        self.instructions = instructions
        self.model = model
        self.tools = tools
        self.policy = policy
        self.confirmationTTL = confirmationTTL
    }

    /// The fixed tools, then the providers' current tools; a name is taken once, first wins.
    public var availableTools: [any Tool] {
        guard !providedTools.isEmpty else { return tools }
        var all = tools
        var names = Set(tools.map(\.descriptor.name))
        for provided in providedTools {
            for tool in provided.tools where names.insert(tool.descriptor.name).inserted { all.append(tool) }
        }
        return all
    }

    public func tool(named name: String) -> (any Tool)? {
        availableTools.first { $0.descriptor.name == name }
    }
}

/// The agents a server knows, by name.
public struct AgentRegistry: Sendable {
    private var agents: [String: Agent]

    public init(_ agents: [Agent]) {
        self.agents = Dictionary(agents.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
    }

    public subscript(name: String) -> Agent? { agents[name] }
    public var names: [String] { agents.keys.sorted() }
}
