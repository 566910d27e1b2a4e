import AgentRuntime
import Foundation
import GateCore
import Synchronization

/// Whether and which tool the model must call.
public enum ToolChoice: Sendable, Equatable {
    /// The model decides (the default).
    case auto
    /// The model must call at least one tool (Anthropic: `any`).
    case required
    /// The model may not call tools (`none` on the wire; not named `none`, which would
    /// read as `Optional.none`).
    case noTools
    /// The model must call this tool.
    case tool(String)
}

/// Sampling and tool settings of a model, shared by the providers; each maps them onto
/// its own wire names.
public struct ModelSettings: Sendable, Equatable {
    public var maxTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var stopSequences: [String]
    public var toolChoice: ToolChoice?
    /// false asks the provider for at most one tool call per turn.
    public var parallelToolCalls: Bool?
    /// Stream the answer (SSE). Without streaming, the answer arrives whole and its text
    /// is handed to `onToken` at once.
    public var stream: Bool

    public init(
        maxTokens: Int? = nil, temperature: Double? = nil, topP: Double? = nil, stopSequences: [String] = [],
        toolChoice: ToolChoice? = nil, parallelToolCalls: Bool? = nil, stream: Bool = true
    ) {
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topP = topP
        self.stopSequences = stopSequences
        self.toolChoice = toolChoice
        self.parallelToolCalls = parallelToolCalls
        self.stream = stream
    }
}

/// Tokens a model used, as the provider reported them.
public struct ModelUsage: Sendable, Equatable {
    public var requests: Int
    public var inputTokens: Int
    public var outputTokens: Int
    /// Anthropic prompt caching: tokens written to and read from the cache (included in
    /// neither count above, as Anthropic reports them).
    public var cacheCreationInputTokens: Int
    public var cacheReadInputTokens: Int

    public init(
        requests: Int = 0, inputTokens: Int = 0, outputTokens: Int = 0, cacheCreationInputTokens: Int = 0,
        cacheReadInputTokens: Int = 0
    ) {
        self.requests = requests
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheCreationInputTokens = cacheCreationInputTokens
        self.cacheReadInputTokens = cacheReadInputTokens
    }

    public var totalTokens: Int { inputTokens + outputTokens + cacheCreationInputTokens + cacheReadInputTokens }

    public static func + (lhs: ModelUsage, rhs: ModelUsage) -> ModelUsage {
        ModelUsage(
            requests: lhs.requests + rhs.requests, inputTokens: lhs.inputTokens + rhs.inputTokens,
            outputTokens: lhs.outputTokens + rhs.outputTokens,
            cacheCreationInputTokens: lhs.cacheCreationInputTokens + rhs.cacheCreationInputTokens,
            cacheReadInputTokens: lhs.cacheReadInputTokens + rhs.cacheReadInputTokens)
    }
}

/// Adds up the usage of every request a model made; shared by all the sessions that use
/// the model. Read it for accounting, or pass `onUsage` to a model to be told per request.
public final class UsageMeter: Sendable {
    private let total = Mutex(ModelUsage())

    public init() {}

    public func record(_ usage: ModelUsage) { total.withLock { $0 = $0 + usage } }
    public var usage: ModelUsage { total.withLock { $0 } }
}

/// Tool names as the providers accept them: OpenAI and Anthropic allow
/// `^[a-zA-Z0-9_-]{1,64}$`, Countersign tools may be called `git.status`. Names that
/// fit go out unchanged; others are rewritten (`git.status` → `git_status`, with a
/// suffix if that collides) and mapped back when the model calls them.
struct ToolNameMap: Sendable {
    private(set) var toWire: [String: String] = [:]
    private(set) var fromWire: [String: String] = [:]

    init(_ names: some Sequence<String>) {
        for name in names where Self.isValid(name) {
            toWire[name] = name
            fromWire[name] = name
        }
        for name in names where !Self.isValid(name) && toWire[name] == nil {
            var base = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") ? $0 : "_" })
            if base.isEmpty { base = "tool" }
            base = String(base.prefix(60))
            var candidate = base
            var counter = 2
            while fromWire[candidate] != nil {
                candidate = "\(base)_\(counter)"
                counter += 1
            }
            toWire[name] = candidate
            fromWire[candidate] = name
        }
    }

    /// 1–64 ASCII letters, digits, `_` and `-` (checked on the UTF-8 bytes: any other
    /// byte, and so any non-ASCII character, makes the name invalid).
    static func isValid(_ name: String) -> Bool {
        let bytes = name.utf8
        return !bytes.isEmpty && bytes.count <= 64
            && bytes.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                    true
                default: false
                }
            }
    }

    /// The wire name of a tool; names of tools not offered in this request (calls in the
    /// history) are rewritten the same way.
    func wire(_ name: String) -> String {
        if let mapped = toWire[name] { return mapped }
        if Self.isValid(name) { return name }
        return String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") ? $0 : "_" }.prefix(64))
    }

    func local(_ wireName: String) -> String { fromWire[wireName] ?? wireName }
}

/// Arguments of a tool call as an object for wire formats that want one (Anthropic's
/// `tool_use.input`): the parsed arguments, or `{"INVALID_JSON": text}` when the model's
/// text was not a JSON object (the tool result already told the model so).
func argumentsObject(_ arguments: String) -> JSONValue {
    let trimmed = arguments.trimmingWhitespace()
    if trimmed.isEmpty { return .object([:]) }
    if let value = try? JSONValue.parse(trimmed), case .object = value { return value }
    return ["INVALID_JSON": .string(arguments)]
}
