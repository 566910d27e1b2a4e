import Foundation
import GateCore

/// The writes a store makes for one confirmation transition. Stores load the rows in
/// their transaction, call the planner, and write what it returns, so that both
/// backends make exactly the same changes, events and audit entries.
public struct TransitionPlan: Sendable, Equatable {
    public var confirmation: Confirmation
    public var call: ToolCall
    public var events: [EventDraft]
    public var audit: [AuditDraft]
    public var grant: Grant?
    /// The run must give the model one last step without tools (an expiry happened).
    public var finalStepOnly: Bool
    /// Reported to the caller after the writes are committed.
    public var rejection: CountersignError?
}

public enum TransitionPlanner {
    public static let expiredMessage =
        "This call was not approved in time: its confirmation expired, so it did not run."
    public static let cancelledMessage = "The session was cancelled before this call was decided, so it did not run."
    public static let unknownOutcomeMessage =
        "The outcome of this call is unknown: the server stopped while it was running, and it was not run again "
        + "because it is not idempotent. Check its effect before retrying."

    public static func declinedMessage(_ reason: String) -> String {
        "The person declined this call, so it did not run. Reason: \(reason)"
    }

    /// A decision on a pending confirmation. Throws for rejections that write nothing
    /// (`already_decided`, `params_mismatch`); returns a plan with `rejection` set for
    /// a decision that arrives after expiry (the row moves to `expired`).
    public static func decision(
        _ request: DecisionRequest, confirmation: Confirmation, call: ToolCall, decidedBy: String,
        grantAllowed: Bool, now: Date
    ) throws -> TransitionPlan {
        let transition = confirmation.machine.transition(.decide(request), at: now)
        if transition.next == .expired, transition.effects.contains(.emitExpired) {
            var plan = expiryPlan(confirmation: confirmation, call: call, now: now, actor: decidedBy)
            plan.rejection = transition.rejection
            return plan
        }
        if var rejection = transition.rejection {
            if rejection.code == .alreadyDecided {
                rejection.details = [
                    "status": .string(confirmation.status.rawValue),
                    "decision": confirmation.decision.map(EventFactory.decisionJSON) ?? .null,
                ]
            }
            throw rejection
        }
        var updated = confirmation
        var updatedCall = call
        let decision = Decision(
            decision: request.kind,
            reason: request.kind == .deny
                ? request.denyReason
                : request.reason,
            editedParams: request.kind == .approve ? request.editedParams : nil,
            // `Optional(...)`: a bare `nil` here would be `JSONValue.null` (JSONValue is nil-literal
            // expressible), reporting `.some(.null)` where the store reads back `nil`.
            originalParams: request.kind == .approve && request.editedParams != nil
                ? Optional(confirmation.params) : nil,
            remember: request.kind == .approve && grantAllowed ? request.remember : .once,
            decidedBy: decidedBy, decidedAt: now)
        updated.status = transition.next
        updated.decision = decision
        var grant: Grant?
        switch request.kind {
        case .approve:
            updatedCall.status = .ready
            if let edited = request.editedParams, edited != confirmation.params {
                updatedCall.originalParams = confirmation.params
                updatedCall.params = edited
            }
            if transition.effects.contains(.recordGrant), grantAllowed {
                grant = Grant(
                    id: Identifier.ordered("grt"), sessionID: confirmation.sessionID, toolName: confirmation.toolName,
                    scope: request.grantScope ?? [:], confirmationID: confirmation.id, createdBy: decidedBy,
                    createdAt: now)
            }
        case .deny:
            updatedCall.status = .denied
            updatedCall.output = .failure(declinedMessage(decision.reason ?? DecisionRequest.defaultDenyReason))
        }
        var auditData: JSONValue = [
            "call_id": .string(call.id), "session_id": .string(call.sessionID), "tool_name": .string(call.toolName),
            "decision": .string(request.kind.rawValue), "params": confirmation.params,
            "params_hash": .string(confirmation.paramsHash),
        ]
        if let reason = decision.reason { auditData = auditData.setting("reason", .string(reason)) }
        if let edited = decision.editedParams { auditData = auditData.setting("edited_params", edited) }
        if let grant {
            auditData = auditData.setting("remember", "session").setting("grant_id", .string(grant.id))
            if !grant.scope.isEmpty { auditData = auditData.setting("grant_scope", ValueMatcher.json(grant.scope)) }
        }
        if let keyPrefix = request.keyPrefix { auditData = auditData.setting("key_prefix", .string(keyPrefix)) }
        return TransitionPlan(
            confirmation: updated, call: updatedCall,
            events: [EventFactory.decided(updated)],
            audit: [
                AuditDraft(
                    namespaceID: confirmation.namespaceID, actor: decidedBy,
                    action: request.kind == .approve ? "confirmation.approved" : "confirmation.denied",
                    subject: confirmation.id, data: auditData)
            ],
            grant: grant, finalStepOnly: false, rejection: nil)
    }

    /// Expiry of a pending confirmation that is due.
    public static func expiry(confirmation: Confirmation, call: ToolCall, now: Date) -> TransitionPlan? {
        let transition = confirmation.machine.transition(.expire, at: now)
        guard transition.rejection == nil else { return nil }
        return expiryPlan(confirmation: confirmation, call: call, now: now, actor: "system")
    }

    private static func expiryPlan(confirmation: Confirmation, call: ToolCall, now: Date, actor: String)
        -> TransitionPlan
    {
        var updated = confirmation
        updated.status = .expired
        var updatedCall = call
        updatedCall.status = .expired
        updatedCall.output = .failure(expiredMessage)
        return TransitionPlan(
            confirmation: updated, call: updatedCall, events: [EventFactory.expired(updated)],
            audit: [
                AuditDraft(
                    namespaceID: confirmation.namespaceID, actor: actor, action: "confirmation.expired",
                    subject: confirmation.id,
                    data: [
                        "call_id": .string(call.id), "session_id": .string(call.sessionID),
                        "expires_at": .string(Timestamp.format(confirmation.expiresAt)),
                    ])
            ],
            grant: nil, finalStepOnly: true, rejection: nil)
    }

    /// Cancellation of a pending or approved (not yet started) confirmation.
    public static func cancellation(confirmation: Confirmation, call: ToolCall, actor: String, now: Date)
        -> TransitionPlan?
    {
        let transition = confirmation.machine.transition(.cancel, at: now)
        guard transition.rejection == nil else { return nil }
        var updated = confirmation
        updated.status = .cancelled
        var updatedCall = call
        updatedCall.status = .cancelled
        updatedCall.output = .failure(cancelledMessage)
        return TransitionPlan(
            confirmation: updated, call: updatedCall, events: [],
            audit: [
                AuditDraft(
                    namespaceID: confirmation.namespaceID, actor: actor, action: "confirmation.cancelled",
                    subject: confirmation.id, data: ["call_id": .string(call.id)])
            ],
            grant: nil, finalStepOnly: false, rejection: nil)
    }
}
