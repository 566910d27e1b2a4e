import AgentRuntime
import CountersignTesting
import Foundation
import GateCore
import Testing

@testable import ModelProviders

@Suite struct AnthropicModelTests {
    func conversation(_ model: AnthropicModel, tokens: TokenRecorder) async throws -> (ModelResponse, ModelResponse) {
        let first = try await model.respond(
            to: ModelRequest(instructions: system, messages: [.user(userText)], tools: [writeFileTool]),
            onToken: tokens.onToken)
        let call = try #require(first.toolCalls.first)
        let second = try await model.respond(
            to: ModelRequest(
                instructions: system,
                messages: [
                    .user(userText), .assistant(text: first.text, toolCalls: first.toolCalls),
                    .tool(callID: call.id, name: call.name, content: "Wrote 8 bytes to notes/todo.txt."),
                ], tools: [writeFileTool]), onToken: tokens.onToken)
        return (first, second)
    }

    @Test func streamedTextAndToolUseThenAnswerWithToolResult() async throws {
        try await ModelStubServer.with(try Fixtures.cassette("anthropic_stream_tool_call").exchanges) { stub in
            let model = anthropic(stub.baseURL, settings: ModelSettings(maxTokens: 1024))
            let tokens = TokenRecorder()
            let (first, second) = try await conversation(model, tokens: tokens)
            #expect(first.text == "I'll save that note now.")
            #expect(first.toolCalls.map(\.id) == ["toolu_01A09q90qw90lq917835lq9R"])
            #expect(
                try JSONValue.parse(first.toolCalls[0].arguments) == ["path": "notes/todo.txt", "content": "buy milk"])
            #expect(second.text == "I wrote buy milk to notes/todo.txt.")
            #expect(tokens.all == ["I'll save", " that note", " now.", "I wrote", " buy milk to", " notes/todo.txt."])
            #expect(model.usage.usage == ModelUsage(requests: 2, inputTokens: 1052, outputTokens: 103))
            try stub.assertConsumed()
        }
    }

    @Test func wholeMessagesWithoutStreaming() async throws {
        try await ModelStubServer.with(try Fixtures.cassette("anthropic_whole_tool_call").exchanges) { stub in
            let model = anthropic(stub.baseURL, settings: ModelSettings(maxTokens: 1024, stream: false))
            let tokens = TokenRecorder()
            let (first, second) = try await conversation(model, tokens: tokens)
            #expect(first.toolCalls.first?.arguments == #"{"content":"buy milk","path":"notes/todo.txt"}"#)
            #expect(second.text == "I wrote buy milk to notes/todo.txt.")
            #expect(tokens.all == ["I'll save that note now.", "I wrote buy milk to notes/todo.txt."])
            #expect(stub.received[0].json?["stream"] == nil)
            try stub.assertConsumed()
        }
    }

    @Test func parallelToolUseBlocks() async throws {
        try await ModelStubServer.with(try Fixtures.cassette("anthropic_stream_parallel").exchanges) { stub in
            let response = try await anthropic(stub.baseURL).respond(
                to: ModelRequest(instructions: "", messages: [.user("two files")], tools: [writeFileTool]),
                onToken: { _ in })
            #expect(response.text == "Writing both.")
            #expect(
                response.toolCalls.map(\.id) == ["toolu_01Aa1Bb2Cc3Dd4Ee5Ff6Gg7H", "toolu_01Hh8Ii9Jj0Kk1Ll2Mm3Nn4O"])
            #expect(
                try response.toolCalls.map { try JSONValue.parse($0.arguments) } == [
                    ["path": "a.txt", "content": "alpha"], ["path": "b.txt", "content": "beta"],
                ])
            let sent = try #require(stub.received.first?.json)
            #expect(sent["max_tokens"] == 4096)
            #expect(sent["system"] == nil)
            try stub.assertConsumed()
        }
    }

    @Test func errorEventFailsWithItsMessage() async throws {
        try await ModelStubServer.with(try Fixtures.cassette("anthropic_stream_error_event").exchanges) { stub in
            let error = await providerError {
                _ = try await anthropic(stub.baseURL).respond(
                    to: ModelRequest(instructions: "", messages: [.user("hi")], tools: []), onToken: { _ in })
            }
            #expect(error?.message.contains("Overloaded (overloaded_error)") == true)
        }
    }

    // MARK: Assembly without a server

    @Test func toolUseWithoutInputDeltasUsesTheStartInput() throws {
        var assembler = AnthropicStreamAssembler(label: "test")
        _ = try assembler.apply(data: [
            "type": "content_block_start", "index": 0,
            "content_block": ["type": "tool_use", "id": "toolu_1", "name": "list_files", "input": [:]],
        ])
        _ = try assembler.apply(data: ["type": "content_block_stop", "index": 0])
        _ = try assembler.apply(data: [
            "type": "content_block_start", "index": 1, "content_block": ["type": "thinking", "thinking": ""],
        ])
        _ = try assembler.apply(data: [
            "type": "content_block_delta", "index": 1, "delta": ["type": "thinking_delta", "thinking": "hmm"],
        ])
        _ = try assembler.apply(data: [
            "type": "message_delta", "delta": ["stop_reason": "tool_use"], "usage": ["output_tokens": 9],
        ])
        let response = assembler.response(names: ToolNameMap(["list_files"]))
        #expect(
            response
                == ModelResponse(
                    text: "", toolCalls: [ModelToolCall(id: "toolu_1", name: "list_files", arguments: "{}")]))
        #expect(assembler.stopReason == "tool_use")
        #expect(assembler.usage.outputTokens == 9)
    }

    // MARK: History mapping

    @Test func historyMapsToMessagesWithToolUseAndMergedToolResults() {
        let model = AnthropicModel(
            name: "claude", provider: AnthropicProvider(baseURL: "https://example.test/v1", apiKey: "k"),
            settings: ModelSettings(temperature: 0.5, toolChoice: .required, parallelToolCalls: false, stream: false))
        let calls = [
            ModelToolCall(id: "toolu_a", name: "write_file", arguments: #"{"path":"a","content":"x"}"#),
            ModelToolCall(id: "toolu_b", name: "git.status", arguments: "{cut"),
        ]
        let request = ModelRequest(
            instructions: "Be brief.",
            messages: [
                .user("hi"), .assistant(text: "On it.", toolCalls: calls),
                .tool(callID: "toolu_a", name: "write_file", content: "Wrote"),
                .tool(callID: "toolu_b", name: "git.status", content: "bad args"),
                .user("and now?"), .assistant(text: "", toolCalls: []), .assistant(text: "Done.", toolCalls: []),
            ],
            tools: [
                writeFileTool,
                ToolDescriptor(
                    name: "git.status", description: "d", inputSchema: ["type": "object"],
                    flags: ToolFlags(effect: .read)),
            ])
        let body = model.requestBody(for: request, names: ToolNameMap(request.tools.map(\.name)))
        #expect(body["system"] == "Be brief.")
        #expect(
            body["messages"] == [
                ["role": "user", "content": "hi"],
                [
                    "role": "assistant",
                    "content": [
                        ["type": "text", "text": "On it."],
                        [
                            "type": "tool_use", "id": "toolu_a", "name": "write_file",
                            "input": ["path": "a", "content": "x"],
                        ],
                        ["type": "tool_use", "id": "toolu_b", "name": "git_status", "input": ["INVALID_JSON": "{cut"]],
                    ],
                ],
                [
                    "role": "user",
                    "content": [
                        ["type": "tool_result", "tool_use_id": "toolu_a", "content": "Wrote"],
                        ["type": "tool_result", "tool_use_id": "toolu_b", "content": "bad args"],
                        ["type": "text", "text": "and now?"],
                    ],
                ],
                ["role": "assistant", "content": "Done."],
            ])
        #expect(body["tools"]?.arrayValue?[1]["name"] == "git_status")
        #expect(body["tools"]?.arrayValue?[0]["input_schema"] == writeFileTool.inputSchema)
        #expect(body["tool_choice"] == ["type": "any", "disable_parallel_tool_use": true])
        #expect(body["max_tokens"] == 4096)
        #expect(body["temperature"] == 0.5)
        #expect(body["stream"] == nil)
        #expect(model.provider.messagesURL == "https://example.test/v1/messages")
        let headers = model.provider.requestHeaders()
        #expect(headers["x-api-key"] == ["k"])
        #expect(headers["anthropic-version"] == ["2023-06-01"])
    }

    @Test func toolChoiceMapping() {
        func choice(_ settings: ModelSettings) -> JSONValue? {
            AnthropicModel(name: "c", provider: AnthropicProvider(apiKey: "k"), settings: settings)
                .requestBody(
                    for: ModelRequest(instructions: "", messages: [.user("x")], tools: [writeFileTool]),
                    names: ToolNameMap(["write_file"]))["tool_choice"]
        }
        #expect(choice(ModelSettings()) == nil)
        #expect(choice(ModelSettings(toolChoice: .auto)) == ["type": "auto"])
        #expect(choice(ModelSettings(toolChoice: .noTools)) == ["type": "none"])
        #expect(choice(ModelSettings(toolChoice: .tool("write_file"))) == ["type": "tool", "name": "write_file"])
        #expect(choice(ModelSettings(parallelToolCalls: false)) == ["type": "auto", "disable_parallel_tool_use": true])
        #expect(AnthropicProvider(apiKey: "k").messagesURL == "https://api.anthropic.com/v1/messages")
    }
}
