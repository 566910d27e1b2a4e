import AgentRuntime
import Foundation
import GateCore
import Hummingbird

/// Seed 002, the OpenHands agent server's confirmation mode (docs/compat.md):
/// conversations are sessions addressed by UUIDs (bound in the store), `POST
/// …/events/respond_to_confirmation` accepts or rejects every pending action of the
/// conversation. Errors are FastAPI's: `{"detail": "…"}`, and 422 `{"detail": [{loc,
/// msg, type}]}` for an invalid path or body. Auth: `Authorization: Bearer sk_…` or
/// OpenHands' `X-Session-API-Key: sk_…`.
struct OpenHandsController {
    let kit: CompatKit

    static let kind = "openhands.conversation"

    func register(on router: Router<AppRequestContext>) {
        router.post("api/conversations", use: start)
        router.get("api/conversations/{conversation_id}", use: get)
        router.post("api/conversations/{conversation_id}/events", use: send)
        router.post("api/conversations/{conversation_id}/events/respond_to_confirmation", use: respond)
    }

    /// An error of this door.
    struct Failure: Error {
        var status: HTTPResponse.Status
        var detail: JSONValue
    }

    /// One entry of a 422 `detail` list.
    struct Problem {
        var loc: [JSONValue]
        var msg: String
        var type: String
        var input: JSONValue?

        var json: JSONValue {
            var value: JSONValue = ["loc": .array(loc), "msg": .string(msg), "type": .string(type)]
            if let input { value = value.setting("input", input) }
            return value
        }
    }

    static func invalid(_ problems: [Problem]) -> Failure {
        Failure(status: .unprocessableContent, detail: .array(problems.map(\.json)))
    }

    func handle(_ context: AppRequestContext, _ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let failure as Failure {
            return JSONResponse.make(status: failure.status, ["detail": failure.detail])
        } catch let error as CountersignError where error.code != .internal {
            let detail: String = error.code == .notFound ? "Item not found" : error.message
            return JSONResponse.make(status: HTTPResponse.Status(code: error.httpStatus), ["detail": .string(detail)])
        } catch {
            context.logger.error("OpenHands API request failed", metadata: ["error": "\(String(reflecting: error))"])
            return JSONResponse.make(
                status: .internalServerError,
                ["detail": .string("Internal Server Error (request id \(context.requestID))")])
        }
    }

    func caller(_ request: Request) async throws -> Identity {
        switch try await kit.authenticate(request, keyHeader: .sessionAPIKey) {
        case .identified(let identity): return identity
        case .missing, .invalid: throw Failure(status: .unauthorized, detail: "Unauthorized")
        case .otherNamespace: throw Failure(status: .notFound, detail: "Item not found")
        }
    }

    /// The conversation UUID of the path, or a 422 problem.
    static func conversationID(_ context: AppRequestContext) -> (String?, Problem?) {
        let text = context.parameters.get("conversation_id") ?? ""
        guard let uuid = CompatUUID.canonical(text) else {
            return (
                nil,
                Problem(
                    loc: ["path", "conversation_id"],
                    msg: "Input should be a valid UUID, unable to parse string as a UUID",
                    type: "uuid_parsing", input: .string(text))
            )
        }
        return (uuid, nil)
    }

    /// The body as an object, or the problems FastAPI reports for it.
    func bodyObject(_ request: Request, required: Bool) async throws -> ([String: JSONValue], [Problem]) {
        let data = try await kit.body(request)
        if data.isEmpty {
            if !required { return ([:], []) }
            return ([:], [Problem(loc: ["body"], msg: "Field required", type: "missing", input: .null)])
        }
        guard let value = try? JSONValue.parse(data) else {
            return ([:], [Problem(loc: ["body", 0], msg: "JSON decode error", type: "json_invalid", input: [:])])
        }
        guard case .object(let members) = value else {
            return (
                [:],
                [
                    Problem(
                        loc: ["body"], msg: "Input should be a valid dictionary or object to extract fields from",
                        type: "model_attributes_type", input: value)
                ]
            )
        }
        return (members, [])
    }

    /// The session a conversation UUID stands for, in the caller's namespace.
    func session(_ uuid: String, for identity: Identity) async throws -> Session {
        guard
            let sessionID = try await kit.localID(kind: Self.kind, externalID: uuid, namespaceID: identity.namespaceID)
        else { throw Failure(status: .notFound, detail: "Item not found") }
        return try await kit.access.session(sessionID, for: identity)
    }

    func info(_ session: Session, uuid: String) async throws -> JSONValue {
        let pending = try await kit.confirmations(of: session, status: .pending)
        let status: String =
            switch session.status {
            case .running: "running"
            case .awaitingConfirmation: "waiting_for_confirmation"
            case .failed: "error"
            case .cancelled: "paused"
            case .idle: session.lastSeq == 0 ? "idle" : "finished"
            }
        return [
            "id": .string(uuid), "execution_status": .string(status), "agent": ["name": .string(session.agent)],
            "countersign_session_id": .string(session.id),
            "created_at": .string(Timestamp.format(session.createdAt)),
            "updated_at": .string(Timestamp.format(session.updatedAt)),
            "pending_actions": .array(
                pending.map {
                    [
                        "id": .string($0.id), "tool_name": .string($0.toolName), "tool_call_id": .string($0.callID),
                        "summary": .string($0.summary), "action": $0.params,
                        "expires_at": .string(Timestamp.format($0.expiresAt)),
                    ]
                }),
        ]
    }

    /// The text of a `SendMessageRequest`-like message: `content` as a string or a list
    /// of `{"type": "text", "text": …}` parts.
    static func messageText(_ value: JSONValue?, loc: [JSONValue]) -> (String?, [Problem]) {
        guard let value, value != .null else { return (nil, []) }
        guard case .object(let message) = value else {
            return (
                nil, [Problem(loc: loc, msg: "Input should be a valid dictionary", type: "dict_type", input: value)]
            )
        }
        if let role = message["role"], role != .null, role != "user" {
            return (
                nil, [Problem(loc: loc + ["role"], msg: "Input should be 'user'", type: "literal_error", input: role)]
            )
        }
        switch message["content"] ?? .null {
        case .string(let text):
            return (text, [])
        case .array(let parts):
            var texts: [String] = []
            for (index, part) in parts.enumerated() {
                guard case .string(let text) = part["text"] ?? .null else {
                    return (
                        nil,
                        [
                            Problem(
                                loc: loc + ["content", .int(Int64(index)), "text"], msg: "Field required",
                                type: "missing",
                                input: part)
                        ]
                    )
                }
                texts.append(text)
            }
            return (texts.joined(separator: "\n"), [])
        case .null:
            return (nil, [Problem(loc: loc + ["content"], msg: "Field required", type: "missing", input: value)])
        default:
            return (
                nil,
                [Problem(loc: loc + ["content"], msg: "Input should be a valid list", type: "list_type", input: value)]
            )
        }
    }

    /// Starts the turn of `text` in the background.
    func post(_ text: String, to session: Session) async throws {
        guard kit.validMessage(text) else {
            throw Self.invalid([
                Problem(
                    loc: ["body", "content"],
                    msg:
                        "The message must not be empty or longer than \(kit.configuration.maxMessageCharacters) characters",
                    type: "value_error")
            ])
        }
        do {
            _ = try await kit.engine.send(sessionID: session.id, content: text)
        } catch let error as CountersignError where error.code == .confirmationPending {
            throw Failure(
                status: .conflict,
                detail: "An action is waiting for confirmation; answer it with respond_to_confirmation first.")
        }
    }

    /// `{initial_message?, agent?}` → the new conversation's info (201). Other fields of
    /// OpenHands' StartConversationRequest are accepted and ignored.
    @Sendable func start(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let (members, problems) = try await bodyObject(request, required: false)
            if !problems.isEmpty { throw Self.invalid(problems) }
            let (text, messageProblems) = Self.messageText(
                members["initial_message"], loc: ["body", "initial_message"])
            if !messageProblems.isEmpty { throw Self.invalid(messageProblems) }
            let session = try await kit.createSession(
                for: identity, agent: members["agent"]?.stringValue, metadata: ["door": "openhands"])
            let uuid = try await kit.externalID(kind: Self.kind, for: session.id, namespaceID: session.namespaceID)
            if let text { try await post(text, to: session) }
            let current = try await kit.store.session(id: session.id) ?? session
            return JSONResponse.make(status: .created, try await info(current, uuid: uuid))
        }
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let (uuid, problem) = Self.conversationID(context)
            guard let uuid else { throw Self.invalid([problem!]) }
            return JSONResponse.make(try await info(try await session(uuid, for: identity), uuid: uuid))
        }
    }

    /// A `SendMessageRequest` `{role: "user", content: [{type: "text", text}]}`: the turn
    /// starts at once (`run` is accepted; the agent always runs) → `{"success": true}`.
    @Sendable func send(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let (uuid, problem) = Self.conversationID(context)
            let (members, bodyProblems) = try await bodyObject(request, required: true)
            var problems = (problem.map { [$0] } ?? []) + bodyProblems
            var text: String?
            if bodyProblems.isEmpty {
                let (message, messageProblems) = Self.messageText(.object(members), loc: ["body"])
                problems += messageProblems
                text = message
            }
            guard problems.isEmpty, let uuid, let text else { throw Self.invalid(problems) }
            try await post(text, to: try await session(uuid, for: identity))
            return JSONResponse.make(["success": true])
        }
    }

    /// `{accept, reason = "User rejected the action."}` → `{"success": true}` once every
    /// pending action of the conversation is approved (accept) or declined with the reason.
    @Sendable func respond(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let (uuid, problem) = Self.conversationID(context)
            let (members, bodyProblems) = try await bodyObject(request, required: true)
            var problems = (problem.map { [$0] } ?? []) + bodyProblems
            var accept: Bool?
            var reason = DecisionRequest.defaultDenyReason
            if bodyProblems.isEmpty {
                switch Self.laxBool(members["accept"]) {
                case .success(let value): accept = value
                case .failure(let error): problems.append(error.problem)
                }
                if let value = members["reason"] {
                    if case .string(let text) = value {
                        reason = text
                    } else {
                        problems.append(
                            Problem(
                                loc: ["body", "reason"], msg: "Input should be a valid string", type: "string_type",
                                input: value))
                    }
                }
            }
            guard problems.isEmpty, let uuid, let accept else { throw Self.invalid(problems) }
            let session = try await session(uuid, for: identity)
            let batch = try await kit.decideAll(
                in: session, by: identity,
                DecisionRequest(kind: accept ? .approve : .deny, reason: accept ? nil : reason))
            guard !batch.decided.isEmpty else {
                let why = batch.failed.map(\.error.message).joined(separator: " ")
                throw Failure(
                    status: .conflict,
                    detail: .string(
                        batch.failed.isEmpty
                            ? "No action is waiting for confirmation in this conversation."
                            : "The pending actions could not be decided: \(why)"))
            }
            return JSONResponse.make(["success": true])
        }
    }

    /// Pydantic's lax boolean: true/false, 0/1, and the strings it accepts.
    static func laxBool(_ value: JSONValue?) -> Result<Bool, ProblemError> {
        let loc: [JSONValue] = ["body", "accept"]
        switch value {
        case nil:
            return .failure(ProblemError(Problem(loc: loc, msg: "Field required", type: "missing")))
        case .bool(let flag)?:
            return .success(flag)
        case .int(let number)? where number == 0 || number == 1:
            return .success(number == 1)
        case .string(let text)?:
            switch text.lowercased() {
            case "1", "on", "t", "true", "y", "yes": return .success(true)
            case "0", "off", "f", "false", "n", "no": return .success(false)
            default: break
            }
            return .failure(
                ProblemError(
                    Problem(
                        loc: loc, msg: "Input should be a valid boolean, unable to interpret input",
                        type: "bool_parsing",
                        input: .string(text))))
        case .int(let number)?:
            return .failure(
                ProblemError(
                    Problem(
                        loc: loc, msg: "Input should be a valid boolean, unable to interpret input",
                        type: "bool_parsing",
                        input: .int(number))))
        case let other?:
            return .failure(
                ProblemError(Problem(loc: loc, msg: "Input should be a valid boolean", type: "bool_type", input: other))
            )
        }
    }

    struct ProblemError: Error {
        var problem: Problem
        init(_ problem: Problem) { self.problem = problem }
    }
}
