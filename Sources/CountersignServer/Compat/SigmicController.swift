import AgentRuntime
import Foundation
import GateCore
import Hummingbird

/// Seed 003, Sigmic's task API (docs/compat.md): a task is a session with one message,
/// run in the background; its stream spans the pauses of the run; tool calls are
/// approved with `proceed_once`, `proceed_always` (a session grant) or `cancel`.
/// Errors are `{"success": false, "error": {"code", "message"}}`. `autoExecute` never
/// approves anything: what the policy gates waits for a person whatever the flag says.
struct SigmicController {
    let kit: CompatKit

    func register(on router: Router<AppRequestContext>) {
        router.post("api/v1/tasks", use: create)
        router.get("api/v1/tasks/{id}", use: get)
        router.get("api/v1/tasks/{id}/stream", use: stream)
        router.post("api/v1/tasks/{id}/tools/{callId}/approve", use: approve)
    }

    /// An error of this door.
    struct Failure: CompatFailure {
        var status: HTTPResponse.Status
        var code: String
        var message: String

        static let notFound = Failure(status: .notFound, code: "NOT_FOUND", message: "Task not found.")

        static func validation(_ message: String) -> Failure {
            Failure(status: .badRequest, code: "VALIDATION_ERROR", message: message)
        }

        static func from(_ error: CountersignError) -> Failure {
            let code: String =
                switch error.code {
                case .validationError: "VALIDATION_ERROR"
                case .unauthenticated: "INVALID_API_KEY"
                case .forbidden: "FORBIDDEN"
                case .notFound: "NOT_FOUND"
                case .alreadyDecided: "ALREADY_DECIDED"
                case .expired: "EXPIRED"
                case .tooLarge: "PAYLOAD_TOO_LARGE"
                case .rateLimited: "RATE_LIMITED"
                case .unavailable: "SERVICE_UNAVAILABLE"
                case .paramsMismatch, .confirmationPending, .sessionBusy: "CONFLICT"
                case .internal: "INTERNAL_ERROR"
                }
            return Failure(status: HTTPResponse.Status(code: error.httpStatus), code: code, message: error.message)
        }
    }

    func handle(_ context: AppRequestContext, _ body: () async throws -> Response) async -> Response {
        await Failure.handle(
            context, api: "Sigmic",
            envelope: { ["success": false, "error": ["code": .string($0.code), "message": .string($0.message)]] }, body)
    }

    static func success(_ data: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        JSONResponse.make(status: status, ["success": true, "data": data])
    }

    /// `Authorization: Bearer sk_…`: none → `AUTH_REQUIRED`, a bad one → `INVALID_API_KEY`.
    func caller(_ request: Request) async throws -> Identity {
        switch try await kit.authenticate(request) {
        case .identified(let identity): return identity
        case .missing:
            throw Failure(
                status: .unauthorized, code: "AUTH_REQUIRED",
                message: "Authentication required: send Authorization: Bearer <API key>.")
        case .invalid:
            throw Failure(status: .unauthorized, code: "INVALID_API_KEY", message: "Invalid or expired API key.")
        case .otherNamespace:
            throw Failure(status: .notFound, code: "NOT_FOUND", message: "Namespace not found.")
        }
    }

    func task(_ context: AppRequestContext, for identity: Identity) async throws -> Session {
        do {
            return try await kit.access.session(try context.parameters.require("id"), for: identity)
        } catch let error as CountersignError where error.code == .notFound {
            throw Failure.notFound
        }
    }

    // MARK: Create

    /// `multipart/form-data`, `application/x-www-form-urlencoded` or JSON with `message`
    /// and `autoExecute` → `{"id", "status": "pending"}` at once; the run goes on in the
    /// background.
    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let fields = try await Self.fields(of: request, data: try await kit.body(request))
            guard case .string(let message) = fields["message"] ?? .null, kit.validMessage(message) else {
                throw Failure.validation(
                    "message is required: a non-empty text of at most \(kit.configuration.maxMessageCharacters) characters."
                )
            }
            var autoExecute = false
            switch fields["autoExecute"] ?? .null {
            case .null: break
            case .bool(let flag): autoExecute = flag
            case .string(let text) where ["true", "false"].contains(text.lowercased()):
                autoExecute = text.lowercased() == "true"
            default: throw Failure.validation("autoExecute must be true or false.")
            }
            var agent: String?
            if let value = fields["agent"], value != .null {
                guard case .string(let name) = value else { throw Failure.validation("agent must be a string.") }
                agent = name
            }
            let session = try await kit.createSession(
                for: identity, agent: agent, metadata: ["door": "sigmic", "autoExecute": .bool(autoExecute)])
            _ = try await kit.engine.send(sessionID: session.id, content: message)
            return Self.success(["id": .string(session.id), "status": "pending"], status: .created)
        }
    }

    /// The text fields of a form or JSON body.
    static func fields(of request: Request, data: Data) async throws -> [String: JSONValue] {
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        if contentType.hasPrefix("multipart/form-data") {
            guard let boundary = MultipartForm.boundary(request.headers[.contentType] ?? ""),
                let fields = MultipartForm.parse(data, boundary: boundary)
            else { throw Failure.validation("The multipart/form-data body is malformed.") }
            return fields.mapValues(JSONValue.string)
        }
        if contentType.hasPrefix("application/x-www-form-urlencoded") {
            var components = URLComponents()
            components.percentEncodedQuery = String(decoding: data, as: UTF8.self).replacingOccurrences(
                of: "+", with: "%20")
            var fields: [String: JSONValue] = [:]
            for item in components.queryItems ?? [] { fields[item.name] = .string(item.value ?? "") }
            return fields
        }
        guard !data.isEmpty, case .object(let members) = try? JSONValue.parse(data) else {
            throw Failure.validation("Send multipart/form-data, a form or a JSON object with a message field.")
        }
        return members
    }

    // MARK: Read

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let session = try await task(context, for: identity)
            let pending = try await kit.confirmations(of: session, status: .pending)
            let ending = try await lastRunEnd(of: session)
            var status: String =
                switch session.status {
                case .running: "running"
                case .awaitingConfirmation: "awaiting_approval"
                case .failed: "failed"
                case .cancelled: "cancelled"
                case .idle: "completed"
                }
            if session.status == .idle, ending?.type == EventType.runFailed { status = "failed" }
            if session.status == .idle, ending == nil { status = "pending" }
            return Self.success([
                "id": .string(session.id), "status": .string(status),
                "pendingApprovals": .array(pending.map(Self.approval)),
                "result": ending?.type == EventType.runCompleted ? ending?.data["reply"] ?? .null : .null,
                "error": ending?.type == EventType.runFailed ? ending?.data["error"] ?? .null : .null,
                "createdAt": .string(Timestamp.format(session.createdAt)),
                "updatedAt": .string(Timestamp.format(session.updatedAt)),
            ])
        }
    }

    /// The last `run.completed` / `run.failed` event of the session, if any.
    func lastRunEnd(of session: Session) async throws -> SessionEvent? {
        var cursor: Int64 = max(0, session.lastSeq - 200)
        var found: SessionEvent?
        while true {
            let page = try await kit.store.events(sessionID: session.id, after: cursor, limit: 500)
            if let last = page.last(where: { EventType.terminal.contains($0.type) }) { found = last }
            guard page.count == 500, let last = page.last else { return found }
            cursor = last.seq
        }
    }

    static func approval(_ confirmation: Confirmation) -> JSONValue {
        [
            "callId": .string(confirmation.callID), "toolName": .string(confirmation.toolName),
            "args": confirmation.params, "status": "awaiting_approval", "summary": .string(confirmation.summary),
            "confirmationId": .string(confirmation.id), "expiresAt": .string(Timestamp.format(confirmation.expiresAt)),
        ]
    }

    // MARK: Stream

    /// The task's events from the start (or after `Last-Event-ID`) until its run ends:
    /// `tool_call`, `tool_result`, `content`, `error`, `done`. Each data line carries its
    /// fields at the top level (as the seed's JavaScript client reads them) and again
    /// under `data` (as the seed's example shows them).
    @Sendable func stream(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            let session = try await task(context, for: identity)
            var after: Int64 = 0
            if let text = request.headers[.lastEventID] {
                guard let value = Int64(text), value >= 0 else {
                    throw Failure.validation("Last-Event-ID must be a non-negative integer.")
                }
                after = value
            }
            return kit.stream.response(sessionID: session.id, after: after, end: .runEnds, encode: Self.encode)
        }
    }

    static func frame(_ type: String, _ fields: JSONValue, seq: Int64) -> String {
        var data: JSONValue = ["type": .string(type), "data": fields]
        for (key, value) in fields.objectValue ?? [:] { data = data.setting(key, value) }
        return SSEFrame.make(type, data, id: seq)
    }

    @Sendable static func encode(_ event: SessionEvent) -> String? {
        let data = event.data
        switch event.type {
        case EventType.toolCallCreated:
            let status: String =
                switch data["status"]?.stringValue {
                case "awaiting_confirmation": "awaiting_approval"
                case "denied_by_policy": "denied"
                default: "auto_approved"
                }
            var fields: JSONValue = [
                "callId": data["call_id"] ?? .null, "toolName": data["tool_name"] ?? .null, "status": .string(status),
                "args": data["params"] ?? [:],
            ]
            if let id = data["confirmation_id"] { fields = fields.setting("confirmationId", id) }
            return frame("tool_call", fields, seq: event.seq)
        case EventType.toolResult:
            let success = data["success"]?.boolValue ?? false
            return frame(
                "tool_result",
                [
                    "callId": data["call_id"] ?? .null, "toolName": data["tool_name"] ?? .null,
                    "status": data["status"] ?? .null, "success": .bool(success),
                    "result": success ? .toolOutput(data) : .null, "error": success ? .null : data["content"] ?? .null,
                ], seq: event.seq)
        case EventType.token:
            return frame("content", ["text": data["text"] ?? ""], seq: event.seq)
        case EventType.runCompleted:
            return frame(
                "done", ["status": data["status"] ?? "completed", "result": data["reply"] ?? .null], seq: event.seq)
        case EventType.runFailed:
            return frame("error", ["message": data["error"] ?? ""], seq: event.seq)
                + frame("done", ["status": "failed", "result": .null], seq: event.seq)
        default:
            return nil
        }
    }

    // MARK: Approve

    enum Outcome: String, CaseIterable {
        case proceedOnce = "proceed_once"
        case proceedAlways = "proceed_always"
        case cancel
    }

    /// `{outcome}` → `{"approved": bool}`. `proceed_always` also records a session grant
    /// for the tool, unless the tool may not be remembered (destructive): then the call
    /// is approved once and `remembered` is false.
    @Sendable func approve(_ request: Request, context: AppRequestContext) async throws -> Response {
        await handle(context) {
            let identity = try await caller(request)
            guard let members = try await kit.jsonObject(request) else {
                throw Failure.validation("The body must be a JSON object {\"outcome\": …}.")
            }
            guard case .string(let text) = members["outcome"] ?? .null, let outcome = Outcome(rawValue: text) else {
                throw Failure.validation(
                    "outcome must be one of " + Outcome.allCases.map(\.rawValue).joined(separator: ", ") + ".")
            }
            var reason: String?
            if let value = members["reason"], value != .null {
                guard case .string(let text) = value else { throw Failure.validation("reason must be a string.") }
                reason = text
            }
            let session = try await task(context, for: identity)
            let callID = try context.parameters.require("callId")
            guard let confirmation = try await kit.confirmations(of: session).first(where: { $0.callID == callID })
            else {
                throw Failure(status: .notFound, code: "NOT_FOUND", message: "Tool call not found.")
            }
            _ = try await kit.access.decidable(confirmation.id, for: identity)
            let remember = outcome == .proceedAlways && kit.grantAllowed(for: confirmation, in: session)
            let decision =
                outcome == .cancel
                ? DecisionRequest(kind: .deny, reason: reason)
                : DecisionRequest(kind: .approve, remember: remember ? .session : .once)
            let result = try await kit.engine.decide(
                confirmationID: confirmation.id, request: decision, by: identity)
            return Self.success([
                "approved": .bool(outcome != .cancel), "outcome": .string(outcome.rawValue),
                "remembered": .bool(remember), "callId": .string(callID),
                "status": .string(result.confirmation.status.rawValue),
            ])
        }
    }
}

/// The text fields of a `multipart/form-data` body (RFC 7578). File parts are skipped.
enum MultipartForm {
    static func boundary(_ contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "boundary" {
                let value = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                return value.isEmpty || value.count > 200 ? nil : value
            }
        }
        return nil
    }

    static func parse(_ data: Data, boundary: String) -> [String: String]? {
        let body = [UInt8](data)
        let delimiter = [UInt8](("--" + boundary).utf8)
        guard var position = find(delimiter, in: body, from: 0) else { return nil }
        var fields: [String: String] = [:]
        while true {
            position += delimiter.count
            if body.count >= position + 2, body[position] == UInt8(ascii: "-"), body[position + 1] == UInt8(ascii: "-")
            {
                return fields
            }
            guard body.count >= position + 2, body[position] == 13, body[position + 1] == 10 else { return nil }
            position += 2
            guard let next = find([13, 10] + delimiter, in: body, from: position),
                let headerEnd = find([13, 10, 13, 10], in: body, from: position), headerEnd <= next
            else { return nil }
            let headers = String(decoding: body[position..<headerEnd], as: UTF8.self)
            let content = body[(headerEnd + 4)..<next]
            if let (name, isFile) = disposition(headers), !isFile {
                fields[name] = String(decoding: content, as: UTF8.self)
            }
            position = next + 2
        }
    }

    /// The field name of a part and whether it is a file.
    static func disposition(_ headers: String) -> (String, Bool)? {
        for line in headers.components(separatedBy: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces).lowercased() == "content-disposition"
            else { continue }
            var name: String?
            var isFile = false
            for parameter in parts[1].split(separator: ";").dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard pair.count == 2 else { continue }
                let value = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                switch pair[0].lowercased() {
                case "name": name = value
                case "filename": isFile = true
                default: break
                }
            }
            return name.map { ($0, isFile) }
        }
        return nil
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else {
            return nil
        }
        var index = start
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], Array(haystack[index..<index + needle.count]) == needle { return index }
            index += 1
        }
        return nil
    }
}
