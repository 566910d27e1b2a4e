import AgentRuntime
import Foundation
import GateCore

/// Deterministic records for store tests: a fixed time base, whole milliseconds (the
/// stores' precision), and builders that use the public initialisers only.
public enum StoreFixtures {
    /// 2027-01-15T08:00:00.000Z.
    public static let baseMillis: Int64 = 1_800_000_000_000
    public static let base = Date(timeIntervalSince1970: 1_800_000_000)

    /// `base` plus `offset` milliseconds.
    public static func time(_ offset: Int64) -> Date {
        Date(timeIntervalSince1970: Double(baseMillis + offset) / 1000)
    }

    /// `base` plus `seconds` whole seconds.
    public static func time(seconds: Int64) -> Date { time(seconds * 1000) }

    public static func namespace(_ name: String, at: Date = base) -> Namespace {
        Namespace(id: Identifier.make("ns", length: 16), name: name, createdAt: at)
    }

    /// A key record. `hash` is the SHA-256 of a made-up secret; the store never sees keys.
    public static func key(
        namespaceID: String, actor: String = "alice", role: Role = .member, at: Date = base, expiresAt: Date? = nil
    ) -> APIKey {
        let prefix = Identifier.make("cs", length: 10)
        return APIKey(
            prefix: prefix, hash: Digest.sha256Hex("secret-of-\(prefix)"), namespaceID: namespaceID, actor: actor,
            role: role, createdAt: at, expiresAt: expiresAt)
    }

    public static func session(
        namespaceID: String, actor: String = "alice", agent: String = "demo", metadata: JSONValue = [:], at: Date
    ) -> Session {
        Session(
            id: Identifier.ordered("ses"), namespaceID: namespaceID, actor: actor, agent: agent, metadata: metadata,
            createdAt: at, updatedAt: at)
    }

    public static func audit(
        namespaceID: String, actor: String = "admin", action: String, subject: String, data: JSONValue = [:]
    ) -> AuditDraft {
        AuditDraft(namespaceID: namespaceID, actor: actor, action: action, subject: subject, data: data)
    }
}

/// One tool call of a model step, as the gate would have classified it.
public struct CallSpec: Sendable {
    public enum Gate: Sendable, Equatable {
        /// Allowed without asking: the call is `ready`.
        case auto
        /// Gated: the call is `awaiting` and gets a pending confirmation.
        case confirm
        /// Refused by policy: settled at once with this message.
        case blocked(String)
    }

    public var toolName: String
    public var params: JSONValue
    public var gate: Gate
    /// Provenance the engine records: the rule that matched, the grant that let the
    /// call run, and for a confirmation why it was asked and what tainted the session.
    public var ruleID: String?
    public var grantID: String?
    public var policy: ConfirmationPolicy = .always
    public var taintedBy: TaintSource?

    public func with(
        ruleID: String? = nil, grantID: String? = nil, policy: ConfirmationPolicy = .always,
        taintedBy: TaintSource? = nil
    ) -> CallSpec {
        var spec = self
        spec.ruleID = ruleID
        spec.grantID = grantID
        spec.policy = policy
        spec.taintedBy = taintedBy
        return spec
    }

    public init(toolName: String, params: JSONValue, gate: Gate) {
        self.toolName = toolName
        self.params = params
        self.gate = gate
    }

    public static func auto(_ toolName: String = "read_file", _ params: JSONValue = ["path": "notes.txt"]) -> CallSpec {
        CallSpec(toolName: toolName, params: params, gate: .auto)
    }

    public static func confirm(
        _ toolName: String = "write_file", _ params: JSONValue = ["path": "notes.txt", "content": "hello"]
    ) -> CallSpec {
        CallSpec(toolName: toolName, params: params, gate: .confirm)
    }

    public static func blocked(_ toolName: String = "delete_file", reason: String = "Policy does not allow it.")
        -> CallSpec
    {
        CallSpec(toolName: toolName, params: ["path": "notes.txt"], gate: .blocked(reason))
    }
}

/// What ``StoreScenario/commitStep(run:step:text:calls:at:ttl:tokens:pause:)`` committed.
public struct CommittedStep: Sendable {
    public var step: Int
    public var text: String
    public var modelCalls: [ModelToolCall]
    public var calls: [ToolCall]
    public var confirmations: [Confirmation]
    public var events: [SessionEvent]

    /// The confirmation of the call at `index` (which must be gated).
    public func confirmation(ofCall index: Int) -> Confirmation? {
        confirmations.first { $0.callID == calls[index].id }
    }
}

/// A migrated store with one namespace, and shortcuts to the states that store checks
/// start from. Each shortcut goes through the public ``Store`` API only.
public struct StoreScenario: Sendable {
    public let store: any Store
    public let namespace: Namespace

    public init(store: any Store, namespace: Namespace) {
        self.store = store
        self.namespace = namespace
    }

    /// Migrates `store` and creates a namespace named `namespaceName`.
    public static func make(
        _ store: any Store, namespaceName: String = "conformance", at: Date = StoreFixtures.base
    ) async throws -> StoreScenario {
        try await store.migrate()
        let namespace = StoreFixtures.namespace(namespaceName, at: at)
        try await store.createNamespace(
            namespace,
            audit: StoreFixtures.audit(
                namespaceID: namespace.id, actor: "system", action: "namespace.created", subject: namespace.id,
                data: ["name": .string(namespaceName)]))
        return StoreScenario(store: store, namespace: namespace)
    }

    public func newSession(actor: String = "alice", at: Date = StoreFixtures.time(seconds: 1)) async throws
        -> Session
    {
        let session = StoreFixtures.session(namespaceID: namespace.id, actor: actor, at: at)
        _ = try await store.createSession(
            session, events: [],
            audit: StoreFixtures.audit(
                namespaceID: namespace.id, actor: actor, action: "session.created", subject: session.id,
                data: ["agent": .string(session.agent)]))
        return session
    }

    /// Starts a run on `session` (which must be idle).
    public func startRun(
        in session: Session, message: String = "please write my notes", at: Date = StoreFixtures.time(seconds: 2)
    ) async throws -> Run {
        let run = Run(id: Identifier.ordered("run"), sessionID: session.id, createdAt: at)
        _ = try await store.startRun(run, message: message, now: at)
        return run
    }

    /// Commits one model step of `run` whose tool calls are classified by `calls`.
    public func commitStep(
        run: Run, step: Int = 1, text: String = "On it.", calls specs: [CallSpec],
        at: Date = StoreFixtures.time(seconds: 3), ttl: TimeInterval = 300, tokens: String = "", pause: Bool = false
    ) async throws -> CommittedStep {
        var modelCalls: [ModelToolCall] = []
        var calls: [ToolCall] = []
        var confirmations: [Confirmation] = []
        for (index, spec) in specs.enumerated() {
            let modelCall = ModelToolCall(
                id: "model_call_\(step)_\(index)", name: spec.toolName, arguments: spec.params)
            modelCalls.append(modelCall)
            var call = ToolCall(
                id: Identifier.ordered("call"), sessionID: run.sessionID, runID: run.id, step: step, index: index,
                modelCallID: modelCall.id, toolName: spec.toolName, params: spec.params, gate: .auto, status: .ready)
            call.ruleID = spec.ruleID
            call.grantID = spec.grantID
            switch spec.gate {
            case .auto:
                break
            case .blocked(let reason):
                call.gate = .deniedByPolicy
                call.status = .blocked
                call.output = .failure(reason)
            case .confirm:
                let confirmation = Confirmation(
                    id: Identifier.ordered("conf"), namespaceID: namespace.id, sessionID: run.sessionID, runID: run.id,
                    callID: call.id, toolName: spec.toolName, toolKey: "files.\(spec.toolName)",
                    summary: "Run \(spec.toolName) with \(spec.params.canonicalString)", policy: spec.policy,
                    ruleID: spec.ruleID, params: spec.params, requestedBy: "agent:demo", createdAt: at,
                    expiresAt: at.addingTimeInterval(ttl), taintedBy: spec.taintedBy)
                call.gate = .awaitingConfirmation
                call.status = .awaiting
                call.confirmationID = confirmation.id
                confirmations.append(confirmation)
            }
            calls.append(call)
        }
        let events = try await store.commitStep(
            StepCommit(
                runID: run.id, sessionID: run.sessionID, namespaceID: namespace.id, step: step, text: text,
                modelCalls: modelCalls, calls: calls, confirmations: confirmations, actor: "alice", tokens: tokens,
                now: at, pause: pause))
        return CommittedStep(
            step: step, text: text, modelCalls: modelCalls, calls: calls, confirmations: confirmations, events: events)
    }

    /// A session whose run committed one step with `calls` and then paused at the gate
    /// (at least one call must be gated).
    public func pausedRun(
        calls specs: [CallSpec] = [.confirm()], actor: String = "alice", ttl: TimeInterval = 300,
        sessionAt: Date = StoreFixtures.time(seconds: 1)
    ) async throws -> (session: Session, run: Run, step: CommittedStep) {
        let session = try await newSession(actor: actor, at: sessionAt)
        let run = try await startRun(in: session, at: sessionAt.addingTimeInterval(1))
        let step = try await commitStep(run: run, calls: specs, at: sessionAt.addingTimeInterval(2), ttl: ttl)
        let outcome = try await store.pauseRun(runID: run.id, now: sessionAt.addingTimeInterval(2))
        guard case .paused = outcome else {
            throw CountersignError(.internal, "pauseRun did not pause: \(outcome)")
        }
        return (session, run, step)
    }

    /// Every event of a session, paging through the log.
    public func allEvents(of sessionID: String) async throws -> [SessionEvent] {
        var all: [SessionEvent] = []
        while true {
            let cursor = all.last?.seq ?? 0
            let page = try await store.events(sessionID: sessionID, after: cursor, limit: 100)
            guard page.allSatisfy({ $0.seq > cursor }) else {
                throw CountersignError(.internal, "events(after: \(cursor)) returned an event at or before the cursor")
            }
            all += page
            if page.count < 100 { return all }
        }
    }

    /// Every audit entry of a namespace (this scenario's by default), in chain order.
    public func allAudit(of namespaceID: String? = nil) async throws -> [AuditEntry] {
        var all: [AuditEntry] = []
        while true {
            let cursor = all.last?.id ?? 0
            let page = try await store.auditEntries(
                namespaceID: namespaceID ?? namespace.id, afterID: cursor, limit: 100)
            guard page.allSatisfy({ $0.id > cursor }) else {
                throw CountersignError(
                    .internal, "auditEntries(afterID: \(cursor)) returned an entry at or before the cursor")
            }
            all += page
            if page.count < 100 { return all }
        }
    }

    /// Every confirmation of a session, oldest first.
    public func confirmations(of sessionID: String) async throws -> [Confirmation] {
        try await store.confirmations(
            namespaceID: namespace.id, filter: ConfirmationFilter(sessionID: sessionID, limit: 10_000))
    }
}
