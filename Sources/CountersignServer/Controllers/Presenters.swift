import AgentRuntime
import GateCore

/// JSON views of runtime values for the native API.
enum Present {
    static func session(_ session: Session) -> JSONValue { EventFactory.sessionJSON(session) }
    static func confirmation(_ confirmation: Confirmation) -> JSONValue { EventFactory.confirmationJSON(confirmation) }

    static func outcome(_ outcome: RunOutcome) -> JSONValue {
        [
            "run_id": .string(outcome.runID), "session_id": .string(outcome.sessionID),
            "status": .string(outcome.status.rawValue), "reply": .string(outcome.reply),
            "pending_confirmations": .array(outcome.pendingConfirmations.map(confirmation)),
            "tools_used": .array(outcome.toolsUsed.map(JSONValue.string)),
            "error": outcome.error.map(JSONValue.string) ?? .null,
        ]
    }

    static func key(_ key: APIKey) -> JSONValue {
        [
            "prefix": .string(key.prefix), "namespace_id": .string(key.namespaceID), "actor": .string(key.actor),
            "role": .string(key.role.rawValue), "created_at": .string(Timestamp.format(key.createdAt)),
            "expires_at": key.expiresAt.map { .string(Timestamp.format($0)) } ?? .null,
            "revoked_at": key.revokedAt.map { .string(Timestamp.format($0)) } ?? .null,
        ]
    }

    static func namespace(_ namespace: Namespace) -> JSONValue {
        [
            "id": .string(namespace.id), "name": .string(namespace.name),
            "created_at": .string(Timestamp.format(namespace.createdAt)),
        ]
    }

    static func audit(_ entry: AuditEntry) -> JSONValue {
        [
            "id": .int(entry.id), "namespace_id": .string(entry.namespaceID), "at": .string(Timestamp.format(entry.at)),
            "actor": .string(entry.actor), "action": .string(entry.action), "subject": .string(entry.subject),
            "data": entry.data, "prev_hash": .string(entry.prevHash), "hash": .string(entry.hash),
        ]
    }
}
