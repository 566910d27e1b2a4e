import AgentRuntime
import AsyncHTTPClient
import Foundation
import GateCore
import NIOCore
import NIOHTTP1

/// Transport and auth of the Anthropic Messages API (`x-api-key` and
/// `anthropic-version` headers). The model that uses it is ``AnthropicModel``.
public struct AnthropicProvider: Sendable {
    public static let defaultBaseURL = "https://api.anthropic.com"
    public static let defaultVersion = "2023-06-01"

    /// `https://api.anthropic.com` (a base that ends in `/v1` is accepted too).
    public var baseURL: String
    var apiKey: String
    public var version: String
    /// Sent as `anthropic-beta`, comma-separated, when not empty.
    public var betas: [String]
    public var headers: [String: String]
    public var transport: ProviderTransport

    public init(
        baseURL: String = AnthropicProvider.defaultBaseURL, apiKey: String, version: String = defaultVersion,
        betas: [String] = [], headers: [String: String] = [:], transport: ProviderTransport? = nil
    ) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.apiKey = apiKey
        self.version = version
        self.betas = betas
        self.headers = headers
        self.transport = transport ?? ProviderTransport(label: "Anthropic provider at \(base)")
    }

    public var messagesURL: String { baseURL.hasSuffix("/v1") ? baseURL + "/messages" : baseURL + "/v1/messages" }

    func requestHeaders() -> HTTPHeaders {
        var result = HTTPHeaders()
        result.add(name: "x-api-key", value: apiKey)
        result.add(name: "anthropic-version", value: version)
        if !betas.isEmpty { result.add(name: "anthropic-beta", value: betas.joined(separator: ",")) }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { result.replaceOrAdd(name: name, value: value) }
        return result
    }
}

/// A model behind the Anthropic Messages API, as the runtime uses it: the instructions
/// go in the top-level `system`, assistant tool calls are `tool_use` blocks and their
/// results `tool_result` blocks of the next user message; a streamed answer is assembled
/// from `content_block_start` / `content_block_delta` (`text_delta`, `input_json_delta`)
/// events, several `tool_use` blocks in one turn included.
public struct AnthropicModel: LanguageModel {
    public static let defaultMaxTokens = 4096

    public var name: String
    public var provider: AnthropicProvider
    /// `maxTokens` is required by the API; nil sends ``defaultMaxTokens``.
    public var settings: ModelSettings
    public let usage: UsageMeter

    public init(
        name: String, provider: AnthropicProvider, settings: ModelSettings = ModelSettings(),
        usage: UsageMeter = UsageMeter()
    ) {
        self.name = name
        self.provider = provider
        self.settings = settings
        self.usage = usage
    }

    public func respond(to request: ModelRequest, onToken: @escaping @Sendable (String) async -> Void) async throws
        -> ModelResponse
    {
        let names = ToolNameMap(request.tools.map(\.name))
        let body = requestBody(for: request, names: names)
        let label = provider.transport.label
        return try await provider.transport.respond(
            model: name, url: provider.messagesURL, headers: provider.requestHeaders(), body: body,
            stream: settings.stream,
            names: names, assembler: AnthropicStreamAssembler(label: label), usage: usage,
            parseWhole: { data in try AnthropicModel.parseMessage(data, names: names, label: label) }, onToken: onToken)
    }

    // MARK: Request

    /// The Messages body for a request. Consecutive messages of one role are merged
    /// (the API wants user and assistant to alternate): the results of one turn's tool
    /// calls become one user message of `tool_result` blocks.
    func requestBody(for request: ModelRequest, names: ToolNameMap) -> JSONValue {
        var turns: [(role: String, blocks: [JSONValue])] = []
        func add(_ role: String, _ blocks: [JSONValue]) {
            guard !blocks.isEmpty else { return }
            if let last = turns.last, last.role == role {
                turns[turns.count - 1].blocks.append(contentsOf: blocks)
            } else {
                turns.append((role, blocks))
            }
        }
        for message in request.messages {
            switch message {
            case .user(let text):
                add("user", text.isEmpty ? [] : [["type": "text", "text": .string(text)]])
            case .assistant(let text, let calls):
                var blocks: [JSONValue] = []
                if !text.isEmpty { blocks.append(["type": "text", "text": .string(text)]) }
                for call in calls {
                    blocks.append([
                        "type": "tool_use", "id": .string(call.id), "name": .string(names.wire(call.name)),
                        "input": argumentsObject(call.arguments),
                    ])
                }
                add("assistant", blocks)
            case .tool(let callID, _, let content):
                add("user", [["type": "tool_result", "tool_use_id": .string(callID), "content": .string(content)]])
            }
        }
        let messages: [JSONValue] = turns.map { turn in
            if turn.blocks.count == 1, turn.blocks[0]["type"] == "text", let text = turn.blocks[0]["text"] {
                return ["role": .string(turn.role), "content": text]
            }
            return ["role": .string(turn.role), "content": .array(turn.blocks)]
        }
        var body: [String: JSONValue] = [
            "model": .string(name), "messages": .array(messages),
            "max_tokens": .int(Int64(settings.maxTokens ?? Self.defaultMaxTokens)),
        ]
        if !request.instructions.isEmpty { body["system"] = .string(request.instructions) }
        if settings.stream { body["stream"] = true }
        if !request.tools.isEmpty {
            body["tools"] = .array(
                request.tools.map { tool in
                    [
                        "name": .string(names.wire(tool.name)), "description": .string(tool.description),
                        "input_schema": tool.inputSchema,
                    ]
                })
            var choice: [String: JSONValue]?
            switch settings.toolChoice {
            case nil: choice = settings.parallelToolCalls == false ? ["type": "auto"] : nil
            case .auto?: choice = ["type": "auto"]
            case .required?: choice = ["type": "any"]
            case .noTools?: choice = ["type": "none"]
            case .tool(let tool)?: choice = ["type": "tool", "name": .string(names.wire(tool))]
            }
            if settings.parallelToolCalls == false, choice?["type"] != "none" {
                choice?["disable_parallel_tool_use"] = true
            }
            if let choice { body["tool_choice"] = .object(choice) }
        }
        if let temperature = settings.temperature { body["temperature"] = .double(temperature) }
        if let topP = settings.topP { body["top_p"] = .double(topP) }
        if !settings.stopSequences.isEmpty {
            body["stop_sequences"] = .array(settings.stopSequences.map(JSONValue.string))
        }
        return .object(body)
    }

    // MARK: Whole answers

    /// Reads a non-streamed `message`.
    static func parseMessage(_ data: Data, names: ToolNameMap, label: String) throws -> (ModelResponse, ModelUsage) {
        guard let json = try? JSONValue.parse(data) else {
            throw CountersignError(.unavailable, "The model provider (\(label)) sent an answer that is not JSON.")
        }
        if json["type"] == "error" || json["error"] != nil {
            let message = json["error"]?["message"]?.stringValue ?? "unknown error"
            throw CountersignError(.unavailable, "The model provider (\(label)) reported an error: \(message)")
        }
        var text = ""
        var calls: [ModelToolCall] = []
        for block in json["content"]?.arrayValue ?? [] {
            switch block["type"]?.stringValue {
            case "text": text += block["text"]?.stringValue ?? ""
            case "tool_use":
                calls.append(
                    ModelToolCall(
                        id: block["id"]?.stringValue ?? "toolu_\(calls.count)",
                        name: names.local(block["name"]?.stringValue ?? ""),
                        arguments: (block["input"] ?? .object([:])).canonicalString))
            default: break
            }
        }
        var used = ModelUsage(requests: 1)
        usage(json["usage"], into: &used)
        return (ModelResponse(text: text, toolCalls: calls), used)
    }

    /// Anthropic's usage object; counts present in `json` replace those in `usage` (the
    /// stream reports cumulative figures).
    static func usage(_ json: JSONValue?, into usage: inout ModelUsage) {
        guard let json, case .object = json else { return }
        if let value = json["input_tokens"]?.intValue { usage.inputTokens = Int(value) }
        if let value = json["output_tokens"]?.intValue { usage.outputTokens = Int(value) }
        if let value = json["cache_creation_input_tokens"]?.intValue { usage.cacheCreationInputTokens = Int(value) }
        if let value = json["cache_read_input_tokens"]?.intValue { usage.cacheReadInputTokens = Int(value) }
    }
}

/// Folds the events of a Messages stream into one answer: blocks by their `index`, text
/// from `text_delta`, tool input from the `partial_json` pieces of `input_json_delta`
/// (the `input` of `content_block_start` when no piece came), usage from
/// `message_start` and `message_delta`. An `error` event is thrown with its message.
struct AnthropicStreamAssembler: StreamAssembler {
    var isComplete: Bool { stopped || stopReason != nil }

    enum Block: Sendable {
        case text(String)
        case toolUse(id: String, name: String, json: String, initial: JSONValue)
        case other
    }

    let label: String
    private(set) var blocks: [Int64: Block] = [:]
    private(set) var stopReason: String?
    private(set) var usage = ModelUsage(requests: 1)
    private(set) var stopped = false

    init(label: String) {
        self.label = label
    }

    mutating func apply(_ event: SSEEvent) throws -> String? {
        guard !event.data.isEmpty else { return nil }
        guard let data = try? JSONValue.parse(event.data) else {
            throw CountersignError(.unavailable, "The model provider (\(label)) sent a stream event that is not JSON.")
        }
        return try apply(data: data, event: event.event)
    }

    mutating func apply(data: JSONValue, event: String? = nil) throws -> String? {
        let type = data["type"]?.stringValue ?? event ?? ""
        let index = data["index"]?.intValue ?? 0
        switch type {
        case "message_start":
            AnthropicModel.usage(data["message"]?["usage"], into: &usage)
        case "content_block_start":
            let block = data["content_block"]
            switch block?["type"]?.stringValue {
            case "text":
                let initial = block?["text"]?.stringValue ?? ""
                blocks[index] = .text(initial)
                return initial
            case "tool_use":
                blocks[index] = .toolUse(
                    id: block?["id"]?.stringValue ?? "toolu_\(index)", name: block?["name"]?.stringValue ?? "",
                    json: "", initial: block?["input"] ?? .object([:]))
            default:
                blocks[index] = .other
            }
        case "content_block_delta":
            let delta = data["delta"]
            switch (delta?["type"]?.stringValue, blocks[index]) {
            case ("text_delta", .text(let text)?):
                let piece = delta?["text"]?.stringValue ?? ""
                blocks[index] = .text(text + piece)
                return piece
            case ("text_delta", nil):
                let piece = delta?["text"]?.stringValue ?? ""
                blocks[index] = .text(piece)
                return piece
            case ("input_json_delta", .toolUse(let id, let name, let json, let initial)?):
                blocks[index] = .toolUse(
                    id: id, name: name, json: json + (delta?["partial_json"]?.stringValue ?? ""), initial: initial)
            default:
                break
            }
        case "message_delta":
            if let reason = data["delta"]?["stop_reason"]?.stringValue { stopReason = reason }
            AnthropicModel.usage(data["usage"], into: &usage)
        case "message_stop":
            stopped = true
        case "error":
            let error = data["error"]
            let message = error?["message"]?.stringValue ?? "unknown error"
            let kind = error?["type"]?.stringValue.map { " (\($0))" } ?? ""
            throw CountersignError(
                .unavailable,
                "The model provider (\(label)) reported an error in the middle of its answer: \(message)\(kind)")
        default:
            break
        }
        return nil
    }

    func response(names: ToolNameMap) -> ModelResponse {
        var text = ""
        var calls: [ModelToolCall] = []
        for index in blocks.keys.sorted() {
            switch blocks[index] {
            case .text(let piece)?: text += piece
            case .toolUse(let id, let name, let json, let initial)?:
                let arguments =
                    json.trimmingWhitespace().isEmpty
                    ? initial.canonicalString : json
                calls.append(ModelToolCall(id: id, name: names.local(name), arguments: arguments))
            default: break
            }
        }
        return ModelResponse(text: text, toolCalls: calls)
    }
}
