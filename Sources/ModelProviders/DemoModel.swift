import AgentRuntime
import Foundation
import GateCore

/// The scripted, offline model of the built-in `demo` agent (SPEC §9). It understands
/// `write PATH TEXT…`, `append PATH TEXT…`, `read PATH`, `list [DIR]`, `delete PATH`
/// and `fetch URL`, several joined by ` and ` (parallel tool calls in one turn), and
/// answers tool results with one sentence that names what happened.
public struct DemoModel: LanguageModel {
    public init() {}

    public static let help =
        "I am the offline demo agent. I understand: write PATH TEXT, append PATH TEXT, read PATH, list [DIR], "
        + "delete PATH, fetch URL — join several with \" and \"."

    public func respond(to request: ModelRequest, onToken: @escaping @Sendable (String) async -> Void) async throws
        -> ModelResponse
    {
        let response = Self.answer(request)
        if !response.text.isEmpty { await onToken(response.text) }
        return response
    }

    static func answer(_ request: ModelRequest) -> ModelResponse {
        guard let last = request.messages.last else { return ModelResponse(text: help) }
        switch last {
        case .user(let text):
            let calls = parse(text, step: request.messages.count, allowed: Set(request.tools.map(\.name)))
            guard let calls, !calls.isEmpty else { return ModelResponse(text: help) }
            return ModelResponse(text: "", toolCalls: calls)
        case .tool:
            return ModelResponse(text: summarize(request.messages))
        case .assistant:
            return ModelResponse(text: help)
        }
    }

    /// Parses the commands of a message into tool calls; nil when any part is not a command.
    static func parse(_ text: String, step: Int, allowed: Set<String>) -> [ModelToolCall]? {
        let parts = text.components(separatedBy: " and ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        var calls: [ModelToolCall] = []
        for (index, part) in parts.enumerated() {
            let words = part.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let verb = words.first?.lowercased() else { return nil }
            let rest = Array(words.dropFirst())
            let id = "demo_\(step)_\(index)"
            let call: ModelToolCall
            switch (verb, rest.count) {
            case ("write", 2...):
                call = ModelToolCall(
                    id: id, name: "write_file",
                    arguments: ["path": .string(rest[0]), "content": .string(rest.dropFirst().joined(separator: " "))])
            case ("append", 2...):
                call = ModelToolCall(
                    id: id, name: "append_file",
                    arguments: ["path": .string(rest[0]), "content": .string(rest.dropFirst().joined(separator: " "))])
            case ("read", 1):
                call = ModelToolCall(id: id, name: "read_file", arguments: ["path": .string(rest[0])])
            case ("list", 0):
                call = ModelToolCall(id: id, name: "list_files", arguments: JSONValue.object([:]))
            case ("list", 1):
                call = ModelToolCall(id: id, name: "list_files", arguments: ["path": .string(rest[0])])
            case ("delete", 1):
                call = ModelToolCall(id: id, name: "delete_file", arguments: ["path": .string(rest[0])])
            case ("fetch", 1):
                call = ModelToolCall(id: id, name: "http_fetch", arguments: ["url": .string(rest[0])])
            default:
                return nil
            }
            guard allowed.isEmpty || allowed.contains(call.name) else { return nil }
            calls.append(call)
        }
        return calls
    }

    /// One sentence about the results of the latest tool step.
    static func summarize(_ messages: [ChatMessage]) -> String {
        // The tool results at the end of the history, and the calls that asked for them.
        let results = messages.reversed().prefix { message in
            if case .tool = message { return true }
            return false
        }.reversed()
        var calls: [String: ModelToolCall] = [:]
        if let asked = messages.dropLast(results.count).last, case .assistant(_, let toolCalls) = asked {
            for call in toolCalls { calls[call.id] = call }
        }
        let phrases = results.compactMap { message -> String? in
            guard case .tool(let callID, let name, let content) = message else { return nil }
            return phrase(call: calls[callID], name: name, content: content)
        }
        return phrases.joined(separator: "; ")
    }

    static func phrase(call: ModelToolCall?, name: String, content: String) -> String {
        let args = (call.flatMap { try? JSONValue.parse($0.arguments) }) ?? .object([:])
        let path = args["path"]?.stringValue ?? args["url"]?.stringValue ?? "the file"
        let verb: String =
            switch name {
            case "write_file": "write \(path)"
            case "append_file": "append to \(path)"
            case "delete_file": "delete \(path)"
            case "read_file": "read \(path)"
            case "list_files": "list \(args["path"]?.stringValue ?? "the workspace")"
            case "http_fetch": "fetch \(path)"
            default: "run \(name)"
            }
        var body = content
        var edited = false
        if body.hasPrefix("Note: the person edited this call") {
            edited = true
            body = body.split(separator: "\n", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        }
        if body.hasPrefix("The person declined this call") {
            let reason = body.components(separatedBy: "Reason: ").dropFirst().joined(separator: "Reason: ")
            return "I did not \(verb): you declined (\(reason))."
        }
        if body.hasPrefix("This call was not approved in time") {
            return "I did not \(verb): the confirmation expired before anyone approved it."
        }
        if body.hasPrefix("The session was cancelled") { return "I did not \(verb): the session was cancelled." }
        if body.hasPrefix("The outcome of this call is unknown") {
            return "I do not know whether I managed to \(verb): the server stopped while it was running."
        }
        if body.hasPrefix("Policy does not allow") { return "I did not \(verb): policy does not allow it." }
        let editedNote = edited ? " (as you edited it)" : ""
        switch name {
        case "write_file" where body.hasPrefix("Wrote "): return "I wrote \(path)\(editedNote)."
        case "append_file" where body.hasPrefix("Appended "): return "I appended a line to \(path)\(editedNote)."
        case "delete_file" where body.hasPrefix("Deleted "): return "I deleted \(path)\(editedNote)."
        case "read_file" where !body.hasPrefix("No file at") && !body.contains("workspace"): return body
        case "list_files" where !body.hasPrefix("No folder"): return "\(args["path"]?.stringValue ?? "."): \(body)"
        case "http_fetch" where body.hasPrefix("HTTP "):
            return "I fetched \(path): \(body.prefix(200))"
        default: return "I could not \(verb): \(body)"
        }
    }
}
