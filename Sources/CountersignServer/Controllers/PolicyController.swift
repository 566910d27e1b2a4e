import AgentRuntime
import Foundation
import GateCore
import Hummingbird

/// Grants of a session (`GET/DELETE /v1/sessions/{id}/grants[/{grant_id}]`) and the
/// policy dry run (`POST /v1/policy/explain`).
struct PolicyController {
    let engine: RunEngine
    let access: AccessControl
    let configuration: ServerConfiguration

    static let explainFields: Set<String> = ["agent", "tool", "params", "tainted", "session_id"]

    func register(on group: RouterGroup<AppRequestContext>) {
        group.get("sessions/{id}/grants", use: list)
        group.delete("sessions/{id}/grants", use: revokeAll)
        group.delete("sessions/{id}/grants/{grant_id}", use: revokeOne)
        group.post("policy/explain", use: explain)
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let session = try await access.session(try context.parameters.require("id"), for: try context.requireIdentity())
        let grants = try await engine.store.grants(sessionID: session.id)
        return JSONResponse.make(["data": .array(grants.map(\.json))])
    }

    /// Revokes every grant of the session, or only those of `?tool=NAME`.
    @Sendable func revokeAll(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let session = try await access.session(try context.parameters.require("id"), for: identity)
        let revoked = try await engine.revokeGrants(
            sessionID: session.id, grantID: nil, toolName: request.query("tool"), actor: identity.actor)
        return JSONResponse.make(["revoked": .array(revoked.map(\.json))])
    }

    @Sendable func revokeOne(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let session = try await access.session(try context.parameters.require("id"), for: identity)
        let grantID = try context.parameters.require("grant_id")
        let revoked = try await engine.revokeGrants(
            sessionID: session.id, grantID: grantID, toolName: nil, actor: identity.actor)
        guard !revoked.isEmpty else { throw CountersignError.notFound("Grant") }
        return JSONResponse.make(["revoked": .array(revoked.map(\.json))])
    }

    /// Which policy applies to a call and why, without running anything. With
    /// `session_id` the session's agent, taint and grants are used.
    @Sendable func explain(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let body = try await JSONBody.read(request, limit: configuration.maxBodyBytes, allowed: Self.explainFields)
        let toolName = try body.requiredString("tool", maxLength: 200)
        let params = try body.object("params") ?? .object([:])
        var agentName = try body.string("agent", maxLength: 200)
        var tainted = try body.bool("tainted") ?? false
        var grants: [Grant] = []
        if let sessionID = try body.string("session_id", maxLength: 100) {
            let session = try await access.session(sessionID, for: identity)
            if let agentName, agentName != session.agent {
                throw CountersignError.validation(
                    "agent '\(agentName)' is not the agent of session \(session.id) ('\(session.agent)').",
                    details: ["field": "agent"])
            }
            agentName = session.agent
            if body.members["tainted"] == nil || body.members["tainted"] == .null { tainted = session.tainted }
            grants = try await engine.store.grants(sessionID: session.id)
        }
        guard let agentName else {
            throw CountersignError.validation("agent (or session_id) is required.", details: ["field": "agent"])
        }
        guard let agent = engine.agents[agentName] else {
            throw CountersignError.validation(
                "Unknown agent '\(agentName)'.",
                details: ["field": "agent", "agents": .array(engine.agents.names.map(JSONValue.string))])
        }
        guard let tool = agent.tool(named: toolName) else {
            throw CountersignError.validation(
                "Agent '\(agentName)' has no tool named '\(toolName)'.",
                details: ["field": "tool", "tools": .array(agent.availableTools.map { .string($0.descriptor.name) })])
        }
        let descriptor = tool.descriptor
        let grant = grants.first { $0.covers(toolName: descriptor.name, params: params) }
        let explanation = PolicyEvaluator.explain(
            toolName: descriptor.name, flags: descriptor.flags, params: params, policy: agent.policy,
            tainted: tainted, granted: grant != nil)
        let violations = JSONSchema(descriptor.inputSchema).validate(params)
        var decision: String
        var confirmationPolicy: JSONValue = .null
        var reason = explanation.reason
        switch explanation.decision {
        case .run: decision = "auto"
        case .deny: decision = "deny"
        case .confirm(let why, _):
            decision = "confirm"
            confirmationPolicy = .string(why.rawValue)
        }
        if !violations.isEmpty {
            decision = "deny"
            confirmationPolicy = .null
            reason =
                "These arguments do not match the tool's input schema, so the call would be refused before any "
                + "policy applies. (With valid arguments: \(reason))"
        }
        return JSONResponse.make([
            "agent": .string(agent.name), "tool": .string(descriptor.name), "tool_key": .string(descriptor.toolKey),
            "effect": .string(descriptor.flags.effect.rawValue), "open_world": .bool(descriptor.flags.openWorld),
            "idempotent": .bool(descriptor.flags.idempotent),
            "decision": .string(decision), "confirmation_policy": confirmationPolicy,
            "policy": .string(explanation.policy.rawValue), "source": .string(explanation.source.rawValue),
            "rule_id": explanation.ruleID.map(JSONValue.string) ?? .null, "tainted": .bool(tainted),
            "grant_id": explanation.decision == .run(.grant) ? grant.map { .string($0.id) } ?? .null : .null,
            "remember_allowed": .bool(agent.policy.allowsGrant(toolName: descriptor.name, flags: descriptor.flags)),
            "params_valid": .bool(violations.isEmpty),
            "violations": .array(violations.map { ["path": .string($0.path), "message": .string($0.message)] }),
            "reason": .string(reason),
        ])
    }
}
