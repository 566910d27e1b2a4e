import Foundation
import GateCore

/// The event types of SPEC §3 and the JSON shape of each event's data. One place, so
/// that the engine and both stores write identical events.
public enum EventType {
    public static let messageCreated = "message.created"
    public static let runStarted = "run.started"
    public static let token = "token"
    public static let messageCompleted = "message.completed"
    public static let toolCallCreated = "tool_call.created"
    public static let confirmationRequired = "confirmation.required"
    public static let confirmationDecided = "confirmation.decided"
    public static let confirmationExpired = "confirmation.expired"
    public static let toolStarted = "tool.started"
    public static let toolResult = "tool.result"
    public static let runCompleted = "run.completed"
    public static let runFailed = "run.failed"
    /// The session read output of an open-world tool; `confirm_if_tainted` tools now ask.
    public static let sessionTainted = "session.tainted"
    public static let grantRevoked = "grant.revoked"

    /// Events after which a run's stream ends.
    public static let terminal: Set<String> = [runCompleted, runFailed]
}

public enum EventFactory {
    public static func messageCreated(runID: String, content: String) -> EventDraft {
        EventDraft(EventType.messageCreated, ["run_id": .string(runID), "role": "user", "content": .string(content)])
    }

    public static func runStarted(runID: String) -> EventDraft {
        EventDraft(EventType.runStarted, ["run_id": .string(runID)])
    }

    public static func token(runID: String, text: String) -> EventDraft {
        EventDraft(EventType.token, ["run_id": .string(runID), "text": .string(text)])
    }

    public static func messageCompleted(runID: String, text: String, calls: [ToolCall]) -> EventDraft {
        EventDraft(
            EventType.messageCompleted,
            [
                "run_id": .string(runID), "role": "assistant", "content": .string(text),
                "tool_calls": .array(
                    calls.map { ["call_id": .string($0.id), "tool_name": .string($0.toolName), "params": $0.params] }),
            ])
    }

    public static func toolCallCreated(_ call: ToolCall) -> EventDraft {
        var data: JSONValue = [
            "run_id": .string(call.runID), "call_id": .string(call.id), "tool_name": .string(call.toolName),
            "params": call.params, "status": .string(call.gate.rawValue),
        ]
        if let id = call.confirmationID { data = data.setting("confirmation_id", .string(id)) }
        if let ruleID = call.ruleID { data = data.setting("rule_id", .string(ruleID)) }
        if let grantID = call.grantID { data = data.setting("grant_id", .string(grantID)) }
        if call.gate == .deniedByPolicy, let output = call.output {
            data = data.setting("reason", .string(output.content))
        }
        return EventDraft(EventType.toolCallCreated, data)
    }

    public static func confirmationRequired(_ confirmation: Confirmation) -> EventDraft {
        EventDraft(EventType.confirmationRequired, confirmationJSON(confirmation))
    }

    public static func decided(_ confirmation: Confirmation) -> EventDraft {
        var data: JSONValue = [
            "confirmation_id": .string(confirmation.id), "call_id": .string(confirmation.callID),
            "run_id": .string(confirmation.runID), "tool_name": .string(confirmation.toolName),
            "status": .string(confirmation.status.rawValue),
        ]
        if let decision = confirmation.decision {
            data = data.setting("decision", .string(decision.decision.rawValue))
                .setting("decided_by", .string(decision.decidedBy))
                .setting("edited", .bool(decision.editedParams != nil))
                .setting("remember", .string(decision.remember.rawValue))
            if let reason = decision.reason { data = data.setting("reason", .string(reason)) }
            if let edited = decision.editedParams { data = data.setting("edited_params", edited) }
        }
        return EventDraft(EventType.confirmationDecided, data)
    }

    public static func expired(_ confirmation: Confirmation) -> EventDraft {
        EventDraft(
            EventType.confirmationExpired,
            [
                "confirmation_id": .string(confirmation.id), "call_id": .string(confirmation.callID),
                "run_id": .string(confirmation.runID), "tool_name": .string(confirmation.toolName),
                "expires_at": .string(Timestamp.format(confirmation.expiresAt)),
            ])
    }

    public static func toolStarted(_ call: ToolCall) -> EventDraft {
        var data: JSONValue = [
            "run_id": .string(call.runID), "call_id": .string(call.id), "tool_name": .string(call.toolName),
            "params": call.params,
        ]
        if let id = call.confirmationID { data = data.setting("confirmation_id", .string(id)) }
        return EventDraft(EventType.toolStarted, data)
    }

    /// The result of a call, whether it ran or not (declined, expired, cancelled,
    /// refused by policy, interrupted).
    public static func toolResult(_ call: ToolCall) -> EventDraft {
        let output = call.output ?? .failure("")
        var data: JSONValue = [
            "run_id": .string(call.runID), "call_id": .string(call.id), "tool_name": .string(call.toolName),
            "status": .string(call.status.rawValue), "success": .bool(output.success),
            "content": .string(output.content),
        ]
        if let result = output.data { data = data.setting("result", result) }
        if let id = call.confirmationID { data = data.setting("confirmation_id", .string(id)) }
        return EventDraft(EventType.toolResult, data)
    }

    public static func runCompleted(runID: String, status: RunStatus, reply: String?) -> EventDraft {
        EventDraft(
            EventType.runCompleted,
            [
                "run_id": .string(runID), "status": .string(status.rawValue),
                "reply": reply.map(JSONValue.string) ?? .null,
            ])
    }

    public static func runFailed(runID: String, error: String) -> EventDraft {
        EventDraft(EventType.runFailed, ["run_id": .string(runID), "error": .string(error)])
    }

    public static func sessionTainted(_ source: TaintSource) -> EventDraft {
        EventDraft(EventType.sessionTainted, ["tainted_by": source.json])
    }

    public static func grantRevoked(_ grant: Grant, by actor: String) -> EventDraft {
        EventDraft(EventType.grantRevoked, grant.json.setting("revoked_by", .string(actor)))
    }

    // MARK: JSON views shared by events and the API

    public static func confirmationJSON(_ confirmation: Confirmation) -> JSONValue {
        [
            "id": .string(confirmation.id), "session_id": .string(confirmation.sessionID),
            "run_id": .string(confirmation.runID), "call_id": .string(confirmation.callID),
            "tool_name": .string(confirmation.toolName), "tool_key": .string(confirmation.toolKey),
            "summary": .string(confirmation.summary), "policy": .string(confirmation.policy.rawValue),
            "rule_id": confirmation.ruleID.map(JSONValue.string) ?? .null,
            "tainted_by": confirmation.taintedBy?.json ?? .null,
            "params": confirmation.params, "params_hash": .string(confirmation.paramsHash),
            "requested_by": .string(confirmation.requestedBy),
            "created_at": .string(Timestamp.format(confirmation.createdAt)),
            "expires_at": .string(Timestamp.format(confirmation.expiresAt)),
            "status": .string(confirmation.status.rawValue),
            "decision": confirmation.decision.map(decisionJSON) ?? .null,
        ]
    }

    public static func decisionJSON(_ decision: Decision) -> JSONValue {
        [
            "decision": .string(decision.decision.rawValue),
            "reason": decision.reason.map(JSONValue.string) ?? .null,
            "edited_params": decision.editedParams ?? .null,
            "original_params": decision.originalParams ?? .null,
            "remember": .string(decision.remember.rawValue),
            "decided_by": .string(decision.decidedBy),
            "decided_at": .string(Timestamp.format(decision.decidedAt)),
        ]
    }

    public static func sessionJSON(_ session: Session) -> JSONValue {
        [
            "id": .string(session.id), "agent": .string(session.agent), "actor": .string(session.actor),
            "namespace_id": .string(session.namespaceID), "status": .string(session.status.rawValue),
            "metadata": session.metadata, "tainted": .bool(session.tainted),
            "tainted_by": session.taintedBy?.json ?? .null,
            "active_run_id": session.activeRunID.map(JSONValue.string) ?? .null,
            "last_event_seq": .int(session.lastSeq),
            "created_at": .string(Timestamp.format(session.createdAt)),
            "updated_at": .string(Timestamp.format(session.updatedAt)),
        ]
    }

    public static func eventJSON(_ event: SessionEvent) -> JSONValue {
        [
            "seq": .int(event.seq), "type": .string(event.type), "data": event.data,
            "created_at": .string(Timestamp.format(event.createdAt)),
        ]
    }
}
