import Foundation
import GateCore
import Logging
import Synchronization

/// What a run came to when its driver stopped: finished, or paused at the gate.
public struct RunOutcome: Sendable, Equatable {
    public enum Status: String, Sendable, Codable {
        case completed
        case awaitingConfirmation = "awaiting_confirmation"
        case failed, cancelled
    }

    public var runID: String
    public var sessionID: String
    public var status: Status
    public var reply: String
    public var pendingConfirmations: [Confirmation]
    public var toolsUsed: [String]
    public var error: String?
    /// The session's last event seq when the driver stopped: a stream of this run can
    /// end once it has sent this event.
    public var lastSeq: Int64
}

/// A run being driven in the background. Awaiting `outcome` never cancels the run: a
/// client that disconnects does not stop the agent.
public struct RunHandle: Sendable {
    public var runID: String
    public var sessionID: String
    /// The session's last seq before this drive wrote anything.
    public var startSeq: Int64
    public var task: Task<RunOutcome, Never>

    public var outcome: RunOutcome {
        get async { await task.value }
    }
}

public struct DecisionResult: Sendable {
    public var confirmation: Confirmation
    /// The events the decision itself appended.
    public var events: [SessionEvent]
    /// Set when this decision settled the last open confirmation of its step.
    public var resumed: RunHandle?
}

/// The engine of SPEC §2: it drives a session's run through model steps, runs what
/// the policy allows, stops at the gate for the rest, and resumes when every
/// confirmation of the step is settled. Every state change goes through the
/// ``Store`` first; the engine keeps no state of its own beyond the tasks it drives.
public final class RunEngine: Sendable {
    public struct Configuration: Sendable {
        /// Seconds a confirmation stays pending (SPEC default 300).
        public var confirmationTTL: TimeInterval
        /// Model steps a run may take before it fails.
        public var maxSteps: Int
        /// Confirmations one model step may ask for; gated calls beyond are refused.
        public var maxPendingConfirmations: Int
        /// Where session workspaces live: `<root>/<session_id>/`.
        public var workspaceRoot: URL
        /// Crash points for the crash harness; none in production.
        public var failpoints: Failpoints = .none
        /// Streamed text reaches the log as a `token` event at most this often (seconds);
        /// what is left when the model answers is written with the step.
        public var tokenFlushInterval: TimeInterval = 0.1

        public init(
            confirmationTTL: TimeInterval = 300, maxPendingConfirmations: Int = 32, maxSteps: Int = 24,
            workspaceRoot: URL
        ) {
            self.confirmationTTL = confirmationTTL
            self.maxPendingConfirmations = maxPendingConfirmations
            self.maxSteps = maxSteps
            self.workspaceRoot = workspaceRoot
        }
    }

    public let store: any Store
    public let agents: AgentRegistry
    public let clock: any WallClock
    public let notifier: EventNotifier
    public let configuration: Configuration
    let logger: Logger
    private let drivers = Mutex<[Int: Task<RunOutcome, Never>]>([:])
    private let listeningPorts = Mutex<Set<Int>>([])

    /// The ports the server listens on (set once it is bound); tools get them so that
    /// `http_fetch` does not call back into the server.
    public var serverPorts: Set<Int> {
        get { listeningPorts.withLock { $0 } }
    }

    public func addServerPort(_ port: Int) { _ = listeningPorts.withLock { $0.insert(port) } }
    private let driverIDs = Atomic<Int>(0)

    public init(
        store: any Store, agents: AgentRegistry, clock: any WallClock = SystemClock(),
        notifier: EventNotifier = EventNotifier(), configuration: Configuration,
        logger: Logger = Logger(label: "countersign.engine")
    ) {
        self.store = store
        self.agents = agents
        self.clock = clock
        self.notifier = notifier
        self.configuration = configuration
        self.logger = logger
    }

    public func workspace(of sessionID: String) -> URL {
        configuration.workspaceRoot.appendingPathComponent(sessionID, isDirectory: true)
    }

    // MARK: Sessions

    public func createSession(namespaceID: String, actor: String, agent: String, metadata: JSONValue = [:])
        async throws -> Session
    {
        guard agents[agent] != nil else {
            throw CountersignError.validation(
                "Unknown agent '\(agent)'.", details: ["agents": .array(agents.names.map(JSONValue.string))])
        }
        let now = clock.now()
        let session = Session(
            id: Identifier.ordered("ses"), namespaceID: namespaceID, actor: actor, agent: agent, metadata: metadata,
            createdAt: now, updatedAt: now)
        // One mkdir: the workspaces folder exists after the first session. FileManager's
        // createDirectory stats every ancestor first.
        let folder = workspace(of: session.id)
        if mkdir(folder.path, 0o777) != 0, errno != EEXIST {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        _ = try await store.createSession(
            session, events: [],
            audit: AuditDraft(
                namespaceID: namespaceID, actor: actor, action: "session.created", subject: session.id,
                data: ["agent": .string(agent)]))
        return session
    }

    /// Starts a run for a user message. Words never approve: while a confirmation is
    /// pending this throws `confirmation_pending` and nothing is written.
    public func send(sessionID: String, content: String) async throws -> RunHandle {
        let run = Run(id: Identifier.ordered("run"), sessionID: sessionID, createdAt: clock.now())
        // startRun throws not_found for an unknown session; the seq before its first
        // event is where a stream of this run starts.
        let events = try await store.startRun(run, message: content, now: clock.now())
        notifier.notify(events)
        let startSeq = (events.map(\.seq).min() ?? 1) - 1
        return drive(runID: run.id, sessionID: sessionID, startSeq: startSeq)
    }

    // MARK: Decisions

    /// Decides a confirmation (SPEC §2.1–2.6 minus authorisation, which the caller
    /// checks). Edited params are validated against the tool's schema first.
    public func decide(confirmationID: String, request: DecisionRequest, decidedBy: String) async throws
        -> DecisionResult
    {
        guard let (confirmation, session) = try await store.confirmationAndSession(id: confirmationID) else {
            throw CountersignError.notFound("Confirmation")
        }
        return try await decide(confirmation, in: session, request: request, decidedBy: decidedBy)
    }

    /// ``decide(confirmationID:request:decidedBy:)`` for a caller that has just read the
    /// confirmation and its session (for its access check): they are read only to
    /// validate the request, and the store's decision re-checks the row itself.
    public func decide(_ confirmation: Confirmation, in session: Session, request: DecisionRequest, decidedBy: String)
        async throws -> DecisionResult
    {
        let confirmationID = confirmation.id
        let tool = agents[session.agent]?.tool(named: confirmation.toolName)
        var grantAllowed = false
        if let agent = agents[session.agent], let tool {
            grantAllowed = agent.policy.allowsGrant(toolName: tool.descriptor.name, flags: tool.descriptor.flags)
        }
        if let edited = request.editedParams {
            guard request.kind == .approve else {
                throw CountersignError.validation("edited_params is allowed only with decision 'approve'.")
            }
            if let tool {
                let violations = JSONSchema(tool.descriptor.inputSchema).validate(edited)
                if !violations.isEmpty {
                    throw CountersignError.validation(
                        "edited_params do not match the tool's input schema.",
                        details: [
                            "violations": .array(
                                violations.map { ["path": .string($0.path), "message": .string($0.message)] })
                        ])
                }
            }
        }
        if request.kind == .approve, request.remember == .session, !grantAllowed,
            confirmation.status == .pending
        {
            throw CountersignError.validation(
                "remember: session is not allowed for \(confirmation.toolName) (destructive tools are never "
                    + "remembered unless the agent config allows it).")
        }
        if let scope = request.grantScope, confirmation.status == .pending {
            guard request.kind == .approve, request.remember == .session else {
                throw CountersignError.validation(
                    "grant_scope is allowed only with decision 'approve' and remember 'session'.")
            }
            let approved = request.editedParams ?? confirmation.params
            let unmatched = scope.keys.sorted().filter { !(scope[$0]!.matches(approved[$0])) }
            if !unmatched.isEmpty {
                throw CountersignError.validation(
                    "grant_scope must cover the call being approved; it does not match its "
                        + unmatched.joined(separator: ", ") + ".",
                    details: ["arguments": .array(unmatched.map(JSONValue.string))])
            }
        }
        // A decision that lets the run go on also claims the call the run would run
        // first, in its own transaction (one commit instead of two; see Store.decide).
        // Without the session's agent the run only fails, so nothing is claimed.
        let agent = agents[session.agent]
        let outcome = try await store.decide(
            confirmationID: confirmationID, request: request, decidedBy: decidedBy, grantAllowed: grantAllowed,
            claimNext: agent != nil, now: clock.now())
        configuration.failpoints.hit("after-decide")
        notifier.notify(outcome.events)
        var resumed: RunHandle?
        if let runID = outcome.resumeRunID {
            let startSeq = (outcome.events.map(\.seq).min() ?? 1) - 1
            let claimed = outcome.claimed.map { ClaimedCall(call: $0, tool: agent?.tool(named: $0.toolName)) }
            resumed = drive(runID: runID, sessionID: confirmation.sessionID, startSeq: startSeq, claimed: claimed)
        }
        if let rejection = outcome.rejection { throw rejection }
        return DecisionResult(confirmation: outcome.confirmation, events: outcome.events, resumed: resumed)
    }

    /// Expires every due confirmation and resumes the runs that were waiting only on
    /// them. Returns how many expired.
    @discardableResult
    public func expireDue(limit: Int = 500) async throws -> Int {
        let outcomes = try await store.expireDue(now: clock.now(), limit: limit)
        for outcome in outcomes {
            notifier.notify(outcome.events)
            if let runID = outcome.resumeRunID {
                let startSeq = (outcome.events.map(\.seq).min() ?? 1) - 1
                _ = drive(runID: runID, sessionID: outcome.confirmation.sessionID, startSeq: startSeq)
            }
        }
        return outcomes.count
    }

    public func cancel(sessionID: String, actor: String) async throws -> CancelOutcome {
        let outcome = try await store.cancelSession(sessionID: sessionID, actor: actor, now: clock.now())
        notifier.notify(outcome.events)
        return outcome
    }

    /// Revokes grants of a session (one, one tool's, or all) and tells its streams.
    public func revokeGrants(sessionID: String, grantID: String?, toolName: String?, actor: String) async throws
        -> [Grant]
    {
        let revocation = try await store.revokeGrants(
            sessionID: sessionID, grantID: grantID, toolName: toolName, actor: actor, now: clock.now())
        notifier.notify(revocation.events)
        return revocation.grants
    }

    /// After a restart: interrupted calls are marked and every run that was running is
    /// driven again.
    public func recover() async throws -> [RunHandle] {
        let runIDs = try await store.recoverAfterCrash(now: clock.now())
        var handles: [RunHandle] = []
        for runID in runIDs {
            guard let snapshot = try? await store.runSnapshot(runID: runID) else { continue }
            handles.append(drive(runID: runID, sessionID: snapshot.session.id, startSeq: snapshot.session.lastSeq))
        }
        return handles
    }

    /// Waits for every run being driven to stop (graceful shutdown).
    public func drain() async {
        let tasks = drivers.withLock { Array($0.values) }
        for task in tasks { _ = await task.value }
    }

    public var activeDrivers: Int { drivers.withLock { $0.count } }

    // MARK: Driving

    /// A call claimed by the decision that resumed its run, and its tool.
    private struct ClaimedCall: Sendable {
        var call: ToolCall
        var tool: (any Tool)?
    }

    private func drive(runID: String, sessionID: String, startSeq: Int64, claimed: ClaimedCall? = nil) -> RunHandle {
        let id = driverIDs.wrappingAdd(1, ordering: .relaxed).newValue
        let task = Task { [self] in
            let outcome = await self.runLoop(runID: runID, claimed: claimed)
            _ = drivers.withLock { $0.removeValue(forKey: id) }
            return outcome
        }
        drivers.withLock { $0[id] = task }
        return RunHandle(runID: runID, sessionID: sessionID, startSeq: startSeq, task: task)
    }

    private func runLoop(runID: String, claimed: ClaimedCall?) async -> RunOutcome {
        var toolsUsed: [String] = []
        var reply = ""
        do {
            if let claimed {
                try await run(claimed.call, tool: claimed.tool)
                toolsUsed.append(claimed.call.toolName)
            }
            while true {
                // When the model is next, its context comes in the snapshot's transaction.
                let (snapshot, context) = try await store.runSnapshotAndContext(runID: runID)
                guard snapshot.run.status == .running else {
                    return try await outcome(of: snapshot, toolsUsed: toolsUsed, reply: reply)
                }
                guard let agent = agents[snapshot.session.agent] else {
                    let events = try await store.endRun(
                        runID: runID, status: .failed, tokens: "", finalText: nil,
                        error: "Agent '\(snapshot.session.agent)' is not configured on this server.",
                        now: clock.now())
                    notifier.notify(events)
                    continue
                }
                if !snapshot.calls.isEmpty {
                    for call in snapshot.calls {
                        if try await settle(call, agent: agent) { toolsUsed.append(call.toolName) }
                    }
                    // With nothing of the step awaiting a decision and the session already
                    // running, pauseRun could only answer .proceed (or .stopped, which
                    // modelContext reports as RunStopped before any model call): skip
                    // that write.
                    let mayWait =
                        snapshot.session.status != .running || snapshot.calls.contains { $0.status == .awaiting }
                    if mayWait {
                        switch try await store.pauseRun(runID: runID, now: clock.now()) {
                        case .paused(let events):
                            notifier.notify(events)
                            continue
                        case .stopped:
                            continue
                        case .proceed:
                            break
                        }
                    }
                }
                switch try await modelStep(snapshot: snapshot, agent: agent, context: context) {
                case .next(let text):
                    reply = text
                case .stopped(let status, let text, let pending, let lastSeq):
                    // The step's own commit paused or ended the run: its outcome is known
                    // without reading the run again.
                    return RunOutcome(
                        runID: runID, sessionID: snapshot.session.id, status: status, reply: text,
                        pendingConfirmations: pending, toolsUsed: toolsUsed, error: nil, lastSeq: lastSeq)
                }
            }
        } catch is RunStopped {
            return (try? await outcomeAfterStop(runID: runID, toolsUsed: toolsUsed, reply: reply))
                ?? RunOutcome(
                    runID: runID, sessionID: "", status: .cancelled, reply: reply, pendingConfirmations: [],
                    toolsUsed: toolsUsed, error: nil, lastSeq: 0)
        } catch {
            let message = (error as? CountersignError)?.message ?? "The run failed: \(error)"
            logger.error("run failed", metadata: ["run_id": "\(runID)", "error": "\(error)"])
            if let events = try? await store.endRun(
                runID: runID, status: .failed, tokens: "", finalText: nil, error: message, now: clock.now())
            {
                notifier.notify(events)
            }
            return (try? await outcomeAfterStop(runID: runID, toolsUsed: toolsUsed, reply: reply))
                ?? RunOutcome(
                    runID: runID, sessionID: "", status: .failed, reply: reply, pendingConfirmations: [],
                    toolsUsed: toolsUsed, error: message, lastSeq: 0)
        }
    }

    /// Runs or settles one call of the current step. Returns whether a tool ran.
    private func settle(_ call: ToolCall, agent: Agent) async throws -> Bool {
        let tool = agent.tool(named: call.toolName)
        switch call.status {
        case .ready:
            return try await execute(call, tool: tool, rerun: false)
        case .interrupted:
            if let tool, tool.descriptor.flags.idempotent {
                return try await execute(call, tool: tool, rerun: true)
            }
            notifier.notify(try await store.abandonInterrupted(callID: call.id, now: clock.now()))
            return false
        default:
            return false
        }
    }

    private func execute(_ call: ToolCall, tool: (any Tool)?, rerun: Bool) async throws -> Bool {
        guard
            case .claimed(let started) = try await store.claimToolCall(callID: call.id, rerun: rerun, now: clock.now())
        else { return false }
        notifier.notify(started)
        try await run(call, tool: tool)
        return true
    }

    /// Runs the tool of a call claimed for this run (`executing`) and records its result.
    private func run(_ call: ToolCall, tool: (any Tool)?) async throws {
        configuration.failpoints.hit("after-claim")
        var output: ToolOutput
        if let tool {
            var context = ToolContext(
                sessionID: call.sessionID, callID: call.id, confirmationID: call.confirmationID,
                workspace: workspace(of: call.sessionID))
            context.serverPorts = serverPorts
            output = await tool.run(call.params, context: context)
        } else {
            output = .failure("Tool \(call.toolName) is no longer available.")
        }
        configuration.failpoints.hit("after-tool")
        if let original = call.originalParams {
            output.content =
                "Note: the person edited this call before approving it. It ran with \(call.params.canonicalString) "
                + "instead of \(original.canonicalString).\n" + output.content
        }
        let events = try await store.finishToolCall(
            callID: call.id, output: output, taints: tool?.descriptor.flags.openWorld ?? false, now: clock.now())
        notifier.notify(events)
    }

    /// What a model step came to.
    private enum StepResult {
        /// Drive on (the step's tool calls are next) with the model's text.
        case next(String)
        /// The step's commit completed the run or paused it at the gate.
        case stopped(RunOutcome.Status, reply: String, pending: [Confirmation], lastSeq: Int64)
    }

    /// Calls the model once and persists what it asked for.
    /// `known` is the model context when the snapshot's read brought it.
    private func modelStep(snapshot: RunSnapshot, agent: Agent, context known: ModelContext?) async throws
        -> StepResult
    {
        let run = snapshot.run
        let session = snapshot.session
        guard run.step < configuration.maxSteps else {
            notifier.notify(
                try await store.endRun(
                    runID: run.id, status: .failed, tokens: "", finalText: nil,
                    error: "The run stopped after \(configuration.maxSteps) model steps.", now: clock.now()))
            return .next("")
        }
        configuration.failpoints.hit("before-model")
        let context: ModelContext
        if let known {
            context = known
        } else {
            context = try await store.modelContext(runID: run.id)
        }
        let history = context.history
        let tools = run.finalStepOnly ? [] : agent.availableTools.map(\.descriptor)
        let tokens = TokenBuffer(start: clock.now())
        let response = try await agent.model.respond(
            to: ModelRequest(instructions: agent.instructions, messages: history, tools: tools),
            onToken: { [self] delta in await self.streamToken(delta, into: tokens, runID: run.id) })
        let streamed = tokens.take()
        let text = response.text
        let tokenText = streamed.isEmpty && !tokens.flushedAny ? text : streamed
        if response.toolCalls.isEmpty || run.finalStepOnly {
            let events = try await store.endRun(
                runID: run.id, status: .completed, tokens: tokenText, finalText: text, error: nil, now: clock.now())
            notifier.notify(events)
            guard let last = events.last?.seq else { return .next(text) }
            return .stopped(.completed, reply: text, pending: [], lastSeq: last)
        }
        let grants = context.grants
        // Whole milliseconds, as the store keeps them: the confirmations reported when
        // the step pauses are then equal to what a later read returns.
        let now = Self.wholeMillis(clock.now())
        let ttl = agent.confirmationTTL ?? configuration.confirmationTTL
        var calls: [ToolCall] = []
        var confirmations: [Confirmation] = []
        for (index, modelCall) in response.toolCalls.enumerated() {
            var call = ToolCall(
                id: Identifier.ordered("call"), sessionID: session.id, runID: run.id, step: run.step + 1, index: index,
                modelCallID: modelCall.id, toolName: modelCall.name, params: .object([:]), gate: .auto, status: .ready)
            guard let tool = agent.tool(named: modelCall.name) else {
                call.gate = .deniedByPolicy
                call.status = .blocked
                call.output = .failure(
                    "There is no tool named \(modelCall.name). Available tools: "
                        + agent.availableTools.map(\.descriptor.name).joined(separator: ", ") + ".")
                calls.append(call)
                continue
            }
            guard let params = try? JSONValue.parse(modelCall.arguments.isEmpty ? "{}" : modelCall.arguments),
                case .object = params
            else {
                call.gate = .deniedByPolicy
                call.status = .blocked
                call.output = .failure(
                    "The arguments of this call were not a valid JSON object, so it did not run. "
                        + "Send the call again with valid arguments.")
                calls.append(call)
                continue
            }
            call.params = params
            let violations = JSONSchema(tool.descriptor.inputSchema).validate(params)
            if !violations.isEmpty {
                call.gate = .deniedByPolicy
                call.status = .blocked
                call.output = .failure(
                    "The arguments did not match the tool's schema, so it did not run: "
                        + violations.map(\.description).joined(separator: "; "))
                calls.append(call)
                continue
            }
            let grant = grants.first { $0.covers(toolName: tool.descriptor.name, params: params) }
            // One evaluation gives the decision and the rule that matched (also for calls
            // a rule lets run, which the decision itself does not name).
            let explanation = PolicyEvaluator.explain(
                toolName: tool.descriptor.name, flags: tool.descriptor.flags, params: params, policy: agent.policy,
                tainted: session.tainted, granted: grant != nil)
            switch explanation.decision {
            case .run(let reason):
                call.gate = .auto
                call.status = .ready
                call.ruleID = explanation.ruleID
                if reason == .grant { call.grantID = grant?.id }
            case .deny(let ruleID):
                call.ruleID = ruleID
                call.gate = .deniedByPolicy
                call.status = .blocked
                call.output = .failure(
                    "Policy does not allow \(tool.descriptor.name)"
                        + (ruleID.map { " (rule \($0))" } ?? "") + ", so it did not run.")
            case .confirm where confirmations.count >= configuration.maxPendingConfirmations:
                call.gate = .deniedByPolicy
                call.status = .blocked
                call.output = .failure(
                    "This step asked for more than \(configuration.maxPendingConfirmations) confirmations; this call "
                        + "was not run. Ask for fewer calls at once.")
            case .confirm(let why, let ruleID):
                let confirmation = Confirmation(
                    id: Identifier.ordered("conf"), namespaceID: session.namespaceID, sessionID: session.id,
                    runID: run.id, callID: call.id, toolName: tool.descriptor.name, toolKey: tool.descriptor.toolKey,
                    summary: tool.summary(of: params), policy: why, ruleID: ruleID, params: params,
                    requestedBy: "agent:\(agent.name)", createdAt: now,
                    expiresAt: Self.wholeMillis(now.addingTimeInterval(ttl)),
                    taintedBy: why == .tainted ? session.taintedBy : nil)
                call.ruleID = ruleID
                call.gate = .awaitingConfirmation
                call.status = .awaiting
                call.confirmationID = confirmation.id
                confirmations.append(confirmation)
            }
            calls.append(call)
        }
        // Only gated calls left open: the commit pauses the run itself.
        let pauses = !confirmations.isEmpty && !calls.contains { $0.status == .ready }
        let events = try await store.commitStep(
            StepCommit(
                runID: run.id, sessionID: session.id, namespaceID: session.namespaceID, step: run.step + 1, text: text,
                modelCalls: response.toolCalls, calls: calls, confirmations: confirmations, actor: session.actor,
                tokens: tokenText, now: now, pause: pauses))
        configuration.failpoints.hit("after-step")
        notifier.notify(events)
        guard pauses, let last = events.last?.seq else { return .next(text) }
        // In the order a read of the pending confirmations returns them (created_at, id).
        let pending = confirmations.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        return .stopped(.awaitingConfirmation, reply: text, pending: pending, lastSeq: last)
    }

    /// `date` in whole milliseconds, as the stores keep dates.
    static func wholeMillis(_ date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded(.down) / 1000)
    }

    /// Buffers a streamed delta and, once `tokenFlushInterval` has passed since the last
    /// write, appends the buffered text to the log as one `token` event, so that
    /// streams show the answer while it is written. A model that hands over its text at
    /// once (scripted, non-streaming) gets a single `token` event written with its step.
    private func streamToken(_ delta: String, into tokens: TokenBuffer, runID: String) async {
        guard let due = tokens.append(delta, now: clock.now(), interval: configuration.tokenFlushInterval) else {
            return
        }
        do {
            let draft = EventFactory.token(runID: runID, text: due)
            notifier.notify(try await store.appendEvents(runID: runID, [draft], now: clock.now()))
        } catch {
            // Cancelled meanwhile (the step's commit will stop the run) or a failed write:
            // the text goes out with the step instead.
            tokens.restore(due)
        }
    }

    // MARK: Outcomes

    private func outcomeAfterStop(runID: String, toolsUsed: [String], reply: String) async throws -> RunOutcome {
        try await outcome(of: try await store.runSnapshot(runID: runID), toolsUsed: toolsUsed, reply: reply)
    }

    private func outcome(of snapshot: RunSnapshot, toolsUsed: [String], reply: String) async throws -> RunOutcome {
        let status: RunOutcome.Status
        var pending: [Confirmation] = []
        switch snapshot.run.status {
        case .completed: status = .completed
        case .failed: status = .failed
        case .cancelled: status = .cancelled
        case .awaiting, .running:
            status = .awaitingConfirmation
            pending = try await store.confirmations(
                namespaceID: snapshot.session.namespaceID,
                filter: ConfirmationFilter(status: .pending, sessionID: snapshot.session.id, limit: 1000))
        }
        return RunOutcome(
            runID: snapshot.run.id, sessionID: snapshot.session.id, status: status, reply: reply,
            pendingConfirmations: pending, toolsUsed: toolsUsed, error: snapshot.run.error,
            lastSeq: snapshot.session.lastSeq)
    }
}

/// Collects streamed text deltas of one model step and says when buffered text is due
/// for the log.
final class TokenBuffer: Sendable {
    private struct State {
        var pending = ""
        var lastFlush: Date
        var flushed = false
    }

    private let state: Mutex<State>

    init(start: Date) {
        state = Mutex(State(lastFlush: start))
    }

    /// Adds a delta; returns the buffered text when `interval` has passed since the last
    /// write (or the start of the step), else nil.
    func append(_ delta: String, now: Date, interval: TimeInterval) -> String? {
        state.withLock { state in
            state.pending += delta
            guard !state.pending.isEmpty, now.timeIntervalSince(state.lastFlush) >= interval else { return nil }
            state.lastFlush = now
            state.flushed = true
            defer { state.pending = "" }
            return state.pending
        }
    }

    /// Puts text whose write failed back in front of the buffer.
    func restore(_ text: String) { state.withLock { $0.pending = text + $0.pending } }

    /// Whether some text already went to the log during the step.
    var flushedAny: Bool { state.withLock { $0.flushed } }

    func take() -> String {
        state.withLock { state in
            defer { state.pending = "" }
            return state.pending
        }
    }
}
