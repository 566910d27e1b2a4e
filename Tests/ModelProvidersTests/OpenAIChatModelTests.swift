import AgentRuntime
import CountersignTesting
import Foundation
import GateCore
import Testing

@testable import ModelProviders

@Suite struct OpenAIChatModelTests {
    // MARK: Against the stub

    @Test func streamedToolCallThenAnswerWithHistory() async throws {
        let cassette = try Fixtures.cassette("openai_stream_tool_call")
        try await ModelStubServer.with(cassette.exchanges) { stub in
            let model = openAI(stub.baseURL)
            let tokens = TokenRecorder()
            let first = try await model.respond(
                to: ModelRequest(instructions: system, messages: [.user(userText)], tools: [writeFileTool]),
                onToken: tokens.onToken)
            #expect(first.text == "")
            #expect(first.toolCalls.count == 1)
            let call = try #require(first.toolCalls.first)
            #expect(call.id == "call_qV9vXgn3Y0Xh5mB4p2kD1sLa")
            #expect(call.name == "write_file")
            #expect(try JSONValue.parse(call.arguments) == ["path": "notes/todo.txt", "content": "buy milk"])
            #expect(tokens.all.isEmpty)

            let history: [ChatMessage] = [
                .user(userText), .assistant(text: "", toolCalls: first.toolCalls),
                .tool(callID: call.id, name: "write_file", content: "Wrote 8 bytes to notes/todo.txt."),
            ]
            let second = try await model.respond(
                to: ModelRequest(instructions: system, messages: history, tools: [writeFileTool]),
                onToken: tokens.onToken)
            #expect(second.text == "I wrote buy milk to notes/todo.txt.")
            #expect(second.toolCalls.isEmpty)
            #expect(tokens.all.count == 10)
            #expect(tokens.all.joined() == second.text)
            #expect(model.usage.usage == ModelUsage(requests: 2, inputTokens: 870, outputTokens: 38))
            try stub.assertConsumed()
            let headers = stub.received[0].headers
            #expect(headers["content-type"] == "application/json")
        }
    }

    @Test func wholeAnswersWithoutStreaming() async throws {
        let cassette = try Fixtures.cassette("openai_whole_tool_call")
        try await ModelStubServer.with(cassette.exchanges) { stub in
            let model = openAI(stub.baseURL, settings: ModelSettings(stream: false))
            let tokens = TokenRecorder()
            let first = try await model.respond(
                to: ModelRequest(instructions: system, messages: [.user(userText)], tools: [writeFileTool]),
                onToken: tokens.onToken)
            let call = try #require(first.toolCalls.first)
            #expect(call.arguments == #"{"path":"notes/todo.txt","content":"buy milk"}"#)
            let second = try await model.respond(
                to: ModelRequest(
                    instructions: system,
                    messages: [
                        .user(userText), .assistant(text: "", toolCalls: first.toolCalls),
                        .tool(callID: call.id, name: "write_file", content: "Wrote 8 bytes to notes/todo.txt."),
                    ], tools: [writeFileTool]), onToken: tokens.onToken)
            #expect(second.text == "I wrote buy milk to notes/todo.txt.")
            #expect(tokens.all == ["I wrote buy milk to notes/todo.txt."])
            #expect(stub.received[0].json?["stream"] == nil)
            #expect(stub.received[0].json?["stream_options"] == nil)
            try stub.assertConsumed()
        }
    }

    @Test func twoParallelCallsAssembledByIndex() async throws {
        let cassette = try Fixtures.cassette("openai_stream_parallel")
        try await ModelStubServer.with(cassette.exchanges) { stub in
            let model = openAI(stub.baseURL)
            let tokens = TokenRecorder()
            let response = try await model.respond(
                to: ModelRequest(
                    instructions: "", messages: [.user("write a.txt alpha and b.txt beta")], tools: [writeFileTool]),
                onToken: tokens.onToken)
            #expect(response.text == "I'll write both files.")
            #expect(tokens.all == ["I'll write", " both files."])
            #expect(response.toolCalls.map(\.id) == ["call_A1b2C3d4E5f6G7h8I9j0K1l2", "call_M3n4O5p6Q7r8S9t0U1v2W3x4"])
            #expect(
                try response.toolCalls.map { try JSONValue.parse($0.arguments) } == [
                    ["path": "a.txt", "content": "alpha"], ["path": "b.txt", "content": "beta"],
                ])
            #expect(model.usage.usage == ModelUsage(requests: 1, inputTokens: 398, outputTokens: 64))
            let sent = try #require(stub.received.first?.json)
            #expect(sent["messages"] == [["role": "user", "content": "write a.txt alpha and b.txt beta"]])
            try stub.assertConsumed()
        }
    }

    @Test func serverThatIgnoresStreamIsReadWhole() async throws {
        try await ModelStubServer.with(try Fixtures.cassette("openai_ignores_stream").exchanges) { stub in
            let response = try await openAI(stub.baseURL).respond(
                to: ModelRequest(instructions: "", messages: [.user(userText)], tools: [writeFileTool]),
                onToken: { _ in })
            #expect(response.toolCalls.map(\.name) == ["write_file"])
            try stub.assertConsumed()
        }
    }

    @Test func errorInTheMiddleOfAStreamFailsWithItsMessage() async throws {
        try await ModelStubServer.with(try Fixtures.cassette("openai_midstream_error").exchanges) { stub in
            let error = await providerError {
                _ = try await openAI(stub.baseURL).respond(
                    to: ModelRequest(instructions: "", messages: [.user("hi")], tools: []), onToken: { _ in })
            }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("The model is overloaded. Please try again later.") == true)
        }
    }

    @Test func aStreamThatEndsEarlyIsAnError() async throws {
        try await ModelStubServer.with(try Fixtures.cassette("openai_truncated_stream").exchanges) { stub in
            let error = await providerError {
                _ = try await openAI(stub.baseURL).respond(
                    to: ModelRequest(instructions: "", messages: [.user("hi")], tools: [writeFileTool]),
                    onToken: { _ in })
            }
            #expect(error?.message.contains("ended its stream before the answer was complete") == true)
            try stub.assertConsumed()
        }
    }

    @Test func cutOffArgumentsStayRawText() async throws {
        let cassette = try Fixtures.cassette("openai_invalid_arguments")
        try await ModelStubServer.with(Array(cassette.exchanges.prefix(1))) { stub in
            let response = try await openAI(stub.baseURL).respond(
                to: ModelRequest(instructions: system, messages: [.user(userText)], tools: [writeFileTool]),
                onToken: { _ in })
            #expect(response.toolCalls.first?.arguments == #"{"path":"notes/todo.txt","content":"buy mi"#)
            #expect((try? JSONValue.parse(response.toolCalls[0].arguments)) == nil)
            try stub.assertConsumed()
        }
    }

    // MARK: Delta assembly without a server

    func chunk(_ toolCalls: [JSONValue], content: String? = nil) -> JSONValue {
        var delta: [String: JSONValue] = ["tool_calls": .array(toolCalls)]
        if let content { delta["content"] = .string(content) }
        return ["choices": [["index": 0, "delta": .object(delta), "finish_reason": nil]]]
    }

    @Test func interleavedDeltasOfTwoCalls() throws {
        var assembler = OpenAIStreamAssembler(label: "test")
        let chunks: [JSONValue] = [
            chunk([
                ["index": 0, "id": "call_a", "type": "function", "function": ["name": "write_file", "arguments": ""]]
            ]),
            chunk([
                [
                    "index": 1, "id": "call_b", "type": "function",
                    "function": ["name": "read_file", "arguments": "{\"pa"],
                ]
            ]),
            chunk([["index": 0, "function": ["arguments": "{\"path\":\"x\","]]]),
            chunk([["index": 1, "function": ["arguments": "th\":\"y\"}"]]]),
            chunk([["index": 0, "function": ["arguments": "\"content\":\"z\"}"]]], content: "ok"),
            ["choices": [], "usage": ["prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12]],
        ]
        for item in chunks { _ = try assembler.apply(chunk: item) }
        let response = assembler.response(names: ToolNameMap(["write_file", "read_file"]))
        #expect(response.text == "ok")
        #expect(
            response.toolCalls == [
                ModelToolCall(id: "call_a", name: "write_file", arguments: #"{"path":"x","content":"z"}"#),
                ModelToolCall(id: "call_b", name: "read_file", arguments: #"{"path":"y"}"#),
            ])
        #expect(assembler.usage == ModelUsage(requests: 1, inputTokens: 5, outputTokens: 7))
    }

    /// Some compatible servers send each whole call with index 0: a new id means a new call.
    @Test func reusedIndexWithANewIDIsANewCall() throws {
        var assembler = OpenAIStreamAssembler(label: "test")
        _ = try assembler.apply(
            chunk: chunk([["index": 0, "id": "c1", "function": ["name": "read_file", "arguments": "{}"]]]))
        _ = try assembler.apply(
            chunk: chunk([["index": 0, "id": "c2", "function": ["name": "write_file", "arguments": "{}"]]]))
        let response = assembler.response(names: ToolNameMap([]))
        #expect(response.toolCalls.map(\.id) == ["c1", "c2"])
        #expect(response.toolCalls.map(\.name) == ["read_file", "write_file"])
    }

    @Test func missingIDsAndObjectArgumentsAreTolerated() throws {
        var assembler = OpenAIStreamAssembler(label: "test")
        _ = try assembler.apply(chunk: chunk([["function": ["name": "read_file", "arguments": ["path": "a"]]]]))
        let response = assembler.response(names: ToolNameMap([]))
        #expect(response.toolCalls == [ModelToolCall(id: "call_0", name: "read_file", arguments: #"{"path":"a"}"#)])
    }

    @Test func doneAndBlankEventsAreIgnored() throws {
        var assembler = OpenAIStreamAssembler(label: "test")
        #expect(try assembler.apply(SSEEvent(data: "[DONE]")) == nil)
        #expect(assembler.done)
        #expect(throws: CountersignError.self) { try assembler.apply(SSEEvent(data: "{not json")) }
    }

    // MARK: History mapping

    @Test func historyMapsToChatCompletionsMessages() throws {
        let model = OpenAIChatModel(
            name: "m", provider: OpenAIProvider(baseURL: "http://127.0.0.1:1/v1/", apiKey: nil),
            settings: ModelSettings(maxTokens: 300, temperature: 0.2, toolChoice: .required, parallelToolCalls: false))
        let calls = [
            ModelToolCall(id: "c1", name: "write_file", arguments: #"{"path":"a","content":"x"}"#),
            ModelToolCall(id: "c2", name: "git.status", arguments: "{not json"),
        ]
        let request = ModelRequest(
            instructions: "Be brief.",
            messages: [
                .user("hi"), .assistant(text: "", toolCalls: calls),
                .tool(callID: "c1", name: "write_file", content: "Wrote"),
                .tool(callID: "c2", name: "git.status", content: "bad args"), .assistant(text: "Done.", toolCalls: []),
                .user("again"),
            ],
            tools: [
                writeFileTool,
                ToolDescriptor(
                    name: "git.status", description: "d", inputSchema: ["type": "object"],
                    flags: ToolFlags(effect: .read)),
            ])
        let names = ToolNameMap(request.tools.map(\.name))
        let body = model.requestBody(for: request, names: names)
        #expect(
            body["messages"] == [
                ["role": "system", "content": "Be brief."],
                ["role": "user", "content": "hi"],
                [
                    "role": "assistant", "content": nil,
                    "tool_calls": [
                        [
                            "id": "c1", "type": "function",
                            "function": ["name": "write_file", "arguments": #"{"path":"a","content":"x"}"#],
                        ],
                        [
                            "id": "c2", "type": "function",
                            "function": ["name": "git_status", "arguments": "{not json"],
                        ],
                    ],
                ],
                ["role": "tool", "tool_call_id": "c1", "content": "Wrote"],
                ["role": "tool", "tool_call_id": "c2", "content": "bad args"],
                ["role": "assistant", "content": "Done."],
                ["role": "user", "content": "again"],
            ])
        #expect(body["tools"]?.arrayValue?.map { $0["function"]?["name"] } == ["write_file", "git_status"])
        #expect(body["tools"]?.arrayValue?[0]["function"]?["parameters"] == writeFileTool.inputSchema)
        #expect(body["tool_choice"] == "required")
        #expect(body["parallel_tool_calls"] == false)
        #expect(body["max_tokens"] == 300)
        #expect(body["temperature"] == 0.2)
        #expect(body["stream"] == true)
        #expect(body["stream_options"] == ["include_usage": true])
        #expect(names.local("git_status") == "git.status")
    }

    @Test func noToolsMeansNoToolChoiceAndOpenAIWantsMaxCompletionTokens() {
        let model = OpenAIChatModel(
            name: "gpt-4.1", provider: OpenAIProvider(apiKey: "k"),
            settings: ModelSettings(maxTokens: 50, toolChoice: .tool("write_file"), stream: false))
        let body = model.requestBody(
            for: ModelRequest(instructions: "", messages: [.user("x")], tools: []), names: ToolNameMap([]))
        #expect(body["tools"] == nil)
        #expect(body["tool_choice"] == nil)
        #expect(body["max_completion_tokens"] == 50)
        #expect(body["max_tokens"] == nil)
        #expect(body["messages"] == [["role": "user", "content": "x"]])
        let forced = model.requestBody(
            for: ModelRequest(instructions: "", messages: [.user("x")], tools: [writeFileTool]),
            names: ToolNameMap(["write_file"]))
        #expect(forced["tool_choice"] == ["type": "function", "function": ["name": "write_file"]])
        #expect(OpenAIProvider(apiKey: "k").requestHeaders()["Authorization"] == ["Bearer k"])
        #expect(
            OpenAIProvider(baseURL: "http://localhost:11434/v1", apiKey: nil).requestHeaders()["Authorization"].isEmpty)
    }
}
