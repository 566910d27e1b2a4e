import AgentRuntime
import AsyncHTTPClient
import Foundation
import GateCore
import NIOCore
import NIOHTTP1

/// Transport and auth of an OpenAI-compatible Chat Completions endpoint: OpenAI itself,
/// or any server that speaks the same wire format (vLLM, Ollama, LM Studio, llama.cpp,
/// OpenRouter, …). The model that uses it is ``OpenAIChatModel``.
public struct OpenAIProvider: Sendable {
    public static let defaultBaseURL = "https://api.openai.com/v1"

    /// The base URL up to and including the version, e.g. `http://127.0.0.1:11434/v1`.
    public var baseURL: String
    /// Sent as `Authorization: Bearer …`; nil for local servers that need no key.
    var apiKey: String?
    /// Extra headers sent with every request (e.g. OpenRouter's `HTTP-Referer`).
    public var headers: [String: String]
    public var transport: ProviderTransport

    public init(
        baseURL: String = OpenAIProvider.defaultBaseURL, apiKey: String?, headers: [String: String] = [:],
        transport: ProviderTransport? = nil
    ) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.apiKey = apiKey
        self.headers = headers
        self.transport = transport ?? ProviderTransport(label: "OpenAI-compatible provider at \(base)")
    }

    public var chatCompletionsURL: String { baseURL + "/chat/completions" }

    /// OpenAI's own API wants `max_completion_tokens` (its reasoning models refuse
    /// `max_tokens`); compatible servers know `max_tokens`.
    public var maxTokensField: String {
        URL(string: baseURL)?.host == "api.openai.com" ? "max_completion_tokens" : "max_tokens"
    }

    func requestHeaders() -> HTTPHeaders {
        var result = HTTPHeaders()
        if let apiKey, !apiKey.isEmpty { result.add(name: "Authorization", value: "Bearer \(apiKey)") }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { result.replaceOrAdd(name: name, value: value) }
        return result
    }
}

/// A model behind an OpenAI-compatible Chat Completions endpoint, as the runtime uses it:
/// streams with `stream: true` and assembles tool-call deltas by index (several calls in
/// one turn included), or asks for the whole answer at once with `stream: false` — and
/// falls back to reading a whole answer when a server ignores `stream`.
public struct OpenAIChatModel: LanguageModel {
    public var name: String
    public var provider: OpenAIProvider
    public var settings: ModelSettings
    /// Ask for `stream_options.include_usage` when streaming (some servers refuse it).
    public var streamUsage: Bool
    public let usage: UsageMeter

    public init(
        name: String, provider: OpenAIProvider, settings: ModelSettings = ModelSettings(), streamUsage: Bool = true,
        usage: UsageMeter = UsageMeter()
    ) {
        self.name = name
        self.provider = provider
        self.settings = settings
        self.streamUsage = streamUsage
        self.usage = usage
    }

    public func respond(to request: ModelRequest, onToken: @escaping @Sendable (String) async -> Void) async throws
        -> ModelResponse
    {
        let names = ToolNameMap(request.tools.map(\.name))
        let body = requestBody(for: request, names: names)
        let label = provider.transport.label
        return try await provider.transport.respond(
            model: name, url: provider.chatCompletionsURL, headers: provider.requestHeaders(), body: body,
            stream: settings.stream,
            names: names, assembler: OpenAIStreamAssembler(label: label), usage: usage,
            parseWhole: { data in try OpenAIChatModel.parseCompletion(data, names: names, label: label) },
            onToken: onToken)
    }

    // MARK: Request

    /// The Chat Completions body for a request: instructions as the `system` message,
    /// assistant tool calls as `tool_calls`, tool results as `role: tool` messages with
    /// their `tool_call_id`.
    func requestBody(for request: ModelRequest, names: ToolNameMap) -> JSONValue {
        var messages: [JSONValue] = []
        if !request.instructions.isEmpty {
            messages.append(["role": "system", "content": .string(request.instructions)])
        }
        for message in request.messages {
            switch message {
            case .user(let text):
                messages.append(["role": "user", "content": .string(text)])
            case .assistant(let text, let calls):
                var item: [String: JSONValue] = ["role": "assistant"]
                item["content"] = text.isEmpty && !calls.isEmpty ? .null : .string(text)
                if !calls.isEmpty {
                    item["tool_calls"] = .array(
                        calls.map { call in
                            [
                                "id": .string(call.id), "type": "function",
                                "function": [
                                    "name": .string(names.wire(call.name)), "arguments": .string(call.arguments),
                                ],
                            ]
                        })
                }
                messages.append(.object(item))
            case .tool(let callID, _, let content):
                messages.append(["role": "tool", "tool_call_id": .string(callID), "content": .string(content)])
            }
        }
        var body: [String: JSONValue] = ["model": .string(name), "messages": .array(messages)]
        if settings.stream {
            body["stream"] = true
            if streamUsage { body["stream_options"] = ["include_usage": true] }
        }
        if !request.tools.isEmpty {
            body["tools"] = .array(
                request.tools.map { tool in
                    [
                        "type": "function",
                        "function": [
                            "name": .string(names.wire(tool.name)), "description": .string(tool.description),
                            "parameters": tool.inputSchema,
                        ],
                    ]
                })
            switch settings.toolChoice {
            case nil: break
            case .auto?: body["tool_choice"] = "auto"
            case .required?: body["tool_choice"] = "required"
            case .noTools?: body["tool_choice"] = "none"
            case .tool(let tool)?:
                body["tool_choice"] = ["type": "function", "function": ["name": .string(names.wire(tool))]]
            }
            if let parallel = settings.parallelToolCalls { body["parallel_tool_calls"] = .bool(parallel) }
        }
        if let maxTokens = settings.maxTokens { body[provider.maxTokensField] = .int(Int64(maxTokens)) }
        if let temperature = settings.temperature { body["temperature"] = .double(temperature) }
        if let topP = settings.topP { body["top_p"] = .double(topP) }
        if !settings.stopSequences.isEmpty { body["stop"] = .array(settings.stopSequences.map(JSONValue.string)) }
        return .object(body)
    }

    // MARK: Whole answers

    /// Reads a non-streamed `chat.completion`.
    static func parseCompletion(_ data: Data, names: ToolNameMap, label: String) throws -> (ModelResponse, ModelUsage) {
        guard let json = try? JSONValue.parse(data) else {
            throw CountersignError(.unavailable, "The model provider (\(label)) sent an answer that is not JSON.")
        }
        if let message = json["error"].flatMap({ $0["message"]?.stringValue ?? $0.stringValue }) {
            throw CountersignError(.unavailable, "The model provider (\(label)) reported an error: \(message)")
        }
        guard let message = json["choices"]?.arrayValue?.first?["message"] else {
            throw CountersignError(.unavailable, "The model provider (\(label)) sent an answer without choices.")
        }
        var text = contentText(message["content"])
        if text.isEmpty, let refusal = message["refusal"]?.stringValue { text = refusal }
        var calls: [ModelToolCall] = []
        for (index, call) in (message["tool_calls"]?.arrayValue ?? []).enumerated() {
            let function = call["function"]
            let arguments: String
            switch function?["arguments"] {
            case .string(let raw)?: arguments = raw
            case nil, .null?: arguments = ""
            case let other?: arguments = other.canonicalString
            }
            calls.append(
                ModelToolCall(
                    id: call["id"]?.stringValue ?? "call_\(index)",
                    name: names.local(function?["name"]?.stringValue ?? ""), arguments: arguments))
        }
        return (ModelResponse(text: text, toolCalls: calls), usage(json["usage"]))
    }

    /// `content` as a string, or as an array of `{type: text, text}` parts.
    static func contentText(_ content: JSONValue?) -> String {
        switch content {
        case .string(let text)?: return text
        case .array(let parts)?: return parts.compactMap { $0["text"]?.stringValue }.joined()
        default: return ""
        }
    }

    static func usage(_ json: JSONValue?) -> ModelUsage {
        guard let json, case .object = json else { return ModelUsage(requests: 1) }
        return ModelUsage(
            requests: 1, inputTokens: Int(json["prompt_tokens"]?.intValue ?? 0),
            outputTokens: Int(json["completion_tokens"]?.intValue ?? 0))
    }
}

/// Folds the `chat.completion.chunk`s of a stream into one answer. Text deltas are
/// concatenated; tool calls are keyed by their `index` — the id and name come with the
/// first delta of an index, the arguments in pieces after it — and come out in the order
/// they began (which is index order). A server that reuses an index for a call with a new id (seen with some
/// compatible servers) gets a new slot.
struct OpenAIStreamAssembler: StreamAssembler {
    var isComplete: Bool { done || finishReason != nil }

    struct PartialCall: Sendable {
        var id: String
        var name: String
        var arguments: String
    }

    let label: String
    private(set) var text = ""
    private(set) var calls: [PartialCall] = []
    /// `index` of the stream → position in `calls`.
    private var slots: [Int64: Int] = [:]
    private(set) var finishReason: String?
    private(set) var usage = ModelUsage(requests: 1)
    private(set) var done = false

    init(label: String) {
        self.label = label
    }

    /// Applies one SSE event; returns the text it adds.
    mutating func apply(_ event: SSEEvent) throws -> String? {
        let data = event.data.trimmingWhitespace(includingNewlines: false)
        if data == "[DONE]" {
            done = true
            return nil
        }
        if data.isEmpty { return nil }
        guard let chunk = try? JSONValue.parse(data) else {
            throw CountersignError(.unavailable, "The model provider (\(label)) sent a stream event that is not JSON.")
        }
        return try apply(chunk: chunk)
    }

    mutating func apply(chunk: JSONValue) throws -> String? {
        if let error = chunk["error"], error != .null {
            let message = error["message"]?.stringValue ?? error.stringValue ?? error.canonicalString
            throw CountersignError(
                .unavailable, "The model provider (\(label)) reported an error in the middle of its answer: \(message)")
        }
        if let reported = chunk["usage"], case .object = reported {
            usage = OpenAIChatModel.usage(reported)
        }
        var added = ""
        for choice in chunk["choices"]?.arrayValue ?? [] where (choice["index"]?.intValue ?? 0) == 0 {
            let delta = choice["delta"]
            let content = OpenAIChatModel.contentText(delta?["content"])
            if !content.isEmpty { added += content }
            if let refusal = delta?["refusal"]?.stringValue { added += refusal }
            for (position, item) in (delta?["tool_calls"]?.arrayValue ?? []).enumerated() {
                applyToolCall(item, position: position)
            }
            if let reason = choice["finish_reason"]?.stringValue { finishReason = reason }
        }
        text += added
        return added
    }

    private mutating func applyToolCall(_ item: JSONValue, position: Int) {
        let index = item["index"]?.intValue ?? Int64(position)
        let id = item["id"]?.stringValue ?? ""
        let function = item["function"]
        let name = function?["name"]?.stringValue ?? ""
        let arguments: String
        switch function?["arguments"] {
        case .string(let piece)?: arguments = piece
        case nil, .null?: arguments = ""
        case let other?: arguments = other.canonicalString
        }
        if let slot = slots[index], id.isEmpty || calls[slot].id.isEmpty || calls[slot].id == id {
            if calls[slot].id.isEmpty { calls[slot].id = id }
            if calls[slot].name.isEmpty { calls[slot].name = name }
            calls[slot].arguments += arguments
            return
        }
        slots[index] = calls.count
        calls.append(PartialCall(id: id, name: name, arguments: arguments))
    }

    func response(names: ToolNameMap) -> ModelResponse {
        ModelResponse(
            text: text,
            toolCalls: calls.enumerated().map { position, call in
                ModelToolCall(
                    id: call.id.isEmpty ? "call_\(position)" : call.id, name: names.local(call.name),
                    arguments: call.arguments)
            })
    }
}
