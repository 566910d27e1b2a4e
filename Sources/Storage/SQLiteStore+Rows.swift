import AgentRuntime
import Foundation
import GRDB
import GateCore

extension Date {
    /// Milliseconds since 1970, the stores' time format.
    public var millis: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }

    public init(millis: Int64) {
        self.init(timeIntervalSince1970: TimeInterval(millis) / 1000)
    }
}

/// Row mapping and the small writes shared by the store's transactions.
extension SQLiteStore {
    static func json(_ text: String?) throws -> JSONValue? {
        guard let text else { return nil }
        return try JSONValue.parse(text)
    }

    // MARK: Reads

    static func namespace(_ row: inout ColumnRow) -> Namespace {
        Namespace(id: row["id"], name: row["name"], createdAt: Date(millis: row["created_at"]))
    }

    static func apiKey(_ row: inout ColumnRow) -> APIKey {
        APIKey(
            prefix: row["prefix"], hash: row["hash"], namespaceID: row["namespace_id"], actor: row["actor"],
            role: Role(rawValue: row["role"]) ?? .member, createdAt: Date(millis: row["created_at"]),
            expiresAt: (row["expires_at"] as Int64?).map(Date.init(millis:)),
            revokedAt: (row["revoked_at"] as Int64?).map(Date.init(millis:)))
    }

    static func session(_ row: inout ColumnRow) throws -> Session {
        Session(
            id: row["id"], namespaceID: row["namespace_id"], actor: row["actor"], agent: row["agent"],
            status: SessionStatus(rawValue: row["status"]) ?? .failed,
            metadata: try json(row["metadata"]) ?? .object([:]), tainted: row["tainted"],
            taintedBy: TaintSource(json: try json(row["tainted_by"])), activeRunID: row["active_run_id"],
            lastSeq: row["last_seq"], createdAt: Date(millis: row["created_at"]),
            updatedAt: Date(millis: row["updated_at"]))
    }

    static func run(_ row: inout ColumnRow) -> Run {
        Run(
            id: row["id"], sessionID: row["session_id"], status: RunStatus(rawValue: row["status"]) ?? .failed,
            step: row["step"], finalStepOnly: row["final_step_only"], error: row["error"],
            createdAt: Date(millis: row["created_at"]), endedAt: (row["ended_at"] as Int64?).map(Date.init(millis:)))
    }

    static func toolCall(_ row: inout ColumnRow) throws -> ToolCall {
        var call = ToolCall(
            id: row["id"], sessionID: row["session_id"], runID: row["run_id"], step: row["step"], index: row["idx"],
            modelCallID: row["model_call_id"], toolName: row["tool_name"], params: try json(row["params"]) ?? .null,
            gate: GateOutcome(rawValue: row["gate"]) ?? .auto,
            status: ToolCallStatus(rawValue: row["status"]) ?? .blocked, confirmationID: row["confirmation_id"],
            output: try decodeStoredIfPresent(ToolOutput.self, row["output"]),
            originalParams: try json(row["original_params"]))
        call.ruleID = row["rule_id"]
        call.grantID = row["grant_id"]
        return call
    }

    static func confirmation(_ row: inout ColumnRow) throws -> Confirmation {
        var confirmation = Confirmation(
            id: row["id"], namespaceID: row["namespace_id"], sessionID: row["session_id"], runID: row["run_id"],
            callID: row["call_id"], toolName: row["tool_name"], toolKey: row["tool_key"], summary: row["summary"],
            policy: ConfirmationPolicy(rawValue: row["policy"]) ?? .always, ruleID: row["rule_id"],
            params: try json(row["params"]) ?? .null, requestedBy: row["requested_by"],
            createdAt: Date(millis: row["created_at"]), expiresAt: Date(millis: row["expires_at"]),
            status: ConfirmationStatus(rawValue: row["status"]) ?? .failed,
            decision: try decodeStoredIfPresent(Decision.self, row["decision"]),
            taintedBy: TaintSource(json: try json(row["tainted_by"])))
        confirmation.paramsHash = row["params_hash"]
        return confirmation
    }

    static func event(_ row: inout ColumnRow) throws -> SessionEvent {
        SessionEvent(
            sessionID: row["session_id"], seq: row["seq"], type: row["type"], data: try json(row["data"]) ?? .null,
            createdAt: Date(millis: row["created_at"]))
    }

    static func loadSession(_ db: Database, _ id: String) throws -> Session? {
        try db.fetchOneCached(sql: "SELECT * FROM sessions WHERE id = ?", arguments: [id], decode: session)
    }

    static func loadRun(_ db: Database, _ id: String) throws -> Run? {
        try db.fetchOneCached(sql: "SELECT * FROM runs WHERE id = ?", arguments: [id], decode: run)
    }

    static func loadToolCall(_ db: Database, _ id: String) throws -> ToolCall? {
        try db.fetchOneCached(sql: "SELECT * FROM tool_calls WHERE id = ?", arguments: [id], decode: toolCall)
    }

    /// Where a page of `table` (sessions or confirmations, ordered by creation) starts or
    /// ends: the `created_at` and `id` of the row `id`, if it is in the namespace.
    static func pageCursor(_ db: Database, _ table: String, id: String, namespaceID: String) throws
        -> (createdAt: Int64, id: String)?
    {
        try db.fetchOneCached(
            sql: "SELECT created_at, id FROM \(table) WHERE id = ? AND namespace_id = ?",
            arguments: [id, namespaceID]
        ) { row in (row["created_at"], row["id"]) }
    }

    static func loadConfirmation(_ db: Database, _ id: String) throws -> Confirmation? {
        try db.fetchOneCached(sql: "SELECT * FROM confirmations WHERE id = ?", arguments: [id], decode: confirmation)
    }

    /// The conversation as the model sees it (``Store/history(sessionID:)``).
    static func loadHistory(_ db: Database, _ sessionID: String) throws -> [ChatMessage] {
        let messages = try db.fetchAllCached(
            sql: "SELECT run_id, step, body FROM messages WHERE session_id = ? ORDER BY idx",
            arguments: [sessionID]
        ) { row -> (runID: String, step: Int, body: String) in (row["run_id"], row["step"], row["body"]) }
        let calls = try db.fetchAllCached(
            sql: "SELECT * FROM tool_calls WHERE session_id = ? ORDER BY run_id, step, idx",
            arguments: [sessionID], decode: Self.toolCall)
        var byStep: [String: [ToolCall]] = [:]
        for call in calls { byStep["\(call.runID)#\(call.step)", default: []].append(call) }
        var history: [ChatMessage] = []
        for row in messages {
            let message = try decodeStored(ChatMessage.self, row.body)
            history.append(message)
            guard case .assistant(_, let modelCalls) = message, !modelCalls.isEmpty else { continue }
            for call in byStep["\(row.runID)#\(row.step)"] ?? [] where call.status.isSettled {
                history.append(
                    .tool(callID: call.modelCallID, name: call.toolName, content: call.output?.content ?? ""))
            }
        }
        return history
    }

    static func loadGrants(_ db: Database, _ sessionID: String) throws -> [Grant] {
        try db.fetchAllCached(
            sql: "SELECT * FROM session_grants WHERE session_id = ? ORDER BY created_at, id",
            arguments: [sessionID], decode: grant)
    }

    // MARK: Writes

    static func insertNamespace(_ db: Database, _ namespace: Namespace) throws {
        try db.executeCached(
            sql: "INSERT INTO namespaces (id, name, created_at) VALUES (?, ?, ?)",
            arguments: [namespace.id, namespace.name, namespace.createdAt.millis])
    }

    static func insertKey(_ db: Database, _ key: APIKey) throws {
        try db.executeCached(
            sql: """
                INSERT INTO api_keys (prefix, hash, namespace_id, actor, role, created_at, expires_at, revoked_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                key.prefix, key.hash, key.namespaceID, key.actor, key.role.rawValue, key.createdAt.millis,
                key.expiresAt?.millis, key.revokedAt?.millis,
            ])
    }

    /// Appends a message whose body is already encoded (``encodeStored(_:)`` of a
    /// `ChatMessage`, done before the write so the writer only binds it).
    static func insertMessage(
        _ db: Database, sessionID: String, runID: String, step: Int, body: String, now: Date
    ) throws {
        let next =
            try Int.fetchOneCached(
                db, sql: "SELECT COALESCE(MAX(idx), -1) + 1 FROM messages WHERE session_id = ?",
                arguments: [sessionID]) ?? 0
        try db.executeCached(
            sql: "INSERT INTO messages (session_id, idx, run_id, step, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [sessionID, next, runID, step, body, now.millis])
    }

    /// A call's row, encoded before the write so the writer only binds it.
    static func toolCallRow(_ call: ToolCall) -> StatementArguments {
        [
            call.id, call.sessionID, call.runID, call.step, call.index, call.modelCallID, call.toolName,
            call.params.canonicalString, call.originalParams?.canonicalString, call.gate.rawValue,
            call.status.rawValue, call.confirmationID, encodeStored(call.output), call.ruleID, call.grantID,
        ]
    }

    static func insertToolCall(_ db: Database, row: StatementArguments) throws {
        try db.executeCached(
            sql: """
                INSERT INTO tool_calls (id, session_id, run_id, step, idx, model_call_id, tool_name, params,
                    original_params, gate, status, confirmation_id, output, rule_id, grant_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: row)
    }

    /// Writes a call's status and output. Its params change only when a person edits
    /// them, which `apply` writes with ``updateToolCallParams(_:_:)``.
    static func updateToolCall(_ db: Database, _ call: ToolCall) throws {
        try updateToolCall(db, call, encodedOutput: encodeStored(call.output))
    }

    /// ``updateToolCall(_:_:)`` with the output encoded before the write.
    static func updateToolCall(_ db: Database, _ call: ToolCall, encodedOutput: String?) throws {
        try db.executeCached(
            sql: "UPDATE tool_calls SET status = ?, output = ? WHERE id = ?",
            arguments: [call.status.rawValue, encodedOutput, call.id])
    }

    static func updateToolCallParams(_ db: Database, _ call: ToolCall) throws {
        try db.executeCached(
            sql: "UPDATE tool_calls SET params = ?, original_params = ? WHERE id = ?",
            arguments: [call.params.canonicalString, call.originalParams?.canonicalString, call.id])
    }

    /// A confirmation's row, encoded before the write so the writer only binds it.
    static func confirmationRow(_ confirmation: Confirmation) -> StatementArguments {
        [
            confirmation.id, confirmation.namespaceID, confirmation.sessionID, confirmation.runID,
            confirmation.callID, confirmation.toolName, confirmation.toolKey, confirmation.summary,
            confirmation.policy.rawValue, confirmation.ruleID, confirmation.params.canonicalString,
            confirmation.paramsHash, confirmation.requestedBy, confirmation.createdAt.millis,
            confirmation.expiresAt.millis, confirmation.status.rawValue, encodeStored(confirmation.decision),
            confirmation.taintedBy?.json.canonicalString,
        ]
    }

    static func insertConfirmation(_ db: Database, row: StatementArguments) throws {
        try db.executeCached(
            sql: """
                INSERT INTO confirmations (id, namespace_id, session_id, run_id, call_id, tool_name, tool_key, summary,
                    policy, rule_id, params, params_hash, requested_by, created_at, expires_at, status, decision,
                    tainted_by)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: row)
    }

    static func updateConfirmation(_ db: Database, _ confirmation: Confirmation) throws {
        try db.executeCached(
            sql: "UPDATE confirmations SET status = ?, decision = ? WHERE id = ?",
            arguments: [confirmation.status.rawValue, encodeStored(confirmation.decision), confirmation.id])
    }

    /// What a transition after the decision (claim, finish, crash, rerun) reads and
    /// writes of a confirmation: its state, not the recorded decision, which is neither
    /// decoded nor written again.
    struct ConfirmationState {
        let id: String
        let namespaceID: String
        var status: ConfirmationStatus
        let expiresAt: Date
        let paramsHash: String

        var machine: ConfirmationMachine {
            ConfirmationMachine(status: status, expiresAt: expiresAt, paramsHash: paramsHash)
        }
    }

    static func loadConfirmationState(_ db: Database, _ id: String) throws -> ConfirmationState? {
        try db.fetchOneCached(
            sql: "SELECT id, namespace_id, status, expires_at, params_hash FROM confirmations WHERE id = ?",
            arguments: [id]
        ) { row in
            ConfirmationState(
                id: row["id"], namespaceID: row["namespace_id"],
                status: ConfirmationStatus(rawValue: row["status"]) ?? .failed,
                expiresAt: Date(millis: row["expires_at"]), paramsHash: row["params_hash"])
        }
    }

    static func updateConfirmationStatus(_ db: Database, _ confirmation: ConfirmationState) throws {
        try db.executeCached(
            sql: "UPDATE confirmations SET status = ? WHERE id = ?",
            arguments: [confirmation.status.rawValue, confirmation.id])
    }

    static func insertGrant(_ db: Database, _ grant: Grant) throws {
        try db.executeCached(
            sql: """
                INSERT INTO session_grants (id, session_id, tool_name, scope, confirmation_id, created_by, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                grant.id, grant.sessionID, grant.toolName,
                grant.scope.isEmpty ? nil : ValueMatcher.json(grant.scope).canonicalString, grant.confirmationID,
                grant.createdBy, grant.createdAt.millis,
            ])
    }

    /// The audit entry of a call that a rule or a grant let through (or a rule refused)
    /// without asking anyone.
    static func policyAudit(_ call: ToolCall, namespaceID: String) -> AuditDraft {
        var data: JSONValue = [
            "session_id": .string(call.sessionID), "call_id": .string(call.id), "tool_name": .string(call.toolName),
            "params": call.params, "params_hash": .string(call.params.canonicalHash),
        ]
        if let ruleID = call.ruleID { data = data.setting("rule_id", .string(ruleID)) }
        if let grantID = call.grantID { data = data.setting("grant_id", .string(grantID)) }
        let refused = call.gate == .deniedByPolicy
        return AuditDraft(
            namespaceID: namespaceID, actor: "policy", action: refused ? "tool_call.refused" : "tool_call.allowed",
            subject: call.id, data: data)
    }

    static func grant(_ row: inout ColumnRow) throws -> Grant {
        var scope: [String: ValueMatcher] = [:]
        if let json = try json(row["scope"]) { scope = (try? ValueMatcher.parseAll(json)) ?? [:] }
        return Grant(
            id: row["id"], sessionID: row["session_id"], toolName: row["tool_name"], scope: scope,
            confirmationID: row["confirmation_id"], createdBy: row["created_by"],
            createdAt: Date(millis: row["created_at"]))
    }

    /// Appends events, assigning consecutive seqs from the session's counter.
    static func appendEvents(_ db: Database, sessionID: String, _ drafts: [EventDraft], now: Date) throws
        -> [SessionEvent]
    {
        guard !drafts.isEmpty else { return [] }
        guard
            let last = try Int64.fetchOneCached(
                db, sql: "SELECT last_seq FROM sessions WHERE id = ?", arguments: [sessionID])
        else { throw CountersignError.notFound("Session") }
        var events: [SessionEvent] = []
        var seq = last
        for draft in drafts {
            seq += 1
            try db.executeCached(
                sql: "INSERT INTO events (session_id, seq, type, data, created_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [sessionID, seq, draft.type, draft.canonicalData, now.millis])
            events.append(
                SessionEvent(
                    sessionID: sessionID, seq: seq, type: draft.type, data: draft.data,
                    createdAt: Date(millis: now.millis)))
        }
        try db.executeCached(
            sql: "UPDATE sessions SET last_seq = ?, updated_at = ? WHERE id = ?",
            arguments: [seq, now.millis, sessionID])
        return events
    }

    /// Links an entry into its namespace's hash chain.
    static func appendAudit(_ db: Database, _ draft: AuditDraft, at: Date) throws {
        let previous =
            try String.fetchOneCached(
                db, sql: "SELECT hash FROM audit WHERE namespace_id = ? ORDER BY id DESC LIMIT 1",
                arguments: [draft.namespaceID]) ?? AuditEntry.genesisHash
        let at = Date(millis: at.millis)
        let data = draft.canonicalData
        let hash = AuditEntry.computeHash(
            namespaceID: draft.namespaceID, at: at, actor: draft.actor, action: draft.action, subject: draft.subject,
            canonicalData: data, prevHash: previous)
        try db.executeCached(
            sql: """
                INSERT INTO audit (namespace_id, at, actor, action, subject, data, prev_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                draft.namespaceID, at.millis, draft.actor, draft.action, draft.subject, data, previous, hash,
            ])
    }

    /// Writes a confirmation transition and, when it settled the last open
    /// confirmation of a paused run, hands the run back to a driver.
    /// Moves `call` (of a running run, `ready`, or `interrupted` for a rerun) and its
    /// confirmation to `executing`, with the audit entry; the caller appends the
    /// `tool.started` event. False when the confirmation may not run (SPEC §2.2).
    static func claim(_ db: Database, _ call: inout ToolCall, rerun: Bool, now: Date) throws -> Bool {
        if let confirmationID = call.confirmationID {
            guard var confirmation = try loadConfirmationState(db, confirmationID) else {
                throw CountersignError.notFound("Confirmation")
            }
            let transition = confirmation.machine.transition(rerun ? .rerun(idempotent: true) : .claim, at: now)
            guard transition.rejection == nil else { return false }
            confirmation.status = transition.next
            try updateConfirmationStatus(db, confirmation)
            try appendAudit(
                db,
                AuditDraft(
                    namespaceID: confirmation.namespaceID, actor: "system",
                    action: rerun ? "confirmation.rerun" : "confirmation.executing", subject: confirmation.id,
                    data: ["call_id": .string(call.id), "params": call.params]), at: now)
        }
        call.status = .executing
        try updateToolCall(db, call)
        return true
    }

    static func apply(_ db: Database, _ plan: TransitionPlan, now: Date, claimNext: Bool = false) throws
        -> DecisionOutcome
    {
        try updateConfirmation(db, plan.confirmation)
        try updateToolCall(db, plan.call)
        if plan.call.originalParams != nil { try updateToolCallParams(db, plan.call) }
        if let grant = plan.grant { try insertGrant(db, grant) }
        if plan.finalStepOnly {
            try db.executeCached(
                sql: "UPDATE runs SET final_step_only = 1 WHERE id = ?", arguments: [plan.confirmation.runID])
        }
        for entry in plan.audit { try appendAudit(db, entry, at: now) }
        var drafts = plan.events
        if plan.call.status.isSettled { drafts.append(EventFactory.toolResult(plan.call)) }
        var resume: String?
        var claimed: ToolCall?
        if let run = try loadRun(db, plan.confirmation.runID), run.status == .awaiting {
            let pending =
                try Int.fetchOneCached(
                    db, sql: "SELECT COUNT(*) FROM confirmations WHERE run_id = ? AND status = 'pending'",
                    arguments: [run.id]) ?? 0
            if pending == 0 {
                try db.executeCached(sql: "UPDATE runs SET status = 'running' WHERE id = ?", arguments: [run.id])
                try db.executeCached(
                    sql: "UPDATE sessions SET status = 'running', updated_at = ? WHERE id = ?",
                    arguments: [now.millis, run.sessionID])
                resume = run.id
                // The call the run's driver would claim first: the step's first unsettled
                // one, if it is ready (an interrupted one goes first, through the driver).
                if claimNext,
                    var next = try loadStepCalls(db, run).first(where: {
                        $0.status == .ready || $0.status == .interrupted
                    }),
                    next.status == .ready, try claim(db, &next, rerun: false, now: now)
                {
                    drafts.append(EventFactory.toolStarted(next))
                    claimed = next
                }
            }
        }
        let events = try appendEvents(db, sessionID: plan.confirmation.sessionID, drafts, now: now)
        return DecisionOutcome(
            confirmation: plan.confirmation, events: events, resumeRunID: resume, rejection: plan.rejection,
            claimed: claimed)
    }
}
