import AgentRuntime
import CountersignClient
import CountersignTesting
import Foundation
import GateCore
import Testing

extension Compat {
    /// Seed 000 (Mixpeek-style session SSE API) replayed against a live server.
    @Suite struct MixpeekTests {
        /// Creates a session on the door and sends `message`; returns the session id and the
        /// `confirmation_required` event's data.
        func pause(_ client: CountersignClient, _ message: String) async throws -> (String, JSONValue) {
            let created = try await client.request(.POST, "/v1/agents/sessions", json: ["agent": "demo"])
            #expect(created.status == 201, "\(created.text)")
            let session = try #require(created.json?["session_id"]?.stringValue)
            let turn = try await client.request(
                .POST, "/v1/agents/sessions/\(session)/messages", json: ["message": .string(message)])
            #expect(turn.status == 200)
            #expect(turn.headers.first(name: "Content-Type") == "text/event-stream")
            let events = sseEvents(turn)
            #expect(events.map(\.event) == ["confirmation_required"])
            return (session, try #require(events.first?.json))
        }

        @Test func theDocumentsExampleApprovesAndStreamsTheContinuation() async throws {
            try await TestServer.with { server in
                // `X-Namespace` by name and by id, as the document allows.
                let byName = server.client(namespace: "default")
                let (session, required) = try await pause(byName, "delete old-collection.txt")
                let confirmationID = try #require(required["confirmation_id"]?.stringValue)
                #expect(confirmationID.hasPrefix("conf_"))
                #expect(required["tool_name"] == "delete_file")
                #expect(required["params"] == ["path": "old-collection.txt"])
                #expect(required["expires_at"]?.stringValue != nil)
                let old = server.workspace(of: session).appendingPathComponent("old-collection.txt")
                try Data("x".utf8).write(to: old)

                let byID = server.client(namespace: try await defaultNamespaceID(server))
                let response = try await byID.request(
                    .POST, "/v1/agents/sessions/\(session)/confirmations/\(confirmationID)", json: ["approved": true],
                    headers: [("Content-Type", "application/json")])
                #expect(response.status == 200)
                let events = sseEvents(response)
                #expect(events.map(\.event) == ["tool_result", "token", "done"])
                #expect(events[0].json["tool_name"] == "delete_file")
                #expect(events[0].json["success"] == true)
                #expect(events[0].json["result"]?.objectValue != nil)
                #expect(events[1].json == ["content": "I deleted old-collection.txt."])
                #expect(events[2].json == [:])
                #expect(!FileManager.default.fileExists(atPath: old.path))
            }
        }

        @Test func denyingStreamsTheDeclinedResult() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let (session, required) = try await pause(client, "write notes.txt hello")
                let id = required["confirmation_id"]!.string
                let response = try await client.request(
                    .POST, "/v1/agents/sessions/\(session)/confirmations/\(id)", json: ["approved": false])
                let events = sseEvents(response)
                #expect(events.map(\.event) == ["tool_result", "token", "done"])
                #expect(events[0].json["success"] == false)
                #expect(events[1].json["content"]?.string.contains("User rejected the action.") == true)
                #expect(server.file("notes.txt", in: session) == nil)
            }
        }

        @Test func alreadyProcessedAndExpiredAre400() async throws {
            let clock = ManualClock()
            try await TestServer.with(clock: clock) { server in
                let client = server.client()
                let (session, required) = try await pause(client, "write a.txt x")
                let path = "/v1/agents/sessions/\(session)/confirmations/\(required["confirmation_id"]!.string)"
                #expect(try await client.request(.POST, path, json: ["approved": true]).status == 200)
                let again = try await client.request(.POST, path, json: ["approved": true])
                expectError(again, status: 400, code: "already_decided")

                let (late, lateRequired) = try await pause(client, "write b.txt y")
                clock.advance(by: 301)
                let expired = try await client.request(
                    .POST, "/v1/agents/sessions/\(late)/confirmations/\(lateRequired["confirmation_id"]!.string)",
                    json: ["approved": true])
                expectError(expired, status: 400, code: "expired")
                #expect(server.file("b.txt", in: late) == nil)
            }
        }

        @Test func unknownSessionOrConfirmationIs404() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let (session, required) = try await pause(client, "write a.txt x")
                let id = required["confirmation_id"]!.string
                let unknownSession = try await client.request(
                    .POST, "/v1/agents/sessions/ses_unknown/confirmations/\(id)", json: ["approved": true])
                expectError(unknownSession, status: 404, code: "not_found")
                let unknownConfirmation = try await client.request(
                    .POST, "/v1/agents/sessions/\(session)/confirmations/conf_unknown", json: ["approved": true])
                expectError(unknownConfirmation, status: 404, code: "not_found")
                // A confirmation is found only under its own session.
                let (other, _) = try await pause(client, "write b.txt y")
                let crossed = try await client.request(
                    .POST, "/v1/agents/sessions/\(other)/confirmations/\(id)", json: ["approved": true])
                expectError(crossed, status: 404, code: "not_found")
                // Another namespace's objects do not exist for the caller.
                let foreign = server.client(key: try await otherNamespaceKey(server))
                let hidden = try await foreign.request(
                    .POST, "/v1/agents/sessions/\(session)/confirmations/\(id)", json: ["approved": true])
                expectError(hidden, status: 404, code: "not_found")
                let wrongHeader = server.client(namespace: "elsewhere")
                let header = try await wrongHeader.request(
                    .POST, "/v1/agents/sessions/\(session)/confirmations/\(id)", json: ["approved": true])
                expectError(header, status: 404, code: "not_found")
                #expect(try await client.confirmation(id)["status"]?.string == "pending")
            }
        }

        @Test func authenticationBodyAndActors() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let (session, required) = try await pause(client, "write a.txt x")
                let path = "/v1/agents/sessions/\(session)/confirmations/\(required["confirmation_id"]!.string)"
                expectError(
                    try await anonymousClient(server).request(.POST, path, json: ["approved": true]), status: 401,
                    code: "unauthenticated")
                expectError(
                    try await client.request(.POST, path, json: ["approved": "yes"]), status: 422,
                    code: "validation_error")
                expectError(try await client.request(.POST, path, json: [:]), status: 422, code: "validation_error")
                let bob = server.client(key: try await server.makeKey(actor: "bob", role: .member))
                expectError(
                    try await bob.request(.POST, path, json: ["approved": true]), status: 403, code: "forbidden")
                // An approver of the namespace may decide another actor's confirmation.
                let carol = server.client(key: try await server.makeKey(actor: "carol", role: .approver))
                let approved = try await carol.request(.POST, path, json: ["approved": true])
                #expect(sseEvents(approved).map(\.event) == ["tool_result", "token", "done"])
                #expect(server.file("a.txt", in: session) == "x")
            }
        }

        @Test func aConfirmationOfThisDoorIsInTheNativeInboxAndDecidableNatively() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let (session, required) = try await pause(client, "write a.txt from-mixpeek")
                let id = required["confirmation_id"]!.string
                let inbox = try await client.confirmations()
                #expect(inbox.map { $0["id"]?.string } == [id])
                let decided = try await client.decide(id, approve: true)
                #expect(decided["run"]?["reply"]?.string == "I wrote a.txt.")
                #expect(server.file("a.txt", in: session) == "from-mixpeek")
                let late = try await client.request(
                    .POST, "/v1/agents/sessions/\(session)/confirmations/\(id)", json: ["approved": false])
                expectError(late, status: 400, code: "already_decided")
            }
        }

        @Test func partOfAParallelStepEndsTheStreamUntilTheLastDecision() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let created = try await client.call(.POST, "/v1/agents/sessions", json: [:])
                let session = created["session_id"]!.string
                let turn = try await client.request(
                    .POST, "/v1/agents/sessions/\(session)/messages",
                    json: ["message": "write a.txt x and write b.txt y"])
                let ids = sseEvents(turn).map { $0.json["confirmation_id"]!.string }
                #expect(ids.count == 2)
                let first = try await client.request(
                    .POST, "/v1/agents/sessions/\(session)/confirmations/\(ids[0])", json: ["approved": true])
                #expect(first.status == 200)
                #expect(sseEvents(first).isEmpty)
                let second = try await client.request(
                    .POST, "/v1/agents/sessions/\(session)/confirmations/\(ids[1])", json: ["approved": true])
                #expect(sseEvents(second).map(\.event) == ["tool_result", "tool_result", "token", "done"])
                let state = try await client.call(.GET, "/v1/agents/sessions/\(session)")
                #expect(state["status"] == "idle")
                #expect(state["pending_confirmations"] == [])
            }
        }
    }
}
