import AgentRuntime
import Foundation
import GateCore
import Synchronization

/// A model that plays a fixed script and fails loudly: a call beyond the script, or a
/// request that a step's check rejects, throws; ``assertConsumed()`` throws if steps
/// are left. A test that uses it shows the exact conversation it expects.
public final class ScriptedModel: LanguageModel {
    public struct Step: Sendable {
        public var check: (@Sendable (ModelRequest) throws -> Void)?
        public var response: ModelResponse

        public init(check: (@Sendable (ModelRequest) throws -> Void)? = nil, _ response: ModelResponse) {
            self.check = check
            self.response = response
        }

        /// Asks for tool calls: `("write_file", ["path": "a.txt", "content": "x"])`.
        public static func call(_ calls: (String, JSONValue)..., text: String = "") -> Step {
            Step(
                ModelResponse(
                    text: text,
                    toolCalls: calls.enumerated().map { index, call in
                        ModelToolCall(id: "scripted_\(index)_\(call.0)", name: call.0, arguments: call.1)
                    }))
        }

        /// Answers with text; `expectLastToolResultContains` checks the latest tool result.
        public static func reply(_ text: String, expectLastToolResultContains needle: String? = nil) -> Step {
            guard let needle else { return Step(ModelResponse(text: text)) }
            let check: @Sendable (ModelRequest) throws -> Void = { request in
                guard case .tool(_, _, let content) = request.messages.last, content.contains(needle) else {
                    throw ScriptError.unexpectedRequest(
                        "expected the last message to be a tool result containing \(needle)")
                }
            }
            return Step(check: check, ModelResponse(text: text))
        }
    }

    public enum ScriptError: Error, CustomStringConvertible {
        case unexpectedCall(Int)
        case unexpectedRequest(String)
        case unconsumed(Int)

        public var description: String {
            switch self {
            case .unexpectedCall(let index): "ScriptedModel: unexpected model call #\(index + 1) beyond the script"
            case .unexpectedRequest(let why): "ScriptedModel: \(why)"
            case .unconsumed(let count): "ScriptedModel: \(count) scripted step(s) were never used"
            }
        }
    }

    private let steps: [Step]
    private let position = Mutex(0)
    private let requests = Mutex<[ModelRequest]>([])

    public init(_ steps: [Step]) {
        self.steps = steps
    }

    public func respond(to request: ModelRequest, onToken: @escaping @Sendable (String) async -> Void) async throws
        -> ModelResponse
    {
        let index = position.withLock { value in
            defer { value += 1 }; return value
        }
        requests.withLock { $0.append(request) }
        guard index < steps.count else { throw ScriptError.unexpectedCall(index) }
        try steps[index].check?(request)
        let response = steps[index].response
        if !response.text.isEmpty { await onToken(response.text) }
        return response
    }

    /// Every request the model received, in order.
    public var received: [ModelRequest] { requests.withLock { $0 } }

    public func assertConsumed() throws {
        let used = position.withLock { $0 }
        if used < steps.count { throw ScriptError.unconsumed(steps.count - used) }
    }
}
