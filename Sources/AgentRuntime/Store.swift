import Foundation
import GateCore

/// The persistence port of the runtime. Every method is one transaction: it either
/// commits whole or changes nothing, and nothing it reports is reported before it is
/// durable. The decision logic inside the transactions is shared: stores load rows,
/// ask ``TransitionPlanner`` what to write, and write it.
///
/// Two implementations (SQLite, PostgreSQL) pass one conformance suite
/// (`CountersignTesting.StoreConformance`).
public protocol Store: Sendable {
    /// Creates or upgrades the schema. Idempotent.
    func migrate() async throws
    /// Throws when the store cannot answer.
    func ping() async throws

    // MARK: Tenancy
    /// Creates `namespace` and `key` only when the store has no namespace yet. Returns
    /// whether it did.
    func bootstrapIfEmpty(namespace: Namespace, key: APIKey) async throws -> Bool
    func createNamespace(_ namespace: Namespace, audit: AuditDraft) async throws
    func namespace(idOrName: String) async throws -> Namespace?
    func namespaces() async throws -> [Namespace]
    func createKey(_ key: APIKey, audit: AuditDraft) async throws
    func key(prefix: String) async throws -> APIKey?
    func keys(namespaceID: String) async throws -> [APIKey]
    /// Marks the key revoked. Returns false when no such key of that namespace exists.
    func revokeKey(prefix: String, namespaceID: String, at: Date, audit: AuditDraft) async throws -> Bool

    // MARK: Sessions and runs
    func createSession(_ session: Session, events: [EventDraft], audit: AuditDraft) async throws -> [SessionEvent]
    func session(id: String) async throws -> Session?
    /// Sessions of a namespace, newest first, after the cursor `beforeID` (exclusive).
    func sessions(namespaceID: String, actor: String?, beforeID: String?, limit: Int) async throws -> [Session]
    /// The conversation as the model sees it: user and assistant messages with the
    /// results of settled tool calls after the message that asked for them.
    func history(sessionID: String) async throws -> [ChatMessage]

    /// Starts a run on an idle (or cancelled) session. Throws `confirmation_pending`
    /// (with the pending ids) while a confirmation waits, `session_busy` while a run runs.
    func startRun(_ run: Run, message: String, now: Date) async throws -> [SessionEvent]
    func runSnapshot(runID: String) async throws -> RunSnapshot
    /// ``runSnapshot(runID:)`` and, when the snapshot says the run's driver calls the
    /// model next (``RunSnapshot/callsModelNext``), the ``modelContext(runID:)`` read in
    /// the same transaction.
    func runSnapshotAndContext(runID: String) async throws -> (RunSnapshot, ModelContext?)
    /// A confirmation with its session, read in one transaction; nil when either is gone.
    func confirmationAndSession(id: String) async throws -> (Confirmation, Session)?
    /// What a model step needs from the store, read in one transaction: the session's
    /// ``history(sessionID:)`` and ``grants(sessionID:)``. Throws ``RunStopped`` when the
    /// run is no longer running (cancelled meanwhile), so no model is called for it.
    func modelContext(runID: String) async throws -> ModelContext
    /// Persists a model step: the assistant message, its tool calls and confirmations.
    /// Throws ``RunStopped`` if the run is no longer running (cancelled meanwhile).
    /// `tokens`, when not empty, is written as a `token` event before the step's events.
    /// With ``StepCommit/pause``, a step that asks for confirmations and has no `ready`
    /// call also pauses the run in the same transaction, as ``pauseRun(runID:now:)``
    /// would right after it.
    func commitStep(_ step: StepCommit) async throws -> [SessionEvent]
    /// Appends events to a running run's session (streamed tokens). Throws
    /// ``RunStopped`` when the run is no longer running.
    func appendEvents(runID: String, _ events: [EventDraft], now: Date) async throws -> [SessionEvent]
    /// Pauses the run if any confirmation of its current step is pending.
    func pauseRun(runID: String, now: Date) async throws -> PauseOutcome
    /// Moves a ready call (and its approved confirmation) to `executing`; with `rerun`,
    /// an interrupted one. Commits before returning: only then may the tool run.
    func claimToolCall(callID: String, rerun: Bool, now: Date) async throws -> ClaimOutcome
    /// Records a tool's output; taints the session when `taints`.
    func finishToolCall(callID: String, output: ToolOutput, taints: Bool, now: Date) async throws -> [SessionEvent]
    /// Settles an interrupted call of a non-idempotent tool: it is not re-run and the
    /// model is told the outcome is unknown.
    func abandonInterrupted(callID: String, now: Date) async throws -> [SessionEvent]
    /// Ends a running run; the session returns to idle. `tokens` as in ``commitStep(_:)``.
    /// Throws ``RunStopped`` if the run is no longer running.
    func endRun(runID: String, status: RunStatus, tokens: String, finalText: String?, error: String?, now: Date)
        async throws -> [SessionEvent]
    /// After a crash: every `executing` call becomes `interrupted`. Returns the ids of
    /// runs that were running, for the engine to drive again.
    func recoverAfterCrash(now: Date) async throws -> [String]

    // MARK: Confirmations
    /// The single-decision compare-and-set (SPEC §2.1). Throws `already_decided`,
    /// `params_mismatch` or `expired` (after moving the row to `expired`).
    ///
    /// With `claimNext`, a decision that lets the paused run go on also claims, in the
    /// same transaction, the call the run would claim first (the step's first unsettled
    /// call, when it is `ready`): `approved → executing` is then committed with the
    /// decision, and ``DecisionOutcome/claimed`` is that call, whose tool the caller must
    /// run. It saves the run a commit and a read; the states and audit entries are the
    /// same as a decision followed by ``claimToolCall(callID:rerun:now:)``.
    func decide(
        confirmationID: String, request: DecisionRequest, decidedBy: String, grantAllowed: Bool, claimNext: Bool,
        now: Date
    ) async throws -> DecisionOutcome
    /// Expires every pending confirmation due at `now` (at most `limit`).
    func expireDue(now: Date, limit: Int) async throws -> [DecisionOutcome]
    /// Cancels the session's run and its pending confirmations.
    func cancelSession(sessionID: String, actor: String, now: Date) async throws -> CancelOutcome
    func confirmation(id: String) async throws -> Confirmation?
    func confirmations(namespaceID: String, filter: ConfirmationFilter) async throws -> [Confirmation]
    /// The earliest `expires_at` among pending confirmations.
    func nextExpiry() async throws -> Date?
    /// The session's grants, oldest first.
    func grants(sessionID: String) async throws -> [Grant]
    /// Revokes the session's grants: the one with `grantID`, or all (of `toolName` when
    /// given). Each revoked grant gets a `grant.revoked` event and audit entry. Throws
    /// `not_found` for an unknown session; revoking nothing is not an error.
    func revokeGrants(sessionID: String, grantID: String?, toolName: String?, actor: String, now: Date)
        async throws -> GrantRevocation

    // MARK: Events and audit
    func events(sessionID: String, after: Int64, limit: Int) async throws -> [SessionEvent]
    func auditEntries(namespaceID: String, afterID: Int64, limit: Int) async throws -> [AuditEntry]

    // MARK: Seed wire formats (SPEC §7)
    /// Binds an id of a seed wire format to a Countersign id. The first binding of an
    /// external id wins: returns the binding stored after the call, which is not
    /// `binding` when one existed already.
    func bindCompatID(_ binding: CompatIDBinding) async throws -> CompatIDBinding
    func compatID(kind: String, externalID: String) async throws -> CompatIDBinding?
    /// The server secret `name`, stored as `proposed` when it does not exist yet (the
    /// first writer wins, so every replica ends up with the same secret).
    func compatSecret(name: String, proposed: String, now: Date) async throws -> String
}

/// An id that a seed wire format requires in its own shape (a UUID for OpenHands
/// conversations and Murph confirmations), bound to the Countersign id it stands for.
public struct CompatIDBinding: Sendable, Equatable {
    /// What the id names, e.g. `openhands.conversation`.
    public var kind: String
    public var externalID: String
    public var localID: String
    public var namespaceID: String
    public var createdAt: Date

    public init(kind: String, externalID: String, localID: String, namespaceID: String, createdAt: Date) {
        self.kind = kind
        self.externalID = externalID
        self.localID = localID
        self.namespaceID = namespaceID
        self.createdAt = createdAt
    }
}

/// Thrown by run-scoped writes when the run was cancelled (or ended) meanwhile: the
/// driver stops without writing anything.
public struct RunStopped: Error, Sendable {
    public init() {}
}

public struct RunSnapshot: Sendable, Equatable {
    public var run: Run
    public var session: Session
    /// Tool calls of the run's current step, in the order the model asked for them.
    public var calls: [ToolCall]

    public init(run: Run, session: Session, calls: [ToolCall]) {
        self.run = run
        self.session = session
        self.calls = calls
    }

    /// Whether the run's driver calls the model next: the run and its session are
    /// running and every call of the step is settled (nothing to run, nothing to wait for).
    public var callsModelNext: Bool {
        run.status == .running && session.status == .running && calls.allSatisfy(\.status.isSettled)
    }
}

/// The inputs of a model step (``Store/modelContext(runID:)``).
public struct ModelContext: Sendable, Equatable {
    public var history: [ChatMessage]
    public var grants: [Grant]

    public init(history: [ChatMessage], grants: [Grant]) {
        self.history = history
        self.grants = grants
    }
}

/// One model step to persist.
public struct StepCommit: Sendable {
    public var runID: String
    public var sessionID: String
    public var namespaceID: String
    public var step: Int
    public var text: String
    public var modelCalls: [ModelToolCall]
    public var calls: [ToolCall]
    public var confirmations: [Confirmation]
    public var actor: String
    public var tokens: String
    public var now: Date
    /// Pause the run in the same transaction when the step's confirmations are all it
    /// leaves open (no `ready` call): saves the driver a `pauseRun` write.
    public var pause: Bool

    public init(
        runID: String, sessionID: String, namespaceID: String, step: Int, text: String, modelCalls: [ModelToolCall],
        calls: [ToolCall], confirmations: [Confirmation], actor: String, tokens: String = "", now: Date,
        pause: Bool = false
    ) {
        self.tokens = tokens
        self.pause = pause
        self.runID = runID
        self.sessionID = sessionID
        self.namespaceID = namespaceID
        self.step = step
        self.text = text
        self.modelCalls = modelCalls
        self.calls = calls
        self.confirmations = confirmations
        self.actor = actor
        self.now = now
    }
}

public enum PauseOutcome: Sendable, Equatable {
    case paused([SessionEvent])
    /// No confirmation of the step is pending: the driver goes on.
    case proceed
    /// The run is no longer running (cancelled).
    case stopped
}

public enum ClaimOutcome: Sendable, Equatable {
    case claimed([SessionEvent])
    case notClaimable(ToolCallStatus)
}

public struct DecisionOutcome: Sendable, Equatable {
    public var confirmation: Confirmation
    public var events: [SessionEvent]
    /// Set when this transition settled the last open confirmation of a paused run:
    /// the caller must drive that run on.
    public var resumeRunID: String?
    /// Set when the transition was committed but the request still fails: deciding a
    /// confirmation past its expiry expires it and reports `expired`.
    public var rejection: CountersignError?
    /// The call claimed with the decision (``Store/decide(confirmationID:request:decidedBy:grantAllowed:claimNext:now:)``),
    /// now `executing`; its `tool.started` event is in `events`.
    public var claimed: ToolCall?

    public init(
        confirmation: Confirmation, events: [SessionEvent], resumeRunID: String?, rejection: CountersignError? = nil,
        claimed: ToolCall? = nil
    ) {
        self.confirmation = confirmation
        self.events = events
        self.resumeRunID = resumeRunID
        self.rejection = rejection
        self.claimed = claimed
    }
}

extension Store {
    /// A decision that claims nothing (the run's driver claims its calls itself).
    public func decide(
        confirmationID: String, request: DecisionRequest, decidedBy: String, grantAllowed: Bool, now: Date
    ) async throws -> DecisionOutcome {
        try await decide(
            confirmationID: confirmationID, request: request, decidedBy: decidedBy, grantAllowed: grantAllowed,
            claimNext: false, now: now)
    }
}

public struct GrantRevocation: Sendable, Equatable {
    public var grants: [Grant]
    public var events: [SessionEvent]

    public init(grants: [Grant], events: [SessionEvent]) {
        self.grants = grants
        self.events = events
    }
}

public struct CancelOutcome: Sendable, Equatable {
    public var session: Session
    public var cancelled: [Confirmation]
    public var events: [SessionEvent]

    public init(session: Session, cancelled: [Confirmation], events: [SessionEvent]) {
        self.session = session
        self.cancelled = cancelled
        self.events = events
    }
}

public struct ConfirmationFilter: Sendable, Equatable {
    public var status: ConfirmationStatus?
    public var sessionID: String?
    public var toolName: String?
    /// Only confirmations of sessions of this actor (members see their own).
    public var actor: String?
    /// Cursor: confirmations created after the one with this id.
    public var afterID: String?
    public var limit: Int

    public init(
        status: ConfirmationStatus? = nil, sessionID: String? = nil, toolName: String? = nil, actor: String? = nil,
        afterID: String? = nil, limit: Int = 100
    ) {
        self.status = status
        self.sessionID = sessionID
        self.toolName = toolName
        self.actor = actor
        self.afterID = afterID
        self.limit = limit
    }
}
