import AgentRuntime
import Foundation
import GateCore
import Hummingbird
import NIOCore

/// `/v1/confirmations…`: the inbox, one confirmation, a decision (JSON or SSE
/// continuation) and batch decisions.
struct ConfirmationsController {
    let engine: RunEngine
    let access: AccessControl
    let stream: EventStream
    let configuration: ServerConfiguration

    static let decisionFields: Set<String> = [
        "decision", "reason", "edited_params", "params_hash", "remember", "grant_scope",
    ]

    func register(on group: RouterGroup<AppRequestContext>) {
        group.get("confirmations", use: inbox)
        group.post("confirmations/decisions", use: batch)
        group.get("confirmations/{id}", use: get)
        group.post("confirmations/{id}/decision", use: decide)
    }

    @Sendable func inbox(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var status: ConfirmationStatus? = .pending
        if let text = request.query("status") {
            if text == "all" {
                status = nil
            } else {
                guard let value = ConfirmationStatus(rawValue: text) else {
                    throw CountersignError.validation(
                        "status must be one of all, "
                            + ConfirmationStatus.allCases.map(\.rawValue).joined(separator: ", ") + ".",
                        details: ["field": "status"])
                }
                status = value
            }
        }
        let limit = try request.queryInt("limit", default: 100, range: 1...500)
        let confirmations = try await engine.store.confirmations(
            namespaceID: identity.namespaceID,
            filter: ConfirmationFilter(
                status: status, sessionID: request.query("session_id"), toolName: request.query("tool"),
                actor: identity.seesWholeNamespace ? nil : identity.actor, afterID: request.query("after"),
                limit: limit))
        return JSONResponse.make([
            "data": .array(confirmations.map(Present.confirmation)),
            "next_cursor": confirmations.count == limit ? confirmations.last.map { .string($0.id) } ?? .null : .null,
        ])
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (confirmation, _) = try await access.confirmation(
            try context.parameters.require("id"), for: try context.requireIdentity())
        return JSONResponse.make(Present.confirmation(confirmation))
    }

    static func decisionRequest(_ body: JSONBody) throws -> DecisionRequest {
        let kind = try body.oneOf("decision", DecisionKind.self, required: true)!
        var editedParams: JSONValue?
        if let edited = body.members["edited_params"], edited != .null {
            guard case .object = edited else {
                throw CountersignError.validation(
                    "edited_params must be a JSON object.", details: ["field": .string(body.path + "edited_params")])
            }
            editedParams = edited
        }
        var decision = DecisionRequest(
            kind: kind, reason: try body.string("reason", maxLength: 2000), editedParams: editedParams,
            paramsHash: try body.string("params_hash", maxLength: 128),
            remember: try body.oneOf("remember", Remember.self) ?? .once)
        if let scope = try body.object("grant_scope") {
            do {
                decision.grantScope = try ValueMatcher.parseAll(scope)
            } catch {
                throw CountersignError.validation(
                    "grant_scope: \(error.message).", details: ["field": .string(body.path + "grant_scope")])
            }
        }
        return decision
    }

    @Sendable func decide(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let id = try context.parameters.require("id")
        let body = try await JSONBody.read(request, limit: configuration.maxBodyBytes, allowed: Self.decisionFields)
        let decision = try Self.decisionRequest(body)
        let decidable = try await access.decidable(id, for: identity)
        let confirmation = decidable.0
        let result = try await engine.decide(decidable, request: decision, by: identity)
        if request.wantsEventStream {
            let after = result.resumed?.startSeq ?? 0
            if let handle = result.resumed {
                return try stream.response(
                    sessionID: confirmation.sessionID, after: after, until: .runStops(handle), identity: identity)
            }
            // The run still waits on other confirmations of its step: the stream carries
            // this decision's events and ends.
            let first = result.events.first?.seq ?? 1
            let last = result.events.last?.seq ?? 0
            return try stream.response(
                sessionID: confirmation.sessionID, after: first - 1,
                until: .seq(last), identity: identity)
        }
        var run: JSONValue = .null
        if let handle = result.resumed { run = Present.outcome(await handle.outcome) }
        return JSONResponse.make(["confirmation": Present.confirmation(result.confirmation), "run": run])
    }

    @Sendable func batch(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: configuration.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw CountersignError(.tooLarge, "The request body is larger than \(configuration.maxBodyBytes) bytes.")
        }
        var items: [JSONValue]
        switch try JSONValue.parse(Data(buffer.readableBytesView)) {
        case .array(let array): items = array
        case .object(let object) where object.keys.sorted() == ["decisions"]:
            guard case .array(let array) = object["decisions"]! else {
                throw CountersignError.validation("decisions must be an array.", details: ["field": "decisions"])
            }
            items = array
        default:
            throw CountersignError.validation("The body must be an array of decisions (or {\"decisions\": [...]}).")
        }
        guard !items.isEmpty, items.count <= 100 else {
            throw CountersignError.validation("Send from 1 to 100 decisions at once.")
        }
        // Validate every item before deciding any, so a malformed batch changes nothing.
        var parsed: [(String, DecisionRequest)] = []
        for (index, item) in items.enumerated() {
            let body = try JSONBody(item, allowed: Self.decisionFields.union(["id"]), path: "[\(index)].")
            parsed.append((try body.requiredString("id", maxLength: 100), try Self.decisionRequest(body)))
        }
        var results: [JSONValue] = []
        var handles: [RunHandle] = []
        for (id, decision) in parsed {
            do {
                let decidable = try await access.decidable(id, for: identity)
                let result = try await engine.decide(decidable, request: decision, by: identity)
                if let handle = result.resumed { handles.append(handle) }
                results.append([
                    "id": .string(id), "ok": true, "status": 200,
                    "confirmation": Present.confirmation(result.confirmation),
                ])
            } catch {
                let apiError = ErrorMiddleware.translate(error)
                results.append([
                    "id": .string(id), "ok": false, "status": .int(Int64(apiError.httpStatus)),
                    "error": [
                        "code": .string(apiError.code.rawValue), "message": .string(apiError.message),
                        "details": apiError.details ?? .object([:]),
                    ],
                ])
            }
        }
        var runs: [JSONValue] = []
        for handle in handles { runs.append(Present.outcome(await handle.outcome)) }
        return JSONResponse.make(["results": .array(results), "runs": .array(runs)])
    }
}
