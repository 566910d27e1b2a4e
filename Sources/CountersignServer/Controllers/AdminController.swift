import AgentRuntime
import Foundation
import GateCore
import Hummingbird

/// Admin endpoints: namespaces and keys; and the audit log for admins and approvers.
struct AdminController {
    let store: any Store
    let access: AccessControl
    let clock: any WallClock
    let configuration: ServerConfiguration
    let notifier: EventNotifier

    func register(on group: RouterGroup<AppRequestContext>) {
        group.post("namespaces", use: createNamespace)
        group.get("namespaces", use: listNamespaces)
        group.post("keys", use: createKey)
        group.get("keys", use: listKeys)
        group.delete("keys/{prefix}", use: revokeKey)
        group.get("audit", use: audit)
        group.get("audit/verify", use: verifyAudit)
    }

    @Sendable func verifyAudit(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard identity.seesWholeNamespace else {
            throw CountersignError(.forbidden, "The audit log needs an admin or approver key.")
        }
        let report = try await AuditVerifier.verify(store: store, namespaceID: identity.namespaceID)
        return JSONResponse.make(report.json)
    }

    @Sendable func createNamespace(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        try await access.requireOperator(identity)
        let body = try await JSONBody.read(request, limit: configuration.maxBodyBytes, allowed: ["name"])
        let name = try body.requiredString("name", maxLength: 64)
        try NamespaceName.validate(name)
        let namespace = Namespace(id: Identifier.make("ns", length: 16), name: name, createdAt: clock.now())
        try await store.createNamespace(
            namespace,
            audit: AuditDraft(
                namespaceID: namespace.id, actor: identity.actor, action: "namespace.created", subject: namespace.id,
                data: ["name": .string(name), "created_by_namespace": .string(identity.namespaceID)]))
        return JSONResponse.make(status: .created, Present.namespace(namespace))
    }

    @Sendable func listNamespaces(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        try access.requireAdmin(identity)
        // The operator sees every namespace; any other admin its own.
        let all = try await store.namespaces()
        let isOperator = try await access.isOperator(identity)
        let visible = isOperator ? all : all.filter { $0.id == identity.namespaceID }
        return JSONResponse.make(["data": .array(visible.map(Present.namespace))])
    }

    @Sendable func createKey(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        try access.requireAdmin(identity)
        let body = try await JSONBody.read(
            request, limit: configuration.maxBodyBytes, allowed: ["actor", "role", "namespace", "expires_at"])
        let actor = try body.requiredString("actor", maxLength: 200)
        guard !actor.isEmpty else { throw CountersignError.validation("actor must not be empty.") }
        let role = try body.oneOf("role", Role.self, required: true)!
        var namespaceID = identity.namespaceID
        if let wanted = try body.string("namespace", maxLength: 100) {
            // Another namespace exists only for the operator.
            let isOperator = try await access.isOperator(identity)
            guard let namespace = try await store.namespace(idOrName: wanted),
                namespace.id == identity.namespaceID || isOperator
            else { throw CountersignError.notFound("Namespace") }
            namespaceID = namespace.id
        }
        let expiresAt = try body.date("expires_at")
        if let expiresAt, expiresAt <= clock.now() {
            throw CountersignError.validation("expires_at must be in the future.", details: ["field": "expires_at"])
        }
        let issued = APIKeys.issue(
            namespaceID: namespaceID, actor: actor, role: role, now: clock.now(), expiresAt: expiresAt)
        try await store.createKey(
            issued.record,
            audit: AuditDraft(
                namespaceID: namespaceID, actor: identity.actor, action: "key.created", subject: issued.record.prefix,
                data: ["actor": .string(actor), "role": .string(role.rawValue), "by_key": .string(identity.keyPrefix)]))
        return JSONResponse.make(status: .created, Present.key(issued.record).setting("key", .string(issued.key)))
    }

    @Sendable func listKeys(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        try access.requireAdmin(identity)
        let keys = try await store.keys(namespaceID: identity.namespaceID)
        return JSONResponse.make(["data": .array(keys.map(Present.key))])
    }

    @Sendable func revokeKey(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        try access.requireAdmin(identity)
        let prefix = try context.parameters.require("prefix")
        let revoked = try await store.revokeKey(
            prefix: prefix, namespaceID: identity.namespaceID, at: clock.now(),
            audit: AuditDraft(
                namespaceID: identity.namespaceID, actor: identity.actor, action: "key.revoked", subject: prefix,
                data: ["by_key": .string(identity.keyPrefix)]))
        guard revoked else { throw CountersignError.notFound("Key") }
        notifier.notifyKeyChanged(prefix: prefix)
        return JSONResponse.make(["prefix": .string(prefix), "revoked": true])
    }

    @Sendable func audit(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard identity.seesWholeNamespace else {
            throw CountersignError(.forbidden, "The audit log needs an admin or approver key.")
        }
        let limit = try request.queryInt("limit", default: 100, range: 1...1000)
        var after: Int64 = 0
        if let text = request.query("after") {
            guard let value = Int64(text), value >= 0 else {
                throw CountersignError.validation("after must be a non-negative integer.", details: ["field": "after"])
            }
            after = value
        }
        let entries = try await store.auditEntries(namespaceID: identity.namespaceID, afterID: after, limit: limit)
        return JSONResponse.make([
            "data": .array(entries.map(Present.audit)),
            "next_after": .int(entries.last?.id ?? after),
            "has_more": .bool(entries.count == limit),
        ])
    }
}

enum NamespaceName {
    /// Lowercase letters, digits, `-` and `_`, 1–64 characters, not starting with `ns_`.
    static func validate(_ name: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-_")
        guard !name.isEmpty, name.count <= 64, name.allSatisfy(allowed.contains), !name.hasPrefix("ns_") else {
            throw CountersignError.validation(
                "name must be 1–64 characters of a–z, 0–9, - and _, and must not start with ns_.",
                details: ["field": "name"])
        }
    }
}
