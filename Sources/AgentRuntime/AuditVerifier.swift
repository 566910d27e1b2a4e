import Foundation
import GateCore

/// Checks a namespace's audit chain: every entry's hash covers its fields and the hash
/// of the entry before it. Reports the first broken link.
public enum AuditVerifier {
    public struct Report: Sendable, Equatable {
        public var ok: Bool
        public var checked: Int
        /// The id of the first entry whose hash or link is wrong.
        public var firstBroken: Int64?
        public var reason: String?

        public var json: JSONValue {
            [
                "ok": .bool(ok), "checked": .int(Int64(checked)),
                "first_broken": firstBroken.map(JSONValue.int) ?? .null,
                "reason": reason.map(JSONValue.string) ?? .null,
            ]
        }
    }

    public static func verify(store: any Store, namespaceID: String, pageSize: Int = 1000) async throws -> Report {
        var previous = AuditEntry.genesisHash
        var after: Int64 = 0
        var checked = 0
        while true {
            let page = try await store.auditEntries(namespaceID: namespaceID, afterID: after, limit: pageSize)
            for entry in page {
                if entry.prevHash != previous {
                    return Report(
                        ok: false, checked: checked, firstBroken: entry.id,
                        reason: "prev_hash does not match the hash of the entry before it")
                }
                if entry.hash != entry.expectedHash {
                    return Report(
                        ok: false, checked: checked, firstBroken: entry.id,
                        reason: "hash does not match the entry's contents")
                }
                previous = entry.hash
                checked += 1
                after = entry.id
            }
            if page.count < pageSize { break }
        }
        return Report(ok: true, checked: checked, firstBroken: nil, reason: nil)
    }
}
