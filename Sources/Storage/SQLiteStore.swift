import AgentRuntime
import Foundation
import GRDB
import GateCore

/// The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so every
/// committed transaction is on disk before it is reported.
public final class SQLiteStore: Store {
    public let path: String
    let pool: DatabasePool
    /// Batches concurrent write transactions into one commit; nil writes one by one.
    let groupCommit: GroupCommit?
    /// The connections `readNow` reads on.
    let readers: ReadConnections

    /// Opens (creating if needed) the database at `path`. With `groupCommit` (the
    /// default), concurrent writes share commits and fsyncs; without, each write is its
    /// own transaction (the baseline the benchmarks compare against).
    public init(path: String, groupCommit: Bool = true) throws {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            // Keep statement journals in memory. Each write of a group-commit batch runs in
            // a savepoint, and SQLite copies every page a savepoint changes into a
            // statement journal first; past 64 KiB that journal spills to a temporary
            // file, which doubled the page writes of a batch. It is never fsynced and is
            // thrown away at commit, so memory loses nothing.
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        // DatabasePool sets its own `synchronous` after `prepareDatabase`; set FULL on
        // the writer connection afterwards, where it matters.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        self.groupCommit = groupCommit ? GroupCommit(writer: pool) : nil
        readers = ReadConnections(path: path, busyTimeout: 10, limit: configuration.maximumReaderCount)
    }

    /// One write transaction, durable when this returns.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        if let groupCommit { return try await groupCommit.write(body) }
        return try await pool.write(body)
    }

    /// One read transaction, run on the calling thread, on a connection of ``readers``
    /// (or the pool's, when all of those are busy). A read in WAL mode never waits for
    /// the writer, and there are more read connections (5) than the cooperative pool has
    /// threads, so this blocks its thread only while SQLite reads; GRDB's async `read`
    /// would add two thread hand-offs (to the reader's queue and back) to every read,
    /// more than most of the store's reads cost.
    func readNow<T>(_ body: (Database) throws -> T) throws -> T {
        if let value = try readers.read(body) { return value }
        return try pool.read(body)
    }

    /// Write transactions committed so far, the commits they took, and the writer's
    /// time inside them in ns (group commit only).
    public var commitStatistics: (commits: Int, writes: Int, writerBusyNanoseconds: Int)? {
        groupCommit.map { $0.statistics }
    }

    /// The writer connection's `synchronous` level (2 = FULL).
    public func synchronousLevel() async throws -> Int {
        try await pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    public func journalMode() async throws -> String {
        try readNow { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    /// Runs raw SQL; for tests that tamper with rows and for operators' maintenance.
    public func execute(sql: String, arguments: StatementArguments = []) async throws {
        try await pool.write { db in try db.execute(sql: sql, arguments: arguments) }
    }

    public func migrate() async throws {
        try SQLiteMigrations.migrator.migrate(pool)
    }

    /// Migrates up to and including `migration` only (tests of later migrations start
    /// from an older schema), then runs `sql` on it.
    func migrate(upTo migration: String, thenExecute sql: String = "") throws {
        try SQLiteMigrations.migrator.migrate(pool, upTo: migration)
        if !sql.isEmpty { try pool.write { db in try db.execute(sql: sql) } }
    }

    public func ping() async throws {
        _ = try readNow { db in try Int.fetchOneCached(db, sql: "SELECT 1") }
    }

    // MARK: Tenancy

    public func bootstrapIfEmpty(namespace: Namespace, key: APIKey) async throws -> Bool {
        try await write { db in
            let count = try Int.fetchOneCached(db, sql: "SELECT COUNT(*) FROM namespaces") ?? 0
            guard count == 0 else { return false }
            try Self.insertNamespace(db, namespace)
            try Self.insertKey(db, key)
            try Self.appendAudit(
                db,
                AuditDraft(
                    namespaceID: namespace.id, actor: "system", action: "namespace.created", subject: namespace.id,
                    data: ["name": .string(namespace.name)]), at: namespace.createdAt)
            try Self.appendAudit(
                db,
                AuditDraft(
                    namespaceID: namespace.id, actor: "system", action: "key.created", subject: key.prefix,
                    data: ["actor": .string(key.actor), "role": .string(key.role.rawValue)]), at: key.createdAt)
            return true
        }
    }

    public func createNamespace(_ namespace: Namespace, audit: AuditDraft) async throws {
        try await write { db in
            if try Int.fetchOneCached(db, sql: "SELECT 1 FROM namespaces WHERE name = ?", arguments: [namespace.name])
                != nil
            {
                throw CountersignError(
                    .validationError, "A namespace named '\(namespace.name)' already exists.",
                    details: ["field": "name"])
            }
            try Self.insertNamespace(db, namespace)
            try Self.appendAudit(db, audit, at: namespace.createdAt)
        }
    }

    public func namespace(idOrName: String) async throws -> Namespace? {
        try readNow { db in
            try db.fetchOneCached(
                sql: "SELECT * FROM namespaces WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1",
                arguments: [idOrName, idOrName, idOrName], decode: Self.namespace)
        }
    }

    public func namespaces() async throws -> [Namespace] {
        try readNow { db in
            try db.fetchAllCached(sql: "SELECT * FROM namespaces ORDER BY created_at, id", decode: Self.namespace)
        }
    }

    public func createKey(_ key: APIKey, audit: AuditDraft) async throws {
        try await write { db in
            try Self.insertKey(db, key)
            try Self.appendAudit(db, audit, at: key.createdAt)
        }
    }

    public func key(prefix: String) async throws -> APIKey? {
        try readNow { db in
            try db.fetchOneCached(
                sql: "SELECT * FROM api_keys WHERE prefix = ?", arguments: [prefix], decode: Self.apiKey)
        }
    }

    public func keys(namespaceID: String) async throws -> [APIKey] {
        try readNow { db in
            try db.fetchAllCached(
                sql: "SELECT * FROM api_keys WHERE namespace_id = ? ORDER BY created_at, prefix",
                arguments: [namespaceID], decode: Self.apiKey)
        }
    }

    public func revokeKey(prefix: String, namespaceID: String, at: Date, audit: AuditDraft) async throws -> Bool {
        try await write { db in
            try db.executeCached(
                sql: """
                    UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?)
                    WHERE prefix = ? AND namespace_id = ?
                    """, arguments: [at.millis, prefix, namespaceID])
            guard db.changesCount > 0 else { return false }
            try Self.appendAudit(db, audit, at: at)
            return true
        }
    }

    // MARK: Sessions

    public func createSession(_ session: Session, events: [EventDraft], audit: AuditDraft) async throws
        -> [SessionEvent]
    {
        try await write { db in
            try db.executeCached(
                sql: """
                    INSERT INTO sessions (id, namespace_id, actor, agent, status, metadata, tainted, tainted_by,
                        active_run_id, last_seq, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
                    """,
                arguments: [
                    session.id, session.namespaceID, session.actor, session.agent, session.status.rawValue,
                    session.metadata.canonicalString, session.tainted, session.taintedBy?.json.canonicalString,
                    session.activeRunID, session.createdAt.millis, session.updatedAt.millis,
                ])
            try Self.appendAudit(db, audit, at: session.createdAt)
            return try Self.appendEvents(db, sessionID: session.id, events, now: session.createdAt)
        }
    }

    public func session(id: String) async throws -> Session? {
        try readNow { db in try Self.loadSession(db, id) }
    }

    public func sessions(namespaceID: String, actor: String?, beforeID: String?, limit: Int) async throws
        -> [Session]
    {
        try readNow { db in
            var sql = "SELECT * FROM sessions WHERE namespace_id = ?"
            var arguments: StatementArguments = [namespaceID]
            if let actor {
                sql += " AND actor = ?"
                arguments += [actor]
            }
            if let beforeID, let cursor = try Self.pageCursor(db, "sessions", id: beforeID, namespaceID: namespaceID) {
                sql += " AND (created_at < ? OR (created_at = ? AND id < ?))"
                arguments += [cursor.createdAt, cursor.createdAt, cursor.id]
            }
            sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
            arguments += [limit]
            return try db.fetchAllCached(sql: sql, arguments: arguments, decode: Self.session)
        }
    }

    public func history(sessionID: String) async throws -> [ChatMessage] {
        try readNow { db in try Self.loadHistory(db, sessionID) }
    }

    // MARK: Runs

    public func startRun(_ run: Run, message: String, now: Date) async throws -> [SessionEvent] {
        let body = Self.encodeStored(ChatMessage.user(message))
        let drafts = [
            EventFactory.messageCreated(runID: run.id, content: message), EventFactory.runStarted(runID: run.id),
        ]
        return try await write { db in
            guard let session = try Self.loadSession(db, run.sessionID) else {
                throw CountersignError.notFound("Session")
            }
            switch session.status {
            case .awaitingConfirmation:
                let pending = try String.fetchAllCached(
                    db,
                    sql: "SELECT id FROM confirmations WHERE session_id = ? AND status = 'pending' ORDER BY created_at",
                    arguments: [session.id])
                throw CountersignError(
                    .confirmationPending,
                    "A confirmation is pending in this session. Messages never approve: decide it through the "
                        + "decision endpoint first.",
                    details: [
                        "pending_confirmations": .array(pending.map(JSONValue.string)),
                        "plainAffirmativeAccepted": false,
                    ])
            case .running:
                throw CountersignError(.sessionBusy, "A run is already in progress in this session.")
            case .idle, .failed, .cancelled:
                break
            }
            try db.executeCached(
                sql: """
                    INSERT INTO runs (id, session_id, status, step, final_step_only, created_at)
                    VALUES (?, ?, 'running', 0, 0, ?)
                    """, arguments: [run.id, run.sessionID, run.createdAt.millis])
            try db.executeCached(
                sql: "UPDATE sessions SET status = 'running', active_run_id = ?, updated_at = ? WHERE id = ?",
                arguments: [run.id, now.millis, run.sessionID])
            try Self.insertMessage(db, sessionID: run.sessionID, runID: run.id, step: 0, body: body, now: now)
            return try Self.appendEvents(db, sessionID: run.sessionID, drafts, now: now)
        }
    }

    public func modelContext(runID: String) async throws -> ModelContext {
        try readNow { db in
            guard let run = try Self.loadRun(db, runID), run.status == .running else { throw RunStopped() }
            return try Self.loadModelContext(db, run.sessionID)
        }
    }

    public func runSnapshot(runID: String) async throws -> RunSnapshot {
        try readNow { db in try Self.loadRunSnapshot(db, runID) }
    }

    public func runSnapshotAndContext(runID: String) async throws -> (RunSnapshot, ModelContext?) {
        try readNow { db in
            let snapshot = try Self.loadRunSnapshot(db, runID)
            guard snapshot.callsModelNext else { return (snapshot, nil) }
            return (snapshot, try Self.loadModelContext(db, snapshot.session.id))
        }
    }

    static func loadModelContext(_ db: Database, _ sessionID: String) throws -> ModelContext {
        ModelContext(history: try loadHistory(db, sessionID), grants: try loadGrants(db, sessionID))
    }

    static func loadRunSnapshot(_ db: Database, _ runID: String) throws -> RunSnapshot {
        guard let run = try loadRun(db, runID), let session = try loadSession(db, run.sessionID) else {
            throw CountersignError.notFound("Run")
        }
        return RunSnapshot(run: run, session: session, calls: try loadStepCalls(db, run))
    }

    /// The tool calls of the run's current step, in the order the model asked for them.
    static func loadStepCalls(_ db: Database, _ run: Run) throws -> [ToolCall] {
        try db.fetchAllCached(
            sql: "SELECT * FROM tool_calls WHERE run_id = ? AND step = ? ORDER BY idx",
            arguments: [run.id, run.step], decode: toolCall)
    }

    /// Everything `commitStep` writes is encoded here, before the write: the single
    /// writer then only checks the run and binds prepared rows.
    public func commitStep(_ step: StepCommit) async throws -> [SessionEvent] {
        let body = Self.encodeStored(ChatMessage.assistant(text: step.text, toolCalls: step.modelCalls))
        let callRows = step.calls.map(Self.toolCallRow)
        let confirmationRows = step.confirmations.map(Self.confirmationRow)
        var audits = step.confirmations.map { confirmation in
            AuditDraft(
                namespaceID: confirmation.namespaceID, actor: confirmation.requestedBy,
                action: "confirmation.requested", subject: confirmation.id,
                data: [
                    "session_id": .string(confirmation.sessionID), "call_id": .string(confirmation.callID),
                    "tool_name": .string(confirmation.toolName), "params": confirmation.params,
                    "params_hash": .string(confirmation.paramsHash),
                    "policy": .string(confirmation.policy.rawValue),
                    "rule_id": confirmation.ruleID.map(JSONValue.string) ?? .null,
                    "tainted_by": confirmation.taintedBy?.json ?? .null,
                    "expires_at": .string(Timestamp.format(confirmation.expiresAt)),
                ])
        }
        for call in step.calls where call.grantID != nil || (call.ruleID != nil && call.confirmationID == nil) {
            audits.append(Self.policyAudit(call, namespaceID: step.namespaceID))
        }
        let pauses = step.pause && !step.confirmations.isEmpty && !step.calls.contains { $0.status == .ready }
        var drafts: [EventDraft] = []
        if !step.tokens.isEmpty { drafts.append(EventFactory.token(runID: step.runID, text: step.tokens)) }
        drafts.append(EventFactory.messageCompleted(runID: step.runID, text: step.text, calls: step.calls))
        let confirmations = Dictionary(uniqueKeysWithValues: step.confirmations.map { ($0.id, $0) })
        for call in step.calls {
            drafts.append(EventFactory.toolCallCreated(call))
            if let id = call.confirmationID, let confirmation = confirmations[id] {
                drafts.append(EventFactory.confirmationRequired(confirmation))
            }
            if call.status == .blocked { drafts.append(EventFactory.toolResult(call)) }
        }
        return try await write { [drafts, audits] db in
            guard let run = try Self.loadRun(db, step.runID), run.status == .running else { throw RunStopped() }
            try Self.insertMessage(
                db, sessionID: step.sessionID, runID: step.runID, step: step.step, body: body, now: step.now)
            for row in callRows { try Self.insertToolCall(db, row: row) }
            for row in confirmationRows { try Self.insertConfirmation(db, row: row) }
            for audit in audits { try Self.appendAudit(db, audit, at: step.now) }
            try db.executeCached(
                sql: "UPDATE runs SET step = ?, status = ? WHERE id = ?",
                arguments: [step.step, pauses ? RunStatus.awaiting.rawValue : RunStatus.running.rawValue, step.runID])
            if !step.confirmations.isEmpty {
                try db.executeCached(
                    sql: "UPDATE sessions SET status = 'awaiting_confirmation', updated_at = ? WHERE id = ?",
                    arguments: [step.now.millis, step.sessionID])
            }
            return try Self.appendEvents(db, sessionID: step.sessionID, drafts, now: step.now)
        }
    }

    public func appendEvents(runID: String, _ events: [EventDraft], now: Date) async throws -> [SessionEvent] {
        try await write { db in
            guard let run = try Self.loadRun(db, runID), run.status == .running else { throw RunStopped() }
            return try Self.appendEvents(db, sessionID: run.sessionID, events, now: now)
        }
    }

    public func pauseRun(runID: String, now: Date) async throws -> PauseOutcome {
        try await write { db in
            guard let run = try Self.loadRun(db, runID), run.status == .running else { return .stopped }
            let pending =
                try Int.fetchOneCached(
                    db, sql: "SELECT COUNT(*) FROM confirmations WHERE run_id = ? AND status = 'pending'",
                    arguments: [runID]) ?? 0
            if pending == 0 {
                try db.executeCached(
                    sql: "UPDATE sessions SET status = 'running', updated_at = ? WHERE id = ? AND status != 'running'",
                    arguments: [now.millis, run.sessionID])
                return .proceed
            }
            try db.executeCached(sql: "UPDATE runs SET status = 'awaiting' WHERE id = ?", arguments: [runID])
            try db.executeCached(
                sql: "UPDATE sessions SET status = 'awaiting_confirmation', updated_at = ? WHERE id = ?",
                arguments: [now.millis, run.sessionID])
            return .paused([])
        }
    }

    public func claimToolCall(callID: String, rerun: Bool, now: Date) async throws -> ClaimOutcome {
        try await write { db in
            guard var call = try Self.loadToolCall(db, callID) else { throw CountersignError.notFound("Tool call") }
            guard let run = try Self.loadRun(db, call.runID), run.status == .running else {
                return .notClaimable(call.status)
            }
            guard call.status == (rerun ? .interrupted : .ready), try Self.claim(db, &call, rerun: rerun, now: now)
            else { return .notClaimable(call.status) }
            return .claimed(
                try Self.appendEvents(db, sessionID: call.sessionID, [EventFactory.toolStarted(call)], now: now))
        }
    }

    public func finishToolCall(callID: String, output: ToolOutput, taints: Bool, now: Date) async throws
        -> [SessionEvent]
    {
        let encodedOutput = Self.encodeStored(output)
        return try await write { db in
            guard var call = try Self.loadToolCall(db, callID) else { throw CountersignError.notFound("Tool call") }
            guard call.status == .executing else {
                throw CountersignError(.internal, "Tool call \(callID) is \(call.status.rawValue), not executing.")
            }
            call.status = output.success ? .succeeded : .failed
            call.output = output
            try Self.updateToolCall(db, call, encodedOutput: encodedOutput)
            if let confirmationID = call.confirmationID,
                var confirmation = try Self.loadConfirmationState(db, confirmationID)
            {
                confirmation.status = confirmation.machine.transition(.finish(succeeded: output.success), at: now).next
                try Self.updateConfirmationStatus(db, confirmation)
                try Self.appendAudit(
                    db,
                    AuditDraft(
                        namespaceID: confirmation.namespaceID, actor: "system",
                        action: "confirmation.\(confirmation.status.rawValue)", subject: confirmation.id,
                        data: ["call_id": .string(call.id), "success": .bool(output.success)]), at: now)
            }
            var drafts = [EventFactory.toolResult(call)]
            if taints, let session = try Self.loadSession(db, call.sessionID), !session.tainted {
                let source = TaintSource(callID: call.id, toolName: call.toolName)
                try db.executeCached(
                    sql: "UPDATE sessions SET tainted = 1, tainted_by = ? WHERE id = ?",
                    arguments: [source.json.canonicalString, call.sessionID])
                drafts.append(EventFactory.sessionTainted(source))
            }
            return try Self.appendEvents(db, sessionID: call.sessionID, drafts, now: now)
        }
    }

    public func abandonInterrupted(callID: String, now: Date) async throws -> [SessionEvent] {
        try await write { db in
            guard var call = try Self.loadToolCall(db, callID), call.status == .interrupted else { return [] }
            call.status = .failed
            call.output = .failure(TransitionPlanner.unknownOutcomeMessage)
            try Self.updateToolCall(db, call)
            if let confirmationID = call.confirmationID,
                var confirmation = try Self.loadConfirmationState(db, confirmationID)
            {
                confirmation.status = confirmation.machine.transition(.rerun(idempotent: false), at: now).next
                try Self.updateConfirmationStatus(db, confirmation)
                try Self.appendAudit(
                    db,
                    AuditDraft(
                        namespaceID: confirmation.namespaceID, actor: "system", action: "confirmation.outcome_unknown",
                        subject: confirmation.id, data: ["call_id": .string(call.id)]), at: now)
            }
            return try Self.appendEvents(db, sessionID: call.sessionID, [EventFactory.toolResult(call)], now: now)
        }
    }

    public func endRun(runID: String, status: RunStatus, tokens: String, finalText: String?, error: String?, now: Date)
        async throws -> [SessionEvent]
    {
        var drafts: [EventDraft] = []
        if !tokens.isEmpty { drafts.append(EventFactory.token(runID: runID, text: tokens)) }
        var body: String?
        if let finalText {
            body = Self.encodeStored(ChatMessage.assistant(text: finalText, toolCalls: [])) as String
            drafts.append(EventFactory.messageCompleted(runID: runID, text: finalText, calls: []))
        }
        if status == .failed {
            drafts.append(EventFactory.runFailed(runID: runID, error: error ?? "The run failed."))
        } else {
            drafts.append(EventFactory.runCompleted(runID: runID, status: status, reply: finalText))
        }
        return try await write { [drafts, body] db in
            guard let run = try Self.loadRun(db, runID), run.status == .running else { throw RunStopped() }
            if let body {
                try Self.insertMessage(
                    db, sessionID: run.sessionID, runID: runID, step: run.step + 1, body: body, now: now)
            }
            try db.executeCached(
                sql: "UPDATE runs SET status = ?, error = ?, ended_at = ? WHERE id = ?",
                arguments: [status.rawValue, error, now.millis, runID])
            try db.executeCached(
                sql: "UPDATE sessions SET status = 'idle', active_run_id = NULL, updated_at = ? WHERE id = ?",
                arguments: [now.millis, run.sessionID])
            return try Self.appendEvents(db, sessionID: run.sessionID, drafts, now: now)
        }
    }

    public func recoverAfterCrash(now: Date) async throws -> [String] {
        try await write { db in
            let executing = try db.fetchAllCached(
                sql: "SELECT * FROM tool_calls WHERE status = 'executing'", decode: Self.toolCall)
            for var call in executing {
                call.status = .interrupted
                try Self.updateToolCall(db, call)
                if let confirmationID = call.confirmationID,
                    var confirmation = try Self.loadConfirmationState(db, confirmationID)
                {
                    confirmation.status = confirmation.machine.transition(.crash, at: now).next
                    try Self.updateConfirmationStatus(db, confirmation)
                    try Self.appendAudit(
                        db,
                        AuditDraft(
                            namespaceID: confirmation.namespaceID, actor: "system",
                            action: "confirmation.interrupted", subject: confirmation.id,
                            data: ["call_id": .string(call.id)]), at: now)
                }
            }
            return try String.fetchAllCached(
                db, sql: "SELECT id FROM runs WHERE status = 'running' ORDER BY created_at")
        }
    }

    // MARK: Confirmations

    public func decide(
        confirmationID: String, request: DecisionRequest, decidedBy: String, grantAllowed: Bool, claimNext: Bool,
        now: Date
    ) async throws -> DecisionOutcome {
        try await write { db in
            guard let confirmation = try Self.loadConfirmation(db, confirmationID),
                let call = try Self.loadToolCall(db, confirmation.callID)
            else { throw CountersignError.notFound("Confirmation") }
            let plan = try TransitionPlanner.decision(
                request, confirmation: confirmation, call: call, decidedBy: decidedBy, grantAllowed: grantAllowed,
                now: now)
            return try Self.apply(db, plan, now: now, claimNext: claimNext)
        }
    }

    public func expireDue(now: Date, limit: Int) async throws -> [DecisionOutcome] {
        try await write { db in
            let due = try db.fetchAllCached(
                sql: """
                    SELECT * FROM confirmations WHERE status = 'pending' AND expires_at <= ?
                    ORDER BY expires_at LIMIT ?
                    """, arguments: [now.millis, limit], decode: Self.confirmation)
            var outcomes: [DecisionOutcome] = []
            for confirmation in due {
                guard let call = try Self.loadToolCall(db, confirmation.callID),
                    let plan = TransitionPlanner.expiry(confirmation: confirmation, call: call, now: now)
                else { continue }
                outcomes.append(try Self.apply(db, plan, now: now))
            }
            return outcomes
        }
    }

    public func cancelSession(sessionID: String, actor: String, now: Date) async throws -> CancelOutcome {
        try await write { db in
            guard let session = try Self.loadSession(db, sessionID) else { throw CountersignError.notFound("Session") }
            guard let runID = session.activeRunID, let run = try Self.loadRun(db, runID),
                run.status == .running || run.status == .awaiting
            else {
                return CancelOutcome(session: session, cancelled: [], events: [])
            }
            var drafts: [EventDraft] = []
            var cancelled: [Confirmation] = []
            let open = try db.fetchAllCached(
                sql:
                    "SELECT * FROM confirmations WHERE run_id = ? AND status IN ('pending', 'approved') ORDER BY created_at",
                arguments: [runID], decode: Self.confirmation)
            for confirmation in open {
                guard let call = try Self.loadToolCall(db, confirmation.callID),
                    let plan = TransitionPlanner.cancellation(
                        confirmation: confirmation, call: call, actor: actor, now: now)
                else { continue }
                try Self.updateConfirmation(db, plan.confirmation)
                try Self.updateToolCall(db, plan.call)
                for entry in plan.audit { try Self.appendAudit(db, entry, at: now) }
                drafts.append(EventFactory.toolResult(plan.call))
                cancelled.append(plan.confirmation)
            }
            // Auto calls that never started are cancelled too, so history stays complete.
            let unstarted = try db.fetchAllCached(
                sql: "SELECT * FROM tool_calls WHERE run_id = ? AND status IN ('ready', 'interrupted')",
                arguments: [runID], decode: Self.toolCall)
            for var call in unstarted {
                call.status = .cancelled
                call.output = .failure(TransitionPlanner.cancelledMessage)
                try Self.updateToolCall(db, call)
                drafts.append(EventFactory.toolResult(call))
            }
            try db.executeCached(
                sql: "UPDATE runs SET status = 'cancelled', ended_at = ? WHERE id = ?", arguments: [now.millis, runID])
            try db.executeCached(
                sql: "UPDATE sessions SET status = 'cancelled', active_run_id = NULL, updated_at = ? WHERE id = ?",
                arguments: [now.millis, sessionID])
            try Self.appendAudit(
                db,
                AuditDraft(
                    namespaceID: session.namespaceID, actor: actor, action: "run.cancelled", subject: runID,
                    data: ["session_id": .string(sessionID)]), at: now)
            drafts.append(EventFactory.runCompleted(runID: runID, status: .cancelled, reply: nil))
            let events = try Self.appendEvents(db, sessionID: sessionID, drafts, now: now)
            let updated = try Self.loadSession(db, sessionID) ?? session
            return CancelOutcome(session: updated, cancelled: cancelled, events: events)
        }
    }

    public func confirmation(id: String) async throws -> Confirmation? {
        try readNow { db in try Self.loadConfirmation(db, id) }
    }

    public func confirmationAndSession(id: String) async throws -> (Confirmation, Session)? {
        try readNow { db in
            guard let confirmation = try Self.loadConfirmation(db, id),
                let session = try Self.loadSession(db, confirmation.sessionID)
            else { return nil }
            return (confirmation, session)
        }
    }

    public func confirmations(namespaceID: String, filter: ConfirmationFilter) async throws -> [Confirmation] {
        try readNow { db in
            var sql = "SELECT c.* FROM confirmations c"
            var arguments: StatementArguments = []
            if filter.actor != nil { sql += " JOIN sessions s ON s.id = c.session_id" }
            sql += " WHERE c.namespace_id = ?"
            arguments += [namespaceID]
            if let status = filter.status {
                // A literal, not a parameter: the planner uses the partial index of
                // pending confirmations only when the query names 'pending' itself.
                sql += " AND c.status = '\(status.rawValue)'"
            }
            if let sessionID = filter.sessionID {
                sql += " AND c.session_id = ?"
                arguments += [sessionID]
            }
            if let tool = filter.toolName {
                sql += " AND c.tool_name = ?"
                arguments += [tool]
            }
            if let actor = filter.actor {
                sql += " AND s.actor = ?"
                arguments += [actor]
            }
            if let afterID = filter.afterID,
                let cursor = try Self.pageCursor(db, "confirmations", id: afterID, namespaceID: namespaceID)
            {
                sql += " AND (c.created_at > ? OR (c.created_at = ? AND c.id > ?))"
                arguments += [cursor.createdAt, cursor.createdAt, cursor.id]
            }
            sql += " ORDER BY c.created_at, c.id LIMIT ?"
            arguments += [filter.limit]
            return try db.fetchAllCached(sql: sql, arguments: arguments, decode: Self.confirmation)
        }
    }

    public func nextExpiry() async throws -> Date? {
        try readNow { db in
            try Int64.fetchOneCached(db, sql: "SELECT MIN(expires_at) FROM confirmations WHERE status = 'pending'")
                .map(Date.init(millis:))
        }
    }

    public func grants(sessionID: String) async throws -> [Grant] {
        try readNow { db in try Self.loadGrants(db, sessionID) }
    }

    public func revokeGrants(sessionID: String, grantID: String?, toolName: String?, actor: String, now: Date)
        async throws -> GrantRevocation
    {
        try await write { db in
            guard let session = try Self.loadSession(db, sessionID) else { throw CountersignError.notFound("Session") }
            var sql = "SELECT * FROM session_grants WHERE session_id = ?"
            var arguments: StatementArguments = [sessionID]
            if let grantID {
                sql += " AND id = ?"
                _ = arguments.append(contentsOf: [grantID])
            }
            if let toolName {
                sql += " AND tool_name = ?"
                _ = arguments.append(contentsOf: [toolName])
            }
            let grants = try db.fetchAllCached(
                sql: sql + " ORDER BY created_at, id", arguments: arguments, decode: Self.grant)
            for grant in grants {
                try db.executeCached(sql: "DELETE FROM session_grants WHERE id = ?", arguments: [grant.id])
                try Self.appendAudit(
                    db,
                    AuditDraft(
                        namespaceID: session.namespaceID, actor: actor, action: "grant.revoked", subject: grant.id,
                        data: grant.json), at: now)
            }
            let events = try Self.appendEvents(
                db, sessionID: sessionID, grants.map { EventFactory.grantRevoked($0, by: actor) }, now: now)
            return GrantRevocation(grants: grants, events: events)
        }
    }

    // MARK: Events and audit

    public func events(sessionID: String, after: Int64, limit: Int) async throws -> [SessionEvent] {
        try readNow { db in
            try db.fetchAllCached(
                sql: "SELECT * FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                arguments: [sessionID, after, limit], decode: Self.event)
        }
    }

    public func auditEntries(namespaceID: String, afterID: Int64, limit: Int) async throws -> [AuditEntry] {
        try readNow { db in
            try db.fetchAllCached(
                sql: "SELECT * FROM audit WHERE namespace_id = ? AND id > ? ORDER BY id LIMIT ?",
                arguments: [namespaceID, afterID, limit]
            ) { row in
                AuditEntry(
                    id: row["id"], namespaceID: row["namespace_id"], at: Date(millis: row["at"]), actor: row["actor"],
                    action: row["action"], subject: row["subject"], data: try JSONValue.parse(row["data"] as String),
                    prevHash: row["prev_hash"], hash: row["hash"])
            }
        }
    }
}
