import AgentRuntime
import CountersignClient
import CountersignTesting
import Foundation
import GateCore
import Testing

@Suite struct EventStreamTests {
    @Test func reconnectingWithLastEventIDGetsEveryLaterEventExactlyOnce() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let session = try await client.createSession(agent: "demo")["id"]!.string
            // First connection: read until the confirmation is required, then disconnect.
            let sender = Task { try await client.send(sessionID: session, content: "write a.txt x") }
            var lastID: String?
            var confirmationID: String?
            for try await event in client.eventStream(.GET, "/v1/sessions/\(session)/events") {
                lastID = event.id
                if event.event == "confirmation.required" {
                    confirmationID = try JSONValue.parse(event.data)["id"]?.stringValue
                    break
                }
            }
            _ = try await sender.value
            let id = try #require(confirmationID)
            let last = try #require(lastID.flatMap { Int64($0) })
            // While disconnected, the run goes on.
            _ = try await client.decide(id, approve: true)
            // Reconnect: everything after `last`, once each, in order, up to run.completed.
            var received: [ServerSentEvent] = []
            for try await event in client.eventStream(.GET, "/v1/sessions/\(session)/events", lastEventID: String(last))
            {
                received.append(event)
                if event.event == "run.completed" { break }
            }
            let seqs = received.compactMap { $0.id.flatMap { Int64($0) } }
            #expect(seqs == Array((last + 1)...(last + Int64(seqs.count))))
            let log = try await client.events(sessionID: session, after: last)
            #expect(log.map { $0["seq"]?.intValue } == seqs.map { Optional($0) })
            #expect(log.map { $0["type"]?.string } == received.map(\.event))
            #expect(log.map { $0["data"] } == received.map { try? JSONValue.parse($0.data) })
            #expect(received.map(\.event).contains("tool.result"))
        }
    }

    @Test func afterQueryParameterResumesLikeLastEventID() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, _) = try await startDemo(client, "list")
            var events: [ServerSentEvent] = []
            for try await event in client.eventStream(.GET, "/v1/sessions/\(session)/events?after=2") {
                events.append(event)
                if event.event == "run.completed" { break }
            }
            #expect(events.first?.id == "3")
        }
    }

    @Test func messageStreamEndsAtTheGateAndDecisionStreamContinues() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let session = try await client.createSession(agent: "demo")["id"]!.string
            var first: [ServerSentEvent] = []
            for try await event in client.eventStream(
                .POST, "/v1/sessions/\(session)/messages", json: ["content": "write a.txt streamed"])
            {
                first.append(event)
            }
            #expect(first.first?.event == "message.created")
            #expect(first.last?.event == "confirmation.required")
            let id = try #require(try JSONValue.parse(first.last!.data)["id"]?.stringValue)
            var second: [ServerSentEvent] = []
            for try await event in client.eventStream(
                .POST, "/v1/confirmations/\(id)/decision", json: ["decision": "approve"])
            {
                second.append(event)
            }
            #expect(
                second.map(\.event) == [
                    "confirmation.decided", "tool.started", "tool.result", "token", "message.completed",
                    "run.completed",
                ])
            let ids = (first + second).compactMap { $0.id.flatMap { Int($0) } }
            #expect(ids == Array(1...ids.count))
            #expect(server.file("a.txt", in: session) == "streamed")
        }
    }

    @Test func idleStreamsGetHeartbeats() async throws {
        try await TestServer.with(heartbeat: .milliseconds(50)) { server in
            let client = server.client()
            let session = try await client.createSession(agent: "demo")["id"]!.string
            var pings = 0
            for try await event in client.eventStream(.GET, "/v1/sessions/\(session)/events", includeComments: true) {
                #expect(event.event == ":")
                if event.data == "ping" { pings += 1 }
                if pings == 3 { break }
            }
            #expect(pings == 3)
        }
    }
}
