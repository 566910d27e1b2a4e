import AgentRuntime
import Foundation
import GateCore
import Testing

@testable import Storage

/// The store writes messages, tool outputs and decisions with the canonical writer and
/// reads them with the fast parser. Rows written before that (by `JSONEncoder`) must
/// still read back, and the new rows must read back through `JSONDecoder` too.
@Suite("Stored JSON")
struct StoredJSONTests {
    static let params: JSONValue = [
        "path": "notes/ünïcode \"quoted\" \\ back/slash\n", "n": 3, "x": 1.5, "list": [true, .null, ["k": "v"]],
    ]

    static let messages: [ChatMessage] = [
        .user("write notes/todo.txt buy milk"),
        .user("tab\tand control \u{1}"),
        .assistant(text: "", toolCalls: []),
        .assistant(
            text: "On it.",
            toolCalls: [
                ModelToolCall(id: "call_1", name: "write_file", arguments: params),
                ModelToolCall(id: "call_2", name: "read_file", arguments: "{not json"),
            ]),
        .tool(callID: "call_1", name: "write_file", content: "Wrote 8 bytes."),
    ]

    static let outputs: [ToolOutput] = [
        ToolOutput(success: true, content: "Wrote 8 bytes.", data: ["path": "a.txt", "bytes": 8]),
        ToolOutput(success: false, content: "No such file."),
        ToolOutput(success: true, content: "", data: params),
    ]

    static let decisions: [Decision] = [
        Decision(
            decision: .approve, reason: nil, editedParams: nil, originalParams: nil, remember: .once,
            decidedBy: "alice", decidedAt: Date(timeIntervalSince1970: 1_764_000_000.123)),
        Decision(
            decision: .approve, reason: "looks right", editedParams: params, originalParams: ["path": "x"],
            remember: .session, decidedBy: "bob", decidedAt: Date(timeIntervalSince1970: 1_764_000_001)),
        Decision(
            decision: .deny, reason: "no", editedParams: nil, originalParams: nil, remember: .once,
            decidedBy: "carol", decidedAt: Date(timeIntervalSince1970: 1_764_000_002.5)),
    ]

    /// Writes `value` the old way and the new way, and reads each with the other.
    func roundTrips<T: StoredJSON & Codable & Equatable>(_ value: T) throws {
        let old = String(decoding: try JSONCoding.encoder.encode(value), as: UTF8.self)
        #expect(try SQLiteStore.decodeStored(T.self, old) == value, "old row: \(old)")
        let new: String = SQLiteStore.encodeStored(value)
        #expect(try JSONCoding.decoder.decode(T.self, from: Data(new.utf8)) == value, "new row: \(new)")
        #expect(try SQLiteStore.decodeStored(T.self, new) == value)
    }

    @Test("Messages read back whichever way they were written", arguments: messages)
    func messagesRoundTrip(_ message: ChatMessage) throws { try roundTrips(message) }

    @Test("Tool outputs read back whichever way they were written", arguments: outputs)
    func outputsRoundTrip(_ output: ToolOutput) throws { try roundTrips(output) }

    @Test("Decisions read back whichever way they were written", arguments: decisions)
    func decisionsRoundTrip(_ decision: Decision) throws { try roundTrips(decision) }

    @Test("A row of the wrong shape is an error, not a default")
    func wrongShapesThrow() {
        #expect(throws: (any Error).self) { try SQLiteStore.decodeStored(ChatMessage.self, #"{"role":"robot"}"#) }
        #expect(throws: (any Error).self) { try SQLiteStore.decodeStored(ChatMessage.self, #"{"content":"hi"}"#) }
        #expect(throws: (any Error).self) {
            try SQLiteStore.decodeStored(ChatMessage.self, #"{"role":"assistant","content":"","tool_calls":{}}"#)
        }
        #expect(throws: (any Error).self) { try SQLiteStore.decodeStored(ToolOutput.self, #"{"content":"x"}"#) }
        #expect(throws: (any Error).self) {
            try SQLiteStore.decodeStored(
                Decision.self, #"{"decision":"maybe","remember":"once","decidedBy":"a","decidedAt":"x"}"#)
        }
        #expect(throws: (any Error).self) { try SQLiteStore.decodeStored(Decision.self, "not json") }
    }
}
