import AgentRuntime
import Crypto
import Foundation
import GateCore
import Hummingbird
import NIOCore
import Synchronization

/// Seed 001, a chat API with a confirm control (docs/compat.md): `POST /chat` (JSON, or
/// SSE with `Accept: text/event-stream`), `POST /chat/stream`, `POST /chat/confirm`
/// (approves every pending action of the thread), `POST /chat/cancel` (declines them).
/// A thread is a session. Auth is the `session_id` cookie, which `POST /auth/session`
/// issues for an API key; 60 requests per minute per cookie session; errors are
/// `{"error": "<code>", "message": "…"}`.
struct ChatController {
    let kit: CompatKit
    let cookies: ChatCookies
    let limiter: RateLimiter

    init(kit: CompatKit) {
        self.kit = kit
        cookies = ChatCookies(store: kit.store, clock: kit.clock, ttl: kit.configuration.chatCookieTTL)
        limiter = RateLimiter(perMinute: kit.configuration.chatRateLimitPerMinute, clock: kit.clock)
    }

    func register(on router: Router<AppRequestContext>) {
        router.post("auth/session", use: login)
        router.delete("auth/session", use: logout)
        router.post("chat", use: chat)
        router.post("chat/stream", use: stream)
        router.post("chat/confirm", use: confirm)
        router.post("chat/cancel", use: cancel)
    }

    static let cancelReason = "User cancelled the action."

    /// An error of this door.
    struct Failure: Error {
        var status: HTTPResponse.Status
        var code: String
        var message: String
        var extra: [String: JSONValue] = [:]
        var retryAfter: Int?

        static func from(_ error: any Error) -> Failure? {
            if let failure = error as? Failure { return failure }
            guard let error = error as? CountersignError else { return nil }
            let status = HTTPResponse.Status(code: error.httpStatus)
            let code: String =
                switch error.code {
                case .validationError: "invalid_request"
                case .sessionBusy: "thread_busy"
                case .unavailable: "service_unavailable"
                case .internal: "internal_error"
                default: error.code.rawValue
                }
            let message = error.code == .internal ? "The server could not complete the request." : error.message
            return Failure(status: status, code: code, message: message)
        }
    }

    /// Runs `body`, answering every failure in this door's error shape.
    func handle(_ context: AppRequestContext, _ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch {
            if let error = error as? CountersignError, error.code == .internal || error.code == .unavailable {
                context.logger.error("chat API request failed", metadata: ["error": "\(error)"])
            }
            guard let failure = Failure.from(error) else {
                context.logger.error("chat API request failed", metadata: ["error": "\(String(reflecting: error))"])
                return Self.render(
                    Failure(
                        status: .internalServerError, code: "internal_error",
                        message: "The server could not complete the request (request id \(context.requestID))."))
            }
            return Self.render(failure)
        }
    }

    static func render(_ failure: Failure) -> Response {
        var body: JSONValue = ["error": .string(failure.code), "message": .string(failure.message)]
        for (key, value) in failure.extra { body = body.setting(key, value) }
        var response = JSONResponse.make(status: failure.status, body)
        if let retryAfter = failure.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }

    // MARK: Cookie sessions

    /// `Authorization: Bearer sk_…` (and optionally `X-Namespace`) → `Set-Cookie:
    /// session_id=…; HttpOnly; SameSite=Strict`.
    @Sendable func login(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            switch try await kit.authenticate(request) {
            case .missing, .invalid:
                throw Failure(
                    status: .unauthorized, code: "unauthenticated",
                    message: "Send Authorization: Bearer <API key> to open a cookie session.")
            case .otherNamespace:
                throw Failure(status: .notFound, code: "not_found", message: "Namespace not found.")
            case .identified(let identity):
                let (token, expiresAt) = try await cookies.issue(keyPrefix: identity.keyPrefix)
                var response = JSONResponse.make([
                    "authenticated": true, "actor": .string(identity.actor),
                    "namespace_id": .string(identity.namespaceID), "expires_at": .string(Timestamp.format(expiresAt)),
                ])
                response.headers[.setCookie] =
                    "session_id=\(token); Path=/; Max-Age=\(Int(kit.configuration.chatCookieTTL)); HttpOnly; SameSite=Strict"
                return response
            }
        }
    }

    /// Clears the cookie in the browser. The token itself stays valid until it expires or
    /// its API key is revoked.
    @Sendable func logout(_ request: Request, context: AppRequestContext) async throws -> Response {
        var response = JSONResponse.make(["authenticated": false])
        response.headers[.setCookie] = "session_id=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        return response
    }

    /// The caller of a cookie-authenticated request, after the rate limit.
    func caller(_ request: Request) async throws -> Identity {
        let unauthenticated = Failure(
            status: .unauthorized, code: "unauthenticated",
            message: "Not authenticated: the session_id cookie is missing or invalid. Get one from POST /auth/session.")
        guard let token = request.cookies["session_id"]?.value, let verified = try await cookies.verify(token) else {
            throw unauthenticated
        }
        guard let key = try await kit.store.key(prefix: verified.keyPrefix), key.revokedAt == nil,
            key.expiresAt.map({ $0 > kit.clock.now() }) ?? true
        else { throw unauthenticated }
        guard case .identified(let identity) = try await kit.identify(key, namespaceHeader: request.headers[.namespace])
        else { throw Failure(status: .notFound, code: "not_found", message: "Namespace not found.") }
        if let wait = limiter.take("chat:" + verified.nonce) {
            throw Failure(
                status: .tooManyRequests, code: "rate_limited",
                message: "Rate limit exceeded: at most \(limiter.perMinute) requests per minute per session.",
                retryAfter: wait)
        }
        return identity
    }

    // MARK: Chat

    struct ChatRequest {
        var message: String
        var threadID: String?
        var agent: String?
    }

    func chatRequest(_ request: Request) async throws -> ChatRequest {
        guard let members = try await kit.jsonObject(request) else {
            throw Failure(status: .badRequest, code: "invalid_request", message: "The body must be a JSON object.")
        }
        guard case .string(let message) = members["message"] ?? .null, kit.validMessage(message) else {
            throw Failure(
                status: .badRequest, code: "invalid_request",
                message: "message is required: a non-empty string of at most "
                    + "\(kit.configuration.maxMessageCharacters) characters.")
        }
        var threadID: String?
        switch members["thread_id"] ?? .null {
        case .null: break
        case .string(let text): threadID = text
        default: throw Failure(status: .badRequest, code: "invalid_request", message: "thread_id must be a string.")
        }
        var agent: String?
        switch members["agent"] ?? .null {
        case .null: break
        case .string(let text): agent = text
        default: throw Failure(status: .badRequest, code: "invalid_request", message: "agent must be a string.")
        }
        return ChatRequest(message: message, threadID: threadID, agent: agent)
    }

    /// The thread of a request: the one named, or a new one.
    func thread(_ chat: ChatRequest, for identity: Identity) async throws -> Session {
        if let threadID = chat.threadID { return try await kit.access.session(threadID, for: identity) }
        return try await kit.createSession(for: identity, agent: chat.agent, metadata: ["door": "chat"])
    }

    /// Starts the turn; nil when an action of the thread is waiting (words never approve).
    func start(_ message: String, in thread: Session) async throws -> RunHandle? {
        do {
            return try await kit.engine.send(sessionID: thread.id, content: message)
        } catch let error as CountersignError where error.code == .confirmationPending {
            return nil
        }
    }

    static let waitingReply =
        "Nothing was done: an action is waiting for your confirmation. Use the confirm or cancel control; "
        + "a chat message does not approve it."

    @Sendable func chat(_ request: Request, context: AppRequestContext) async throws -> Response {
        if request.wantsEventStream { return try await stream(request, context: context) }
        return await handle(context) {
            let identity = try await caller(request)
            let chat = try await chatRequest(request)
            let thread = try await thread(chat, for: identity)
            guard let handle = try await start(chat.message, in: thread) else {
                return JSONResponse.make(try await reply(Self.waitingReply, thread: thread))
            }
            let outcome = await handle.outcome
            if outcome.status == .failed {
                throw Failure(
                    status: .internalServerError, code: "execution_error",
                    message: "Failed to run the agent: \(outcome.error ?? "unknown error")",
                    extra: ["thread_id": .string(thread.id)])
            }
            return JSONResponse.make(try await reply(outcome.reply, thread: thread))
        }
    }

    /// `{response, thread_id, requires_confirmation, confirmation_message}` for the
    /// thread as it stands, with its pending actions.
    func reply(_ text: String, thread: Session) async throws -> JSONValue {
        try await Self.reply(text, thread: thread, kit: kit)
    }

    static func reply(_ text: String, thread: Session, kit: CompatKit) async throws -> JSONValue {
        let pending = try await kit.confirmations(of: thread, status: .pending)
        var response = text
        if response.isEmpty, !pending.isEmpty { response = "I need your confirmation before I continue." }
        return [
            "response": .string(response), "thread_id": .string(thread.id),
            "requires_confirmation": .bool(!pending.isEmpty),
            "confirmation_message": pending.isEmpty
                ? .null : .string(ConfirmationQuestion.make(pending.map(\.summary))),
            "pending_actions": .array(pending.map(Self.action)),
        ]
    }

    static func action(_ confirmation: Confirmation) -> JSONValue {
        [
            "action_id": .string(confirmation.id), "tool": .string(confirmation.toolName),
            "summary": .string(confirmation.summary), "params": confirmation.params,
            "expires_at": .string(Timestamp.format(confirmation.expiresAt)),
        ]
    }

    /// The turn as SSE: `token`, `confirmation_required`, `tool_result`, `error`, then
    /// `done`; each `data:` is `{"event_type": …, "data": {…, "thread_id"}}`.
    @Sendable func stream(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let chat = try await chatRequest(request)
            let thread = try await thread(chat, for: identity)
            let threadID = thread.id
            guard let handle = try await start(chat.message, in: thread) else {
                let pending = try await kit.confirmations(of: thread, status: .pending)
                let frames = pending.map { Self.frame("confirmation_required", Self.required($0, threadID: threadID)) }
                return SSEFrame.response(
                    frames + [Self.frame("done", try await reply(Self.waitingReply, thread: thread))])
            }
            return kit.stream.response(
                sessionID: threadID, after: handle.startSeq, end: .runStops(handle),
                encode: { Self.encode($0, threadID: threadID) },
                closing: { [kit] outcome in
                    guard let outcome, let thread = try await kit.store.session(id: threadID) else { return nil }
                    return Self.frame("done", try await Self.reply(outcome.reply, thread: thread, kit: kit))
                })
        }
    }

    static func frame(_ type: String, _ data: JSONValue) -> String {
        SSEFrame.make(type, ["event_type": .string(type), "data": data])
    }

    static func required(_ confirmation: Confirmation, threadID: String) -> JSONValue {
        action(confirmation).setting("thread_id", .string(threadID))
            .setting("message", .string(ConfirmationQuestion.make([confirmation.summary])))
    }

    @Sendable static func encode(_ event: SessionEvent, threadID: String) -> String? {
        let data = event.data
        let thread = JSONValue.string(threadID)
        switch event.type {
        case EventType.token:
            return frame("token", ["thread_id": thread, "content": data["text"] ?? ""])
        case EventType.confirmationRequired:
            let summary = data["summary"]?.stringValue ?? ""
            return frame(
                "confirmation_required",
                [
                    "thread_id": thread, "message": .string(ConfirmationQuestion.make([summary])),
                    "action_id": data["id"] ?? .null, "tool": data["tool_name"] ?? .null, "summary": .string(summary),
                    "params": data["params"] ?? .null, "expires_at": data["expires_at"] ?? .null,
                ])
        case EventType.toolResult:
            return frame("tool_result", result(data).setting("thread_id", thread))
        case EventType.runFailed:
            return frame(
                "error", ["thread_id": thread, "error": "execution_error", "message": data["error"] ?? ""])
        default:
            return nil
        }
    }

    /// `{action_id, tool, success, result, error}` from `tool.result` data.
    static func result(_ data: JSONValue) -> JSONValue {
        let success = data["success"]?.boolValue ?? false
        return [
            "action_id": data["confirmation_id"] ?? data["call_id"] ?? .null, "tool": data["tool_name"] ?? .null,
            "success": .bool(success), "result": success ? .toolOutput(data) : .null,
            "error": success ? .null : (data["content"] ?? .null),
        ]
    }

    // MARK: Confirm and cancel

    func threadOfRequest(_ request: Request, identity: Identity) async throws -> Session {
        guard let members = try await kit.jsonObject(request) else {
            throw Failure(status: .badRequest, code: "invalid_request", message: "The body must be a JSON object.")
        }
        guard case .string(let threadID) = members["thread_id"] ?? .null, !threadID.isEmpty else {
            throw Failure(status: .badRequest, code: "invalid_request", message: "thread_id is required.")
        }
        // `confirmation` ("yes", "confirm") is accepted and ignored: words never approve,
        // the request to this endpoint is the control.
        if let text = members["confirmation"], text != .null, text.stringValue == nil {
            throw Failure(status: .badRequest, code: "invalid_request", message: "confirmation must be a string.")
        }
        return try await kit.access.session(threadID, for: identity)
    }

    /// Approves every pending action of the thread; answers once the run has used them.
    @Sendable func confirm(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let thread = try await threadOfRequest(request, identity: identity)
            return try await settle(thread, identity: identity, DecisionRequest(kind: .approve), status: "completed")
        }
    }

    /// Declines every pending action of the thread (the model is told the person
    /// cancelled) and answers with the agent's reply.
    @Sendable func cancel(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let thread = try await threadOfRequest(request, identity: identity)
            return try await settle(
                thread, identity: identity, DecisionRequest(kind: .deny, reason: Self.cancelReason), status: "cancelled"
            )
        }
    }

    func settle(_ thread: Session, identity: Identity, _ decision: DecisionRequest, status: String) async throws
        -> Response
    {
        let batch = try await kit.decideAll(in: thread, by: identity, decision)
        guard !batch.decided.isEmpty else {
            if batch.failed.contains(where: { $0.error.code == .expired }) {
                throw Failure(
                    status: .gone, code: "expired", message: "The pending actions expired before they were confirmed.",
                    extra: ["thread_id": .string(thread.id)])
            }
            throw Failure(
                status: .conflict, code: "no_pending_actions",
                message: "Nothing in this thread is waiting for confirmation.", extra: ["thread_id": .string(thread.id)]
            )
        }
        var replyText = ""
        var runFailed: String?
        if let handle = batch.resumed {
            let outcome = await handle.outcome
            replyText = outcome.reply
            if outcome.status == .failed { runFailed = outcome.error ?? "unknown error" }
        }
        let ids = Set(batch.decided.map(\.id))
        let stored = try await kit.toolResults(sessionID: thread.id, after: batch.startSeq, confirmationIDs: ids)
        var results: [String: JSONValue] = [:]
        var failures: [String] = []
        for confirmation in batch.decided {
            var entry: JSONValue = [
                "tool": .string(confirmation.toolName), "success": false, "result": .null,
                "error": "The action has not run yet: other actions of the same step are still pending.",
            ]
            if let data = stored[confirmation.id] {
                entry = Self.result(data).removing("action_id")
                if decision.kind == .deny {
                    entry = entry.setting("error", "Cancelled by the user.")
                } else if data["success"]?.boolValue != true {
                    failures.append("\(confirmation.toolName): \(data["content"]?.stringValue ?? "failed")")
                }
            }
            results[confirmation.id] = entry
        }
        for (confirmation, error) in batch.failed {
            results[confirmation.id] = [
                "tool": .string(confirmation.toolName), "success": false, "result": .null,
                "error": .string(error.message),
            ]
            if decision.kind == .approve { failures.append("\(confirmation.toolName): \(error.message)") }
        }
        let current = try await kit.store.session(id: thread.id) ?? thread
        var body = try await reply(replyText, thread: current)
        body = body.setting("status", .string(body["requires_confirmation"] == true ? "requires_confirmation" : status))
            .setting("results", .object(results))
        if let runFailed { failures.append("the agent failed: \(runFailed)") }
        if !failures.isEmpty {
            throw Failure(
                status: .internalServerError, code: "execution_error",
                message: "Failed to execute actions: " + failures.joined(separator: "; "),
                extra: [
                    "thread_id": .string(thread.id), "results": .object(results), "response": body["response"] ?? "",
                ])
        }
        return JSONResponse.make(body)
    }
}

extension JSONValue {
    fileprivate func removing(_ key: String) -> JSONValue {
        guard case .object(var members) = self else { return self }
        members[key] = nil
        return .object(members)
    }
}

/// `session_id` cookies of the chat API: `<key prefix>.<expiry>.<nonce>.<HMAC-SHA256>`,
/// signed with a server secret kept in the store (so every replica shares it). Nothing
/// else is stored: a cookie is valid until it expires, or until its API key is revoked.
final class ChatCookies: Sendable {
    let store: any Store
    let clock: any WallClock
    let ttl: TimeInterval
    private let secret = Mutex<Data?>(nil)

    static let secretName = "chat.session_cookie"

    init(store: any Store, clock: any WallClock, ttl: TimeInterval) {
        self.store = store
        self.clock = clock
        self.ttl = ttl
    }

    func signingKey() async throws -> SymmetricKey {
        if let cached = secret.withLock({ $0 }) { return SymmetricKey(data: cached) }
        let stored = try await store.compatSecret(
            name: Self.secretName, proposed: Identifier.make("secret", length: 43), now: clock.now())
        let data = Data(stored.utf8)
        secret.withLock { $0 = data }
        return SymmetricKey(data: data)
    }

    func issue(keyPrefix: String) async throws -> (token: String, expiresAt: Date) {
        let expiresAt = clock.now().addingTimeInterval(ttl)
        let nonce = String(Identifier.make("n", length: 22).dropFirst(2))
        let payload = "\(keyPrefix).\(Int64(expiresAt.timeIntervalSince1970)).\(nonce)"
        return (payload + "." + (try await signature(payload)), expiresAt)
    }

    /// The key prefix and nonce of a valid, unexpired cookie.
    func verify(_ token: String) async throws -> (keyPrefix: String, nonce: String)? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard token.count <= 256, parts.count == 4, let expiry = Int64(parts[1]) else { return nil }
        let payload = parts[0..<3].joined(separator: ".")
        guard Digest.constantTimeEquals(parts[3], try await signature(payload)) else { return nil }
        guard Double(expiry) > clock.now().timeIntervalSince1970 else { return nil }
        return (parts[0], parts[2])
    }

    private func signature(_ payload: String) async throws -> String {
        let code = HMAC<SHA256>.authenticationCode(
            for: Data("countersign.chat.v1|\(payload)".utf8), using: try await signingKey())
        return Data(code).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
