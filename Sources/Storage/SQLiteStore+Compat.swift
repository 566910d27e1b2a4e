import AgentRuntime
import Foundation
import GRDB
import GateCore

/// Ids and secrets of the seed wire formats (SPEC §7), in the tables of migration v2.
extension SQLiteStore {
    public func bindCompatID(_ binding: CompatIDBinding) async throws -> CompatIDBinding {
        try await pool.write { db in
            try db.executeCached(
                sql: """
                    INSERT OR IGNORE INTO compat_ids (kind, external_id, local_id, namespace_id, created_at)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [
                    binding.kind, binding.externalID, binding.localID, binding.namespaceID, binding.createdAt.millis,
                ])
            guard let stored = try Self.loadCompatID(db, kind: binding.kind, externalID: binding.externalID) else {
                throw CountersignError(.internal, "The compat id binding was not stored.")
            }
            return stored
        }
    }

    public func compatID(kind: String, externalID: String) async throws -> CompatIDBinding? {
        try readNow { db in try Self.loadCompatID(db, kind: kind, externalID: externalID) }
    }

    public func compatSecret(name: String, proposed: String, now: Date) async throws -> String {
        try await pool.write { db in
            try db.executeCached(
                sql: "INSERT OR IGNORE INTO compat_secrets (name, value, created_at) VALUES (?, ?, ?)",
                arguments: [name, proposed, now.millis])
            guard
                let value = try String.fetchOneCached(
                    db, sql: "SELECT value FROM compat_secrets WHERE name = ?", arguments: [name])
            else { throw CountersignError(.internal, "The secret \(name) was not stored.") }
            return value
        }
    }

    static func loadCompatID(_ db: Database, kind: String, externalID: String) throws -> CompatIDBinding? {
        try db.fetchOneCached(
            sql: "SELECT * FROM compat_ids WHERE kind = ? AND external_id = ?", arguments: [kind, externalID]
        ) { row in
            CompatIDBinding(
                kind: row["kind"], externalID: row["external_id"], localID: row["local_id"],
                namespaceID: row["namespace_id"], createdAt: Date(millis: row["created_at"]))
        }
    }
}
