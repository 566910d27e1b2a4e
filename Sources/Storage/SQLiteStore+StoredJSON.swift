import AgentRuntime
import Foundation
import GateCore

/// The JSON the store keeps for messages, tool outputs and decisions, written with the
/// canonical writer and read with the fast parser instead of `JSONEncoder` and
/// `JSONDecoder`, which were ~5% of a gate cycle's CPU (the history is decoded at every
/// model step). The text has the shape the types' `Codable` conformances write, keys
/// sorted, so rows written by either can be read by both.
protocol StoredJSON {
    var storedJSON: JSONValue { get }
    init(storedJSON: JSONValue) throws
}

/// A stored JSON column that doesn't have the expected shape.
struct StoredJSONError: Error, CustomStringConvertible {
    let description: String
}

extension JSONValue {
    /// The member `key` as a string; throws when it is missing or not a string.
    fileprivate func string(_ key: String, of type: String) throws -> String {
        guard let value = self[key]?.stringValue else {
            throw StoredJSONError(description: "stored \(type) has no string '\(key)'")
        }
        return value
    }

    /// The member `key` as a string, nil when it is missing or null.
    fileprivate func optionalString(_ key: String, of type: String) throws -> String? {
        switch self[key] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        default: throw StoredJSONError(description: "stored \(type) has a '\(key)' that is not a string")
        }
    }

    /// The member `key`, nil when it is missing or null.
    fileprivate func optional(_ key: String) -> JSONValue? {
        if case .null? = self[key] { return nil }
        return self[key]
    }
}

extension ModelToolCall: StoredJSON {
    var storedJSON: JSONValue {
        ["id": .string(id), "name": .string(name), "arguments": .string(arguments)]
    }

    init(storedJSON json: JSONValue) throws {
        self.init(
            id: try json.string("id", of: "tool call"), name: try json.string("name", of: "tool call"),
            arguments: try json.string("arguments", of: "tool call"))
    }
}

extension ChatMessage: StoredJSON {
    var storedJSON: JSONValue {
        switch self {
        case .user(let text):
            return ["role": "user", "content": .string(text)]
        case .assistant(let text, let calls):
            var json: JSONValue = ["role": "assistant", "content": .string(text)]
            if !calls.isEmpty { json = json.setting("tool_calls", .array(calls.map(\.storedJSON))) }
            return json
        case .tool(let callID, let name, let content):
            return ["role": "tool", "call_id": .string(callID), "name": .string(name), "content": .string(content)]
        }
    }

    init(storedJSON json: JSONValue) throws {
        switch try json.string("role", of: "message") {
        case "user":
            self = .user(try json.string("content", of: "message"))
        case "assistant":
            let calls = try json.optional("tool_calls").map { value -> [ModelToolCall] in
                guard let items = value.arrayValue else {
                    throw StoredJSONError(description: "stored message has 'tool_calls' that is not an array")
                }
                return try items.map(ModelToolCall.init(storedJSON:))
            }
            self = .assistant(text: try json.string("content", of: "message"), toolCalls: calls ?? [])
        case "tool":
            self = .tool(
                callID: try json.string("call_id", of: "message"), name: try json.string("name", of: "message"),
                content: try json.string("content", of: "message"))
        case let role:
            throw StoredJSONError(description: "stored message has an unknown role '\(role)'")
        }
    }
}

extension ToolOutput: StoredJSON {
    var storedJSON: JSONValue {
        var json: JSONValue = ["success": .bool(success), "content": .string(content)]
        if let data { json = json.setting("data", data) }
        return json
    }

    init(storedJSON json: JSONValue) throws {
        guard let success = json["success"]?.boolValue else {
            throw StoredJSONError(description: "stored tool output has no boolean 'success'")
        }
        self.init(success: success, content: try json.string("content", of: "tool output"), data: json.optional("data"))
    }
}

extension Decision: StoredJSON {
    var storedJSON: JSONValue {
        var json: JSONValue = [
            "decision": .string(decision.rawValue), "remember": .string(remember.rawValue),
            "decidedBy": .string(decidedBy), "decidedAt": .string(Timestamp.format(decidedAt)),
        ]
        if let reason { json = json.setting("reason", .string(reason)) }
        if let editedParams { json = json.setting("editedParams", editedParams) }
        if let originalParams { json = json.setting("originalParams", originalParams) }
        return json
    }

    init(storedJSON json: JSONValue) throws {
        guard let decision = DecisionKind(rawValue: try json.string("decision", of: "decision")),
            let remember = Remember(rawValue: try json.string("remember", of: "decision")),
            let decidedAt = Timestamp.parse(try json.string("decidedAt", of: "decision"))
        else { throw StoredJSONError(description: "stored decision has an unknown value") }
        self.init(
            decision: decision, reason: try json.optionalString("reason", of: "decision"),
            editedParams: json.optional("editedParams"), originalParams: json.optional("originalParams"),
            remember: remember, decidedBy: try json.string("decidedBy", of: "decision"), decidedAt: decidedAt)
    }
}

extension SQLiteStore {
    static func encodeStored<T: StoredJSON>(_ value: T) -> String {
        value.storedJSON.canonicalString
    }

    /// ``encodeStored(_:)`` for a column that may be NULL.
    static func encodeStored<T: StoredJSON>(_ value: T?) -> String? {
        value.map { $0.storedJSON.canonicalString }
    }

    static func decodeStored<T: StoredJSON>(_ type: T.Type, _ text: String) throws -> T {
        try T(storedJSON: try JSONValue.parse(text))
    }

    /// ``decodeStored(_:_:)`` of a column that may be NULL.
    static func decodeStoredIfPresent<T: StoredJSON>(_ type: T.Type, _ text: String?) throws -> T? {
        try text.map { try decodeStored(type, $0) }
    }
}
