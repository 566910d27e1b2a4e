import AgentRuntime
import Foundation
import GateCore
import Hummingbird
import NIOCore

/// `/v1/sessions…`: create, list, read, send messages (JSON or SSE), events, cancel.
struct SessionsController {
    let engine: RunEngine
    let access: AccessControl
    let stream: EventStream
    let configuration: ServerConfiguration

    func register(on group: RouterGroup<AppRequestContext>) {
        group.post("sessions", use: create)
        group.get("sessions", use: list)
        group.get("sessions/{id}", use: get)
        group.post("sessions/{id}/messages", use: send)
        group.get("sessions/{id}/events", use: events)
        group.post("sessions/{id}/cancel", use: cancel)
    }

    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let body = try await JSONBody.read(request, limit: configuration.maxBodyBytes, allowed: ["agent", "metadata"])
        let agent = try body.requiredString("agent", maxLength: 200)
        let metadata = try body.object("metadata") ?? .object([:])
        let session = try await engine.createSession(
            namespaceID: identity.namespaceID, actor: identity.actor, agent: agent, metadata: metadata)
        return JSONResponse.make(status: .created, Present.session(session))
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let limit = try request.queryInt("limit", default: 50, range: 1...200)
        let sessions = try await engine.store.sessions(
            namespaceID: identity.namespaceID, actor: identity.seesWholeNamespace ? nil : identity.actor,
            beforeID: request.query("before"), limit: limit)
        return JSONResponse.make([
            "data": .array(sessions.map(Present.session)),
            "next_cursor": sessions.count == limit ? sessions.last.map { .string($0.id) } ?? .null : .null,
        ])
    }

    @Sendable func get(_ request: Request, context: AppRequestContext) async throws -> Response {
        let session = try await access.session(try context.parameters.require("id"), for: try context.requireIdentity())
        return JSONResponse.make(Present.session(session))
    }

    @Sendable func send(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let session = try await access.session(try context.parameters.require("id"), for: identity)
        let body = try await JSONBody.read(request, limit: configuration.maxBodyBytes, allowed: ["content"])
        let content = try body.requiredString("content", maxLength: configuration.maxMessageCharacters)
        guard !content.trimmingWhitespace().isEmpty else {
            throw CountersignError.validation("content must not be empty.", details: ["field": "content"])
        }
        let handle = try await engine.send(sessionID: session.id, content: content)
        if request.wantsEventStream {
            return try stream.response(
                sessionID: session.id, after: handle.startSeq, until: .runStops(handle), identity: identity)
        }
        return JSONResponse.make(Present.outcome(await handle.outcome))
    }

    @Sendable func events(_ request: Request, context: AppRequestContext) async throws -> Response {
        let session = try await access.session(try context.parameters.require("id"), for: try context.requireIdentity())
        let afterText = request.headers[.lastEventID] ?? request.query("after")
        var after: Int64 = 0
        if let afterText {
            guard let value = Int64(afterText), value >= 0 else {
                throw CountersignError.validation(
                    "after / Last-Event-ID must be a non-negative integer seq.", details: ["field": "after"])
            }
            after = value
        }
        if request.wantsEventStream {
            return try stream.response(
                sessionID: session.id, after: after, until: .disconnect, identity: try context.requireIdentity())
        }
        let limit = try request.queryInt("limit", default: 100, range: 1...1000)
        let events = try await engine.store.events(sessionID: session.id, after: after, limit: limit)
        return JSONResponse.make([
            "data": .array(events.map(EventFactory.eventJSON)),
            "next_after": .int(events.last?.seq ?? after),
            "has_more": .bool(events.count == limit),
        ])
    }

    @Sendable func cancel(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let session = try await access.session(try context.parameters.require("id"), for: identity)
        let outcome = try await engine.cancel(sessionID: session.id, actor: identity.actor)
        return JSONResponse.make([
            "session": Present.session(outcome.session),
            "cancelled_confirmations": .array(outcome.cancelled.map { .string($0.id) }),
        ])
    }
}
