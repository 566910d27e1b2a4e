import AgentRuntime
import Foundation
import GateCore
import Hummingbird

/// Seed 000, a Mixpeek-style agent session API (docs/compat.md): sessions under
/// `/v1/agents/sessions`, whose turns and decisions answer as SSE with `token`,
/// `confirmation_required`, `tool_result` and `done` events. It sits behind the native
/// `/v1` authentication (`Authorization: Bearer sk_…`, `X-Namespace` id or name), so its
/// errors have the native shape; the decision endpoint uses the seed's status codes
/// (expired or already processed: 400).
struct MixpeekController {
    let kit: CompatKit

    func register(on group: RouterGroup<AppRequestContext>) {
        group.post("agents/sessions", use: create)
        group.get("agents/sessions/{session_id}", use: get)
        group.post("agents/sessions/{session_id}/messages", use: message)
        group.post("agents/sessions/{session_id}/confirmations/{confirmation_id}", use: respond)
    }

    static func sessionJSON(_ session: Session) -> JSONValue {
        [
            "session_id": .string(session.id), "agent": .string(session.agent),
            "status": .string(session.status.rawValue),
            "namespace_id": .string(session.namespaceID), "metadata": session.metadata,
            "created_at": .string(Timestamp.format(session.createdAt)),
        ]
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let data = try await kit.body(request)
        var members: [String: JSONValue] = [:]
        if !data.isEmpty {
            guard case .object(let object) = try JSONValue.parse(data) else {
                throw CountersignError.validation("The body must be a JSON object.")
            }
            members = object
        }
        let body = JSONBody(members: members)
        let agent = try body.string("agent", maxLength: 200)
        let metadata = try body.object("metadata") ?? .object([:])
        let session = try await kit.createSession(for: identity, agent: agent, metadata: metadata)
        return JSONResponse.make(status: .created, Self.sessionJSON(session))
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let session = try await kit.access.session(try context.parameters.require("session_id"), for: identity)
        let pending = try await kit.confirmations(of: session, status: .pending)
        return JSONResponse.make(
            Self.sessionJSON(session).setting(
                "pending_confirmations",
                .array(pending.map { Self.confirmationRequired(EventFactory.confirmationJSON($0)) })))
    }

    /// `{"message": "…"}` (or `{"content": "…"}`): the turn as SSE until it completes or
    /// pauses at the gate.
    @Sendable func message(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let session = try await kit.access.session(try context.parameters.require("session_id"), for: identity)
        let body = try await JSONBody.read(
            request, limit: kit.configuration.maxBodyBytes, allowed: ["message", "content"])
        guard let text = try body.string("message") ?? body.string("content"), kit.validMessage(text) else {
            throw CountersignError.validation(
                "message must be a non-empty string of at most \(kit.configuration.maxMessageCharacters) characters.",
                details: ["field": "message"])
        }
        let handle = try await kit.engine.send(sessionID: session.id, content: text)
        return kit.stream.response(
            sessionID: session.id, after: handle.startSeq, end: .runStops(handle), encode: Self.encode)
    }

    /// `{"approved": true | false}` → the continuation of the run as SSE.
    @Sendable func respond(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let sessionID = try context.parameters.require("session_id")
        let confirmationID = try context.parameters.require("confirmation_id")
        let data = try await kit.body(request)
        guard !data.isEmpty, case .object(let members) = try? JSONValue.parse(data) else {
            return Self.error(
                CountersignError.validation("The body must be a JSON object {\"approved\": true|false}."),
                status: .unprocessableContent, context: context)
        }
        guard case .bool(let approved) = members["approved"] ?? .null else {
            return Self.error(
                CountersignError.validation(
                    "approved is required and must be true or false.", details: ["field": "approved"]),
                status: .unprocessableContent, context: context)
        }
        var reason: String?
        if let value = members["reason"], value != .null {
            guard case .string(let text) = value, text.count <= 2000 else {
                return Self.error(
                    CountersignError.validation(
                        "reason must be a string of at most 2000 characters.", details: ["field": "reason"]),
                    status: .unprocessableContent, context: context)
            }
            reason = text
        }
        let session = try await kit.access.session(sessionID, for: identity)
        guard let confirmation = try await kit.store.confirmation(id: confirmationID),
            confirmation.sessionID == session.id, confirmation.namespaceID == identity.namespaceID
        else { throw CountersignError.notFound("Confirmation") }
        _ = try await kit.access.decidable(confirmation.id, for: identity)
        let result: DecisionResult
        do {
            result = try await kit.engine.decide(
                confirmationID: confirmation.id,
                request: DecisionRequest(kind: approved ? .approve : .deny, reason: approved ? nil : reason),
                by: identity)
        } catch let error as CountersignError where error.code == .expired || error.code == .alreadyDecided {
            // The seed's ValidationError: "confirmation already processed or expired".
            return Self.error(error, status: .badRequest, context: context)
        }
        if let handle = result.resumed {
            return kit.stream.response(
                sessionID: session.id, after: handle.startSeq, end: .runStops(handle), encode: Self.encode)
        }
        // Other confirmations of the step still wait: the stream carries this decision's
        // events (none of the seed's types) and ends.
        let first = result.events.first?.seq ?? 1
        return kit.stream.response(
            sessionID: session.id, after: first - 1, end: .seq(result.events.last?.seq ?? 0), encode: Self.encode)
    }

    /// A native-shaped error with the seed's status code.
    static func error(_ error: CountersignError, status: HTTPResponse.Status, context: AppRequestContext) -> Response {
        var response = ErrorMiddleware.response(for: error, requestID: context.requestID)
        response.status = status
        return response
    }

    /// A confirmation as the `confirmation_required` event shows it, from the native
    /// confirmation JSON (the data of `confirmation.required`).
    static func confirmationRequired(_ native: JSONValue) -> JSONValue {
        var view: JSONValue = ["confirmation_id": native["id"] ?? .null]
        for key in ["session_id", "tool_name", "tool_key", "summary", "policy", "params", "params_hash", "expires_at"] {
            view = view.setting(key, native[key] ?? .null)
        }
        return view
    }

    /// Native events → the seed's events.
    @Sendable static func encode(_ event: SessionEvent) -> String? {
        let data = event.data
        switch event.type {
        case EventType.token:
            return SSEFrame.make("token", ["content": data["text"] ?? ""])
        case EventType.confirmationRequired:
            return SSEFrame.make("confirmation_required", confirmationRequired(data))
        case EventType.toolResult:
            return SSEFrame.make(
                "tool_result",
                [
                    "tool_name": data["tool_name"] ?? .null, "success": data["success"] ?? false,
                    "result": .toolOutput(data), "call_id": data["call_id"] ?? .null,
                    "confirmation_id": data["confirmation_id"] ?? .null,
                ])
        case EventType.runCompleted:
            return SSEFrame.make("done", [:])
        case EventType.runFailed:
            return SSEFrame.make("error", ["message": data["error"] ?? ""]) + SSEFrame.make("done", [:])
        default:
            return nil
        }
    }
}
