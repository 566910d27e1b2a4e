import AgentRuntime
import Foundation
import GateCore

/// API keys: `sk_` followed by 43 base62 characters (about 256 bits from the system
/// CSPRNG). The first 11 characters are the lookup prefix; only the SHA-256 of the
/// whole key is stored.
public enum APIKeys {
    public static let prefixLength = 11

    public struct Issued: Sendable {
        public var key: String
        public var record: APIKey
    }

    public static func issue(namespaceID: String, actor: String, role: Role, now: Date, expiresAt: Date? = nil)
        -> Issued
    {
        let key = Identifier.make("sk", length: 43)
        let record = APIKey(
            prefix: String(key.prefix(prefixLength)), hash: Digest.sha256Hex(key), namespaceID: namespaceID,
            actor: actor, role: role, createdAt: now, expiresAt: expiresAt)
        return Issued(key: key, record: record)
    }

    /// Checks a presented key against the store. Returns the key's record when it is
    /// known, unrevoked, unexpired and its hash matches (compared in constant time).
    public static func verify(_ presented: String, store: any Store, now: Date) async throws -> APIKey? {
        guard presented.hasPrefix("sk_"), presented.count > prefixLength, presented.count <= 128 else { return nil }
        guard let record = try await store.key(prefix: String(presented.prefix(prefixLength))) else { return nil }
        guard Digest.constantTimeEquals(record.hash, Digest.sha256Hex(presented)) else { return nil }
        if record.revokedAt != nil { return nil }
        if let expiresAt = record.expiresAt, expiresAt <= now { return nil }
        return record
    }
}
