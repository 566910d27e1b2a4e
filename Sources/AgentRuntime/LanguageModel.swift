import GateCore

/// One message of the conversation as the model sees it.
public enum ChatMessage: Sendable, Equatable, Codable {
    case user(String)
    case assistant(text: String, toolCalls: [ModelToolCall])
    case tool(callID: String, name: String, content: String)

    private enum CodingKeys: String, CodingKey {
        case role, content, toolCalls = "tool_calls", callID = "call_id", name
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .role) {
        case "user": self = .user(try container.decode(String.self, forKey: .content))
        case "assistant":
            self = .assistant(
                text: try container.decode(String.self, forKey: .content),
                toolCalls: try container.decodeIfPresent([ModelToolCall].self, forKey: .toolCalls) ?? [])
        case "tool":
            self = .tool(
                callID: try container.decode(String.self, forKey: .callID),
                name: try container.decode(String.self, forKey: .name),
                content: try container.decode(String.self, forKey: .content))
        case let role:
            throw DecodingError.dataCorruptedError(
                forKey: .role, in: container, debugDescription: "unknown role \(role)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .user(let text):
            try container.encode("user", forKey: .role)
            try container.encode(text, forKey: .content)
        case .assistant(let text, let calls):
            try container.encode("assistant", forKey: .role)
            try container.encode(text, forKey: .content)
            if !calls.isEmpty { try container.encode(calls, forKey: .toolCalls) }
        case .tool(let callID, let name, let content):
            try container.encode("tool", forKey: .role)
            try container.encode(callID, forKey: .callID)
            try container.encode(name, forKey: .name)
            try container.encode(content, forKey: .content)
        }
    }
}

/// A tool call as the model asked for it. `id` is the id the model (or provider) gave
/// the call, echoed back with its result; `arguments` are the raw argument text, which
/// may not be valid JSON.
public struct ModelToolCall: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }

    public init(id: String, name: String, arguments: JSONValue) {
        self.init(id: id, name: name, arguments: arguments.canonicalString)
    }
}

/// What the runtime hands a model for one step.
public struct ModelRequest: Sendable {
    public var instructions: String
    public var messages: [ChatMessage]
    public var tools: [ToolDescriptor]

    public init(instructions: String, messages: [ChatMessage], tools: [ToolDescriptor]) {
        self.instructions = instructions
        self.messages = messages
        self.tools = tools
    }
}

public struct ModelResponse: Sendable, Equatable {
    public var text: String
    public var toolCalls: [ModelToolCall]

    public init(text: String, toolCalls: [ModelToolCall] = []) {
        self.text = text
        self.toolCalls = toolCalls
    }
}

/// A language model the runtime can drive. Providers (OpenAI-compatible, Anthropic,
/// scripted) implement it; `onToken` receives text deltas as they arrive.
public protocol LanguageModel: Sendable {
    func respond(to request: ModelRequest, onToken: @escaping @Sendable (String) async -> Void) async throws
        -> ModelResponse
}
