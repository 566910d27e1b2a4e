import Foundation
import GateCore

public enum SessionStatus: String, Sendable, Codable, CaseIterable {
    case idle, running
    case awaitingConfirmation = "awaiting_confirmation"
    case failed, cancelled
}

public enum RunStatus: String, Sendable, Codable, CaseIterable {
    /// A driver is (or, after a crash, should be) working on it.
    case running
    /// Paused until every confirmation of the current step is decided or expired.
    case awaiting
    case completed, failed, cancelled

    public var isFinished: Bool { self == .completed || self == .failed || self == .cancelled }
}

public enum Role: String, Sendable, Codable, CaseIterable {
    case admin, member, approver
}

public struct Namespace: Sendable, Codable, Equatable {
    public var id: String
    public var name: String
    public var createdAt: Date

    public init(id: String, name: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }
}

/// An API key as stored: never the key itself, only its lookup prefix and SHA-256.
public struct APIKey: Sendable, Codable, Equatable {
    public var prefix: String
    public var hash: String
    public var namespaceID: String
    public var actor: String
    public var role: Role
    public var createdAt: Date
    public var expiresAt: Date?
    public var revokedAt: Date?

    public init(
        prefix: String, hash: String, namespaceID: String, actor: String, role: Role, createdAt: Date,
        expiresAt: Date? = nil, revokedAt: Date? = nil
    ) {
        self.prefix = prefix
        self.hash = hash
        self.namespaceID = namespaceID
        self.actor = actor
        self.role = role
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }
}

public struct Session: Sendable, Codable, Equatable {
    public var id: String
    public var namespaceID: String
    public var actor: String
    public var agent: String
    public var status: SessionStatus
    public var metadata: JSONValue
    public var tainted: Bool
    /// The call whose output tainted the session (the first one).
    public var taintedBy: TaintSource?
    public var activeRunID: String?
    public var lastSeq: Int64
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, namespaceID: String, actor: String, agent: String, status: SessionStatus = .idle,
        metadata: JSONValue = .object([:]), tainted: Bool = false, taintedBy: TaintSource? = nil,
        activeRunID: String? = nil, lastSeq: Int64 = 0, createdAt: Date, updatedAt: Date
    ) {
        self.taintedBy = taintedBy
        self.id = id
        self.namespaceID = namespaceID
        self.actor = actor
        self.agent = agent
        self.status = status
        self.metadata = metadata
        self.tainted = tainted
        self.activeRunID = activeRunID
        self.lastSeq = lastSeq
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// The tool call whose output made a session tainted (SPEC §1 Taint).
public struct TaintSource: Sendable, Codable, Equatable {
    public var callID: String
    public var toolName: String

    public init(callID: String, toolName: String) {
        self.callID = callID
        self.toolName = toolName
    }

    public var json: JSONValue { ["call_id": .string(callID), "tool_name": .string(toolName)] }

    public init?(json: JSONValue?) {
        guard let callID = json?["call_id"]?.stringValue, let toolName = json?["tool_name"]?.stringValue else {
            return nil
        }
        self.init(callID: callID, toolName: toolName)
    }
}

public struct Run: Sendable, Codable, Equatable {
    public var id: String
    public var sessionID: String
    public var status: RunStatus
    /// Number of model steps taken so far; tool calls belong to a step.
    public var step: Int
    /// After an expiry the model gets one last step without tools, then the run ends.
    public var finalStepOnly: Bool
    public var error: String?
    public var createdAt: Date
    public var endedAt: Date?

    public init(
        id: String, sessionID: String, status: RunStatus = .running, step: Int = 0, finalStepOnly: Bool = false,
        error: String? = nil, createdAt: Date, endedAt: Date? = nil
    ) {
        self.id = id
        self.sessionID = sessionID
        self.status = status
        self.step = step
        self.finalStepOnly = finalStepOnly
        self.error = error
        self.createdAt = createdAt
        self.endedAt = endedAt
    }
}

/// How a tool call of a model step stands. Gated calls mirror their confirmation.
public enum ToolCallStatus: String, Sendable, Codable, CaseIterable {
    /// Waiting for its confirmation to be decided.
    case awaiting
    /// Allowed (auto, granted or approved) and not yet started.
    case ready
    case executing, succeeded, failed, interrupted, denied, expired, cancelled
    /// Refused by policy, or its arguments were invalid: the model was told, nothing ran.
    case blocked

    /// A result for the model exists.
    public var isSettled: Bool {
        switch self {
        case .succeeded, .failed, .denied, .expired, .cancelled, .blocked: true
        case .awaiting, .ready, .executing, .interrupted: false
        }
    }
}

/// How the gate treated a call when the model asked for it (`tool_call.created` status).
public enum GateOutcome: String, Sendable, Codable {
    case auto
    case awaitingConfirmation = "awaiting_confirmation"
    case deniedByPolicy = "denied_by_policy"
}

public struct ToolCall: Sendable, Codable, Equatable {
    public var id: String
    public var sessionID: String
    public var runID: String
    public var step: Int
    public var index: Int
    /// The id the model gave the call; echoed back with the result.
    public var modelCallID: String
    public var toolName: String
    /// What runs: the model's arguments, or the approver's edit.
    public var params: JSONValue
    public var gate: GateOutcome
    public var status: ToolCallStatus
    public var confirmationID: String?
    public var output: ToolOutput?
    /// The model's arguments when an approver edited them; `params` holds the edit.
    public var originalParams: JSONValue?
    /// The policy rule that decided how the gate treated the call, if one matched.
    public var ruleID: String?
    /// The grant that let the call run without asking.
    public var grantID: String?

    public init(
        id: String, sessionID: String, runID: String, step: Int, index: Int, modelCallID: String, toolName: String,
        params: JSONValue, gate: GateOutcome, status: ToolCallStatus, confirmationID: String? = nil,
        output: ToolOutput? = nil, originalParams: JSONValue? = nil
    ) {
        self.originalParams = originalParams
        self.id = id
        self.sessionID = sessionID
        self.runID = runID
        self.step = step
        self.index = index
        self.modelCallID = modelCallID
        self.toolName = toolName
        self.params = params
        self.gate = gate
        self.status = status
        self.confirmationID = confirmationID
        self.output = output
    }
}

/// The person's decision as recorded on a confirmation.
public struct Decision: Sendable, Codable, Equatable {
    public var decision: DecisionKind
    public var reason: String?
    public var editedParams: JSONValue?
    public var originalParams: JSONValue?
    public var remember: Remember
    public var decidedBy: String
    public var decidedAt: Date

    public init(
        decision: DecisionKind, reason: String?, editedParams: JSONValue?, originalParams: JSONValue?,
        remember: Remember, decidedBy: String, decidedAt: Date
    ) {
        self.decision = decision
        self.reason = reason
        self.editedParams = editedParams
        self.originalParams = originalParams
        self.remember = remember
        self.decidedBy = decidedBy
        self.decidedAt = decidedAt
    }
}

/// One gated tool call (SPEC §1).
public struct Confirmation: Sendable, Codable, Equatable {
    public var id: String
    public var namespaceID: String
    public var sessionID: String
    public var runID: String
    public var callID: String
    public var toolName: String
    public var toolKey: String
    public var summary: String
    public var policy: ConfirmationPolicy
    public var ruleID: String?
    /// For `policy: tainted`: the call whose output tainted the session.
    public var taintedBy: TaintSource?
    public var params: JSONValue
    public var paramsHash: String
    public var requestedBy: String
    public var createdAt: Date
    public var expiresAt: Date
    public var status: ConfirmationStatus
    public var decision: Decision?

    public init(
        id: String, namespaceID: String, sessionID: String, runID: String, callID: String, toolName: String,
        toolKey: String, summary: String, policy: ConfirmationPolicy, ruleID: String? = nil, params: JSONValue,
        requestedBy: String, createdAt: Date, expiresAt: Date, status: ConfirmationStatus = .pending,
        decision: Decision? = nil, taintedBy: TaintSource? = nil
    ) {
        self.taintedBy = taintedBy
        self.id = id
        self.namespaceID = namespaceID
        self.sessionID = sessionID
        self.runID = runID
        self.callID = callID
        self.toolName = toolName
        self.toolKey = toolKey
        self.summary = summary
        self.policy = policy
        self.ruleID = ruleID
        self.params = params
        self.paramsHash = params.canonicalHash
        self.requestedBy = requestedBy
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.status = status
        self.decision = decision
    }

    public var machine: ConfirmationMachine {
        ConfirmationMachine(status: status, expiresAt: expiresAt, paramsHash: paramsHash)
    }
}

/// A remembered approval: later calls of `toolName` in the session run without asking,
/// when their arguments match `scope` (every matcher; no scope covers every call).
public struct Grant: Sendable, Codable, Equatable {
    public var id: String
    public var sessionID: String
    public var toolName: String
    public var scope: [String: ValueMatcher]
    public var confirmationID: String
    public var createdBy: String
    public var createdAt: Date

    public init(
        id: String, sessionID: String, toolName: String, scope: [String: ValueMatcher] = [:], confirmationID: String,
        createdBy: String, createdAt: Date
    ) {
        self.id = id
        self.sessionID = sessionID
        self.toolName = toolName
        self.scope = scope
        self.confirmationID = confirmationID
        self.createdBy = createdBy
        self.createdAt = createdAt
    }

    /// Whether this grant lets a call of `toolName` with `params` run without asking.
    public func covers(toolName: String, params: JSONValue) -> Bool {
        self.toolName == toolName && ValueMatcher.allMatch(scope, params)
    }

    public var json: JSONValue {
        [
            "id": .string(id), "session_id": .string(sessionID), "tool_name": .string(toolName),
            "scope": scope.isEmpty ? .null : ValueMatcher.json(scope), "confirmation_id": .string(confirmationID),
            "created_by": .string(createdBy), "created_at": .string(Timestamp.format(createdAt)),
        ]
    }
}

/// An event to append; the store assigns `seq`.
public struct EventDraft: Sendable, Equatable {
    public let type: String
    public let data: JSONValue
    /// `data` as canonical JSON, written when the draft is made: drafts are mostly made
    /// outside the store's single writer, which then only binds the text.
    public let canonicalData: String

    public init(_ type: String, _ data: JSONValue) {
        self.type = type
        self.data = data
        self.canonicalData = data.canonicalString
    }
}

/// One entry of a session's append-only event log.
public struct SessionEvent: Sendable, Codable, Equatable {
    public var sessionID: String
    public var seq: Int64
    public var type: String
    public var data: JSONValue
    public var createdAt: Date

    public init(sessionID: String, seq: Int64, type: String, data: JSONValue, createdAt: Date) {
        self.sessionID = sessionID
        self.seq = seq
        self.type = type
        self.data = data
        self.createdAt = createdAt
    }
}

/// An audit entry to append; the store links it into its namespace's hash chain.
public struct AuditDraft: Sendable, Equatable {
    public let namespaceID: String
    public let actor: String
    public let action: String
    public let subject: String
    public let data: JSONValue
    /// `data` as canonical JSON, written when the draft is made (see ``EventDraft``).
    public let canonicalData: String

    public init(namespaceID: String, actor: String, action: String, subject: String, data: JSONValue = .object([:])) {
        self.namespaceID = namespaceID
        self.actor = actor
        self.action = action
        self.subject = subject
        self.data = data
        self.canonicalData = data.canonicalString
    }
}

/// One link of a namespace's audit chain. `hash` covers every other field and
/// `prevHash`, the hash of the namespace's previous entry (64 zeros for the first).
public struct AuditEntry: Sendable, Codable, Equatable {
    public var id: Int64
    public var namespaceID: String
    public var at: Date
    public var actor: String
    public var action: String
    public var subject: String
    public var data: JSONValue
    public var prevHash: String
    public var hash: String

    public static let genesisHash = String(repeating: "0", count: 64)

    public init(
        id: Int64, namespaceID: String, at: Date, actor: String, action: String, subject: String, data: JSONValue,
        prevHash: String, hash: String
    ) {
        self.id = id
        self.namespaceID = namespaceID
        self.at = at
        self.actor = actor
        self.action = action
        self.subject = subject
        self.data = data
        self.prevHash = prevHash
        self.hash = hash
    }

    /// The hash an entry with these fields must carry.
    public static func computeHash(
        namespaceID: String, at: Date, actor: String, action: String, subject: String, data: JSONValue,
        prevHash: String
    ) -> String {
        computeHash(
            namespaceID: namespaceID, at: at, actor: actor, action: action, subject: subject,
            canonicalData: data.canonicalString, prevHash: prevHash)
    }

    /// ``computeHash(namespaceID:at:actor:action:subject:data:prevHash:)`` for a writer
    /// that already has the canonical text of `data` (it stores that text too). The
    /// hashed text is the canonical JSON of the entry's object, keys in sorted order.
    public static func computeHash(
        namespaceID: String, at: Date, actor: String, action: String, subject: String, canonicalData: String,
        prevHash: String
    ) -> String {
        func string(_ value: String) -> String { JSONValue.string(value).canonicalString }
        let body =
            "{\"action\":" + string(action) + ",\"actor\":" + string(actor) + ",\"at\":"
            + string(Timestamp.format(at)) + ",\"data\":" + canonicalData + ",\"namespace_id\":"
            + string(namespaceID) + ",\"prev_hash\":" + string(prevHash) + ",\"subject\":" + string(subject) + "}"
        return Digest.sha256Hex(body)
    }

    public var expectedHash: String {
        Self.computeHash(
            namespaceID: namespaceID, at: at, actor: actor, action: action, subject: subject, data: data,
            prevHash: prevHash)
    }
}
