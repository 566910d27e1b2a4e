import AgentRuntime
import Foundation
import GateCore
import Hummingbird

/// Seed 004, Murph's confirmation lifecycle (docs/compat.md): chat turns that can end
/// with a `pendingConfirmation` (its `confirmationUid` is a UUID bound in the store), and
/// a decision endpoint where `confirm` answers with the chat response of the turn that
/// ran the write and `cancel` only records the cancellation. Errors are
/// `{"error": {"code", "message"}}` with Murph's codes.
struct MurphController {
    let kit: CompatKit

    static let kind = "murph.confirmation"
    static let cancelReason = "User cancelled the action."

    func register(on router: Router<AppRequestContext>) {
        router.post("api/v2/murph/chat", use: chat)
        router.post("api/v2/murph/chat/stream", use: stream)
        router.post("api/v2/murph/confirmations/{confirmationUid}/decision", use: decide)
    }

    /// An error of this door.
    struct Failure: CompatFailure {
        var status: HTTPResponse.Status
        var code: String
        var message: String

        static func validation(_ message: String) -> Failure {
            Failure(status: .badRequest, code: "VALIDATION_ERROR", message: message)
        }

        static let notFound = Failure(
            status: .notFound, code: "NOT_FOUND",
            message: "The confirmation is unknown, expired, cancelled or already used.")

        static func from(_ error: CountersignError) -> Failure {
            let code: String =
                switch error.code {
                case .validationError: "VALIDATION_ERROR"
                case .unauthenticated: "UNAUTHORIZED"
                case .forbidden: "FORBIDDEN"
                case .notFound: "NOT_FOUND"
                case .alreadyDecided, .paramsMismatch, .confirmationPending, .sessionBusy: "CONFLICT"
                case .expired: "NOT_FOUND"
                case .tooLarge: "PAYLOAD_TOO_LARGE"
                case .rateLimited: "RATE_LIMITED"
                case .unavailable: "SERVICE_UNAVAILABLE"
                case .internal: "INTERNAL_ERROR"
                }
            let status =
                error.code == .expired ? HTTPResponse.Status.notFound : HTTPResponse.Status(code: error.httpStatus)
            return Failure(status: status, code: code, message: error.message)
        }
    }

    func handle(_ context: AppRequestContext, _ body: () async throws -> Response) async -> Response {
        await Failure.handle(
            context, api: "Murph", envelope: { ["error": ["code": .string($0.code), "message": .string($0.message)]] },
            body)
    }

    func caller(_ request: Request) async throws -> Identity {
        switch try await kit.authenticate(request) {
        case .identified(let identity): return identity
        case .missing, .invalid:
            throw Failure(
                status: .unauthorized, code: "UNAUTHORIZED", message: "Send Authorization: Bearer <API key>.")
        case .otherNamespace:
            throw Failure(status: .notFound, code: "NOT_FOUND", message: "Namespace not found.")
        }
    }

    // MARK: Chat

    static let waitingReply =
        "Nothing was done: a write is waiting for your decision. Use the confirmation control to confirm or "
        + "cancel it; a chat message does not approve it."

    /// `{message, conversationId?, agent?}`: the conversation named (a session id), or a new one.
    func turn(_ request: Request, identity: Identity) async throws -> (Session, RunHandle?) {
        guard let members = try await kit.jsonObject(request) else {
            throw Failure.validation("The body must be a JSON object with a message field.")
        }
        guard case .string(let message) = members["message"] ?? .null, kit.validMessage(message) else {
            throw Failure.validation(
                "message is required: a non-empty string of at most \(kit.configuration.maxMessageCharacters) characters."
            )
        }
        var session: Session
        switch members["conversationId"] ?? .null {
        case .null:
            var agent: String?
            if let value = members["agent"], value != .null {
                guard case .string(let name) = value else { throw Failure.validation("agent must be a string.") }
                agent = name
            }
            session = try await kit.createSession(for: identity, agent: agent, metadata: ["door": "murph"])
        case .string(let id):
            session = try await kit.access.session(id, for: identity)
        default:
            throw Failure.validation("conversationId must be a string.")
        }
        do {
            return (session, try await kit.engine.send(sessionID: session.id, content: message))
        } catch let error as CountersignError where error.code == .confirmationPending {
            return (session, nil)
        }
    }

    @Sendable func chat(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let (session, handle) = try await turn(request, identity: identity)
            guard let handle else {
                return JSONResponse.make(try await Self.response(session: session, outcome: nil, kit: kit))
            }
            return JSONResponse.make(try await Self.response(session: session, outcome: await handle.outcome, kit: kit))
        }
    }

    /// The turn as SSE: `token` `{text}`, `tool_result` `{toolName, success, result}`,
    /// then `response` (the chat response, with `pendingConfirmation` when the turn
    /// stopped at the gate) and `done`.
    @Sendable func stream(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let (session, handle) = try await turn(request, identity: identity)
            guard let handle else {
                let body = try await Self.response(session: session, outcome: nil, kit: kit)
                return SSEFrame.response([SSEFrame.make("response", body), SSEFrame.make("done", [:])])
            }
            let sessionID = session.id
            return kit.stream.response(
                sessionID: sessionID, after: handle.startSeq, end: .runStops(handle), encode: Self.encode,
                closing: { [kit] outcome in
                    guard let session = try await kit.store.session(id: sessionID) else { return nil }
                    let body = try await Self.response(session: session, outcome: outcome, kit: kit)
                    return SSEFrame.make("response", body) + SSEFrame.make("done", [:])
                })
        }
    }

    @Sendable static func encode(_ event: SessionEvent) -> String? {
        let data = event.data
        switch event.type {
        case EventType.token:
            return SSEFrame.make("token", ["text": data["text"] ?? ""])
        case EventType.toolResult:
            return SSEFrame.make(
                "tool_result",
                [
                    "toolName": data["tool_name"] ?? .null, "success": data["success"] ?? false,
                    "result": .toolOutput(data),
                ])
        default:
            return nil
        }
    }

    /// The chat response: the turn's reply and tools, or (`outcome` nil) the waiting
    /// confirmation again after a message that could not approve it.
    static func response(session: Session, outcome: RunOutcome?, kit: CompatKit) async throws -> JSONValue {
        let pending = try await kit.confirmations(of: session, status: .pending)
        var confirmations: [JSONValue] = []
        for confirmation in pending { confirmations.append(try await pendingConfirmation(confirmation, kit: kit)) }
        let status = outcome?.status.rawValue ?? RunOutcome.Status.awaitingConfirmation.rawValue
        return [
            "conversationId": .string(session.id), "runId": outcome.map { .string($0.runID) } ?? .null,
            "status": .string(status), "reply": .string(outcome?.reply ?? waitingReply),
            "toolsUsed": .array((outcome?.toolsUsed ?? []).map(JSONValue.string)),
            "escalated": false, "customerSwitch": .null,
            "error": outcome?.error.map(JSONValue.string) ?? .null,
            "pendingConfirmation": confirmations.first ?? .null,
            "pendingConfirmations": .array(confirmations),
        ]
    }

    static func pendingConfirmation(_ confirmation: Confirmation, kit: CompatKit) async throws -> JSONValue {
        let uid = try await kit.externalID(kind: kind, for: confirmation.id, namespaceID: confirmation.namespaceID)
        return [
            "confirmationUid": .string(uid), "toolName": .string(confirmation.toolName),
            "toolKey": .string(confirmation.toolKey), "summary": .string(confirmation.summary),
            "policy": .string(confirmation.policy == .tainted ? "tainted" : "always"),
            "resolvedParams": confirmation.params, "writeExecuted": false, "plainAffirmativeAccepted": false,
            "expiresAt": .string(Timestamp.format(confirmation.expiresAt)),
        ]
    }

    // MARK: Decision

    /// `{decision: confirm | cancel}`.
    @Sendable func decide(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            guard let uid = CompatUUID.canonical(context.parameters.get("confirmationUid") ?? "") else {
                throw Failure.validation("confirmationUid must be a UUID.")
            }
            guard let members = try await kit.jsonObject(request) else {
                throw Failure.validation("The body must be a JSON object {\"decision\": \"confirm\" | \"cancel\"}.")
            }
            guard case .string(let decision) = members["decision"] ?? .null, ["confirm", "cancel"].contains(decision)
            else { throw Failure.validation("decision must be \"confirm\" or \"cancel\".") }
            guard
                let confirmationID = try await kit.localID(
                    kind: Self.kind, externalID: uid, namespaceID: identity.namespaceID)
            else { throw Failure.notFound }
            let confirmation: Confirmation
            do {
                confirmation = try await kit.access.decidable(confirmationID, for: identity).0
            } catch let error as CountersignError where error.code == .forbidden {
                throw Failure(
                    status: .forbidden, code: "FORBIDDEN", message: "The confirmation belongs to another actor.")
            }
            guard confirmation.status == .pending, confirmation.expiresAt > kit.clock.now(),
                let session = try await kit.store.session(id: confirmation.sessionID)
            else { throw Failure.notFound }
            if decision == "cancel" {
                let result = try await decideOrNotFound(
                    confirmation.id, DecisionRequest(kind: .deny, reason: Self.cancelReason), identity, context: context
                )
                return JSONResponse.make([
                    "confirmationUid": .string(uid), "decision": "cancel", "status": "cancelled",
                    "toolName": .string(confirmation.toolName), "toolKey": .string(confirmation.toolKey),
                    "writeExecuted": false, "conversationId": .string(session.id),
                    "cancelledAt": result.confirmation.decision.map { .string(Timestamp.format($0.decidedAt)) }
                        ?? .null,
                ])
            }
            guard kit.agentAvailable(for: session) else {
                throw Failure(
                    status: .serviceUnavailable, code: "SERVICE_UNAVAILABLE",
                    message:
                        "Murph is not available to process this write: the agent '\(session.agent)' is not running on this server."
                )
            }
            let result = try await decideOrNotFound(
                confirmation.id, DecisionRequest(kind: .approve), identity, context: context)
            let outcome = await result.resumed?.outcome
            let current = try await kit.store.session(id: session.id) ?? session
            return JSONResponse.make(
                try await Self.response(session: current, outcome: outcome, kit: kit).setting(
                    "reply", .string(outcome?.reply ?? "")
                ).setting(
                    "status", .string(outcome?.status.rawValue ?? RunOutcome.Status.awaitingConfirmation.rawValue)))
        }
    }

    /// Decides through the engine; a confirmation that expired or was used meanwhile is
    /// the seed's 404, a store that cannot answer its 503.
    func decideOrNotFound(
        _ id: String, _ request: DecisionRequest, _ identity: Identity, context: AppRequestContext
    ) async throws -> DecisionResult {
        do {
            return try await kit.engine.decide(confirmationID: id, request: request, by: identity)
        } catch let error as CountersignError where error.code == .expired || error.code == .alreadyDecided {
            throw Failure.notFound
        } catch let error as CountersignError where error.code != .unavailable && error.code != .internal {
            throw error
        } catch {
            context.logger.error("Murph decision failed", metadata: ["error": "\(String(reflecting: error))"])
            throw Failure(
                status: .serviceUnavailable, code: "SERVICE_UNAVAILABLE",
                message: "Murph is not available to process this decision right now (request id \(context.requestID)).")
        }
    }
}
