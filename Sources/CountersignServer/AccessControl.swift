import AgentRuntime
import GateCore

/// Who may see and decide what (SPEC §1, §2.6). Objects of another namespace do not
/// exist for the caller (404); another actor's objects in the same namespace are 403
/// unless the caller is an approver or admin.
struct AccessControl: Sendable {
    let store: any Store

    /// A session the caller may read and write.
    func session(_ id: String, for identity: Identity) async throws -> Session {
        guard let session = try await store.session(id: id), session.namespaceID == identity.namespaceID else {
            throw CountersignError.notFound("Session")
        }
        guard session.actor == identity.actor || identity.seesWholeNamespace else {
            throw CountersignError(.forbidden, "This session belongs to another actor.")
        }
        return session
    }

    /// A confirmation the caller may read.
    func confirmation(_ id: String, for identity: Identity) async throws -> (Confirmation, Session) {
        guard let (confirmation, session) = try await store.confirmationAndSession(id: id),
            confirmation.namespaceID == identity.namespaceID
        else { throw CountersignError.notFound("Confirmation") }
        guard session.actor == identity.actor || identity.seesWholeNamespace else {
            throw CountersignError(.forbidden, "This confirmation belongs to another actor's session.")
        }
        return (confirmation, session)
    }

    /// A confirmation the caller may decide (the session's actor, or an approver), with
    /// its session.
    func decidable(_ id: String, for identity: Identity) async throws -> (Confirmation, Session) {
        let (confirmation, session) = try await confirmation(id, for: identity)
        guard session.actor == identity.actor || identity.role == .approver else {
            throw CountersignError(
                .forbidden, "Only the session's actor or an approver of the namespace may decide this confirmation.")
        }
        return (confirmation, session)
    }

    func requireAdmin(_ identity: Identity) throws {
        guard identity.role == .admin else { throw CountersignError(.forbidden, "This needs an admin key.") }
    }

    /// The operator: an admin of the namespace `default` (created on first start).
    /// Only the operator creates namespaces and keys in namespaces other than its own.
    func isOperator(_ identity: Identity) async throws -> Bool {
        guard identity.role == .admin else { return false }
        return try await store.namespace(idOrName: "default")?.id == identity.namespaceID
    }

    func requireOperator(_ identity: Identity) async throws {
        try requireAdmin(identity)
        guard try await isOperator(identity) else {
            throw CountersignError(
                .forbidden, "Only an admin of the operator namespace `default` may do this.")
        }
    }
}

extension RunEngine {
    /// Decides as `identity`: the actor is recorded as the decider and the key's prefix
    /// goes into the audit entry.
    func decide(confirmationID: String, request: DecisionRequest, by identity: Identity) async throws
        -> DecisionResult
    {
        var request = request
        request.keyPrefix = identity.keyPrefix
        return try await decide(confirmationID: confirmationID, request: request, decidedBy: identity.actor)
    }

    /// The same for a confirmation and session that `AccessControl.decidable` just read.
    func decide(_ decidable: (Confirmation, Session), request: DecisionRequest, by identity: Identity) async throws
        -> DecisionResult
    {
        var request = request
        request.keyPrefix = identity.keyPrefix
        return try await decide(decidable.0, in: decidable.1, request: request, decidedBy: identity.actor)
    }
}
