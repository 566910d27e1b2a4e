import AgentRuntime
import Foundation
import GateCore
import Testing

@Suite("Audit hash")
struct AuditHashTests {
    /// The store hashes with the canonical text of `data` it already made; that must be
    /// the hash of the entry's canonical JSON object, which `countersign audit verify`
    /// and `GET /v1/audit/verify` recompute from the stored fields.
    static let entries: [(String, String, String, JSONValue)] = [
        ("alice", "tool_call.executed", "conf_1", ["path": "notes/todo.txt", "bytes": 8]),
        ("bob \"the approver\"", "confirmation.decided", "ses_\u{e9}\\x", ["reason": "line\nbreak\ttab", "n": 1.5]),
        ("", "", "", [:]),
        ("k/sk_ab", "key.created", "\u{1}\u{1f}", ["nested": ["a": [1, 2, ["b": JSONValue.null]]], "z": true]),
    ]

    @Test("The text-built hash equals the hash of the entry's canonical JSON object", arguments: entries)
    func agrees(actor: String, action: String, subject: String, data: JSONValue) {
        let at = Date(timeIntervalSince1970: 1_795_000_000.123)
        let expected = Digest.sha256Hex(
            JSONValue.object([
                "namespace_id": "ns_x", "at": .string(Timestamp.format(at)), "actor": .string(actor),
                "action": .string(action), "subject": .string(subject), "data": data, "prev_hash": "genesis",
            ]).canonicalString)
        let fromText = AuditEntry.computeHash(
            namespaceID: "ns_x", at: at, actor: actor, action: action, subject: subject,
            canonicalData: data.canonicalString, prevHash: "genesis")
        let fromValue = AuditEntry.computeHash(
            namespaceID: "ns_x", at: at, actor: actor, action: action, subject: subject, data: data,
            prevHash: "genesis")
        #expect(fromText == expected)
        #expect(fromValue == expected)
    }
}
