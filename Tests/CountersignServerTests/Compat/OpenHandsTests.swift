import AgentRuntime
import CountersignClient
import CountersignServer
import CountersignTesting
import Foundation
import GateCore
import Testing

extension Compat {
    /// Seed 002 (OpenHands `respond_to_confirmation`) replayed against a live server.
    @Suite struct OpenHandsTests {
        /// Starts a conversation whose first message stops at the gate; returns its UUID and
        /// session id once the confirmation is in the log.
        func waitingConversation(_ server: TestServer, _ text: String, client: CountersignClient? = nil) async throws
            -> (uuid: String, session: String)
        {
            let client = client ?? server.client()
            let started = try await client.request(
                .POST, "/api/conversations",
                json: ["initial_message": ["role": "user", "content": [["type": "text", "text": .string(text)]]]])
            #expect(started.status == 201, "\(started.text)")
            let uuid = try #require(started.json?["id"]?.stringValue)
            #expect(UUID(uuidString: uuid) != nil)
            let session = try #require(started.json?["countersign_session_id"]?.stringValue)
            _ = try await waitForEvent(server.client(), session: session, type: "confirmation.required")
            let info = try await client.call(.GET, "/api/conversations/\(uuid)")
            #expect(info["execution_status"] == "waiting_for_confirmation")
            #expect(info["pending_actions"]?.arrayValue?.count == 1)
            return (uuid, session)
        }

        func respond(_ client: CountersignClient, _ uuid: String, _ body: JSONValue) async throws
            -> CountersignClient.RawResponse
        {
            try await client.request(.POST, "/api/conversations/\(uuid)/events/respond_to_confirmation", json: body)
        }

        @Test func acceptRunsThePendingAction() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let (uuid, session) = try await waitingConversation(server, "write plan.md step one")
                let response = try await respond(client, uuid, ["accept": true])
                #expect(response.status == 200)
                #expect(response.json == ["success": true])
                let completed = try await waitForEvent(client, session: session, type: "run.completed")
                #expect(completed.json["reply"] == "I wrote plan.md.")
                #expect(server.file("plan.md", in: session) == "step one")
                let info = try await client.call(.GET, "/api/conversations/\(uuid)")
                #expect(info["execution_status"] == "finished")
            }
        }

        @Test func rejectUsesTheDefaultReasonOrTheGivenOne() async throws {
            try await TestServer.with { server in
                let client = server.client()
                for (body, reason) in [
                    (["accept": false] as JSONValue, "User rejected the action."),
                    (["accept": false, "reason": "Not on Fridays."], "Not on Fridays."),
                ] {
                    let (uuid, session) = try await waitingConversation(server, "delete release.txt")
                    let response = try await respond(client, uuid, body)
                    #expect(response.json == ["success": true])
                    let completed = try await waitForEvent(client, session: session, type: "run.completed")
                    #expect(completed.json["reply"]?.stringValue?.contains(reason) == true)
                    let confirmation = try #require(
                        try await client.confirmations(status: "all", sessionID: session).first)
                    #expect(confirmation["status"] == "denied")
                    #expect(confirmation["decision"]?["reason"]?.stringValue == reason)
                }
            }
        }

        @Test func acceptingApprovesEveryPendingActionOfTheConversation() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let started = try await client.call(.POST, "/api/conversations", json: [:])
                let uuid = started["id"]!.string
                let session = started["countersign_session_id"]!.string
                #expect(started["execution_status"] == "idle")
                let sent = try await client.request(
                    .POST, "/api/conversations/\(uuid)/events",
                    json: [
                        "role": "user", "content": [["type": "text", "text": "write a.txt x and write b.txt y"]],
                        "run": true,
                    ])
                #expect(sent.json == ["success": true])
                _ = try await waitForEvent(client, session: session, type: "confirmation.required")
                #expect(try await client.confirmations(sessionID: session).count == 2)
                #expect(try await respond(client, uuid, ["accept": true]).json == ["success": true])
                _ = try await waitForEvent(client, session: session, type: "run.completed")
                #expect(server.file("a.txt", in: session) == "x")
                #expect(server.file("b.txt", in: session) == "y")
            }
        }

        @Test func unknownConversationIs404() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let unknown = try await respond(client, UUID().uuidString.lowercased(), ["accept": true])
                #expect(unknown.status == 404)
                #expect(unknown.json?["detail"]?.stringValue != nil)
                // Another namespace's conversation does not exist for the caller.
                let (uuid, _) = try await waitingConversation(server, "write a.txt x")
                let foreign = server.client(key: try await otherNamespaceKey(server))
                #expect(try await respond(foreign, uuid, ["accept": true]).status == 404)
                #expect(try await foreign.request(.GET, "/api/conversations/\(uuid)").status == 404)
            }
        }

        @Test func invalidPathsAndBodiesAre422WithFastAPIDetails() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let (uuid, session) = try await waitingConversation(server, "write a.txt x")
                func detail(_ response: CountersignClient.RawResponse) -> [JSONValue] {
                    #expect(response.status == 422, "\(response.text)")
                    let items = response.json?["detail"]?.arrayValue ?? []
                    for item in items {
                        #expect(item["loc"]?.arrayValue != nil)
                        #expect(item["msg"]?.stringValue != nil)
                        #expect(item["type"]?.stringValue != nil)
                    }
                    return items
                }
                let badID = detail(try await respond(client, "not-a-uuid", ["accept": true]))
                #expect(badID.map { $0["loc"] } == [["path", "conversation_id"]])
                #expect(badID.first?["type"] == "uuid_parsing")
                let missing = detail(try await respond(client, uuid, [:]))
                #expect(missing.map { $0["loc"] } == [["body", "accept"]])
                #expect(missing.first?["type"] == "missing")
                let notBool = detail(try await respond(client, uuid, ["accept": "perhaps"]))
                #expect(notBool.first?["type"] == "bool_parsing")
                let badReason = detail(try await respond(client, uuid, ["accept": false, "reason": 7]))
                #expect(badReason.map { $0["loc"] } == [["body", "reason"]])
                let notJSON = try await client.request(
                    .POST, "/api/conversations/\(uuid)/events/respond_to_confirmation", body: Data("{".utf8))
                #expect(detail(notJSON).first?["type"] == "json_invalid")
                let both = detail(try await respond(client, "nope", [:]))
                #expect(both.count == 2)
                // Nothing was decided by any of them.
                #expect(try await client.confirmations(sessionID: session).count == 1)
            }
        }

        @Test func authAndActors() async throws {
            try await TestServer.with { server in
                let (uuid, session) = try await waitingConversation(server, "write a.txt x")
                let anonymous = try await respond(anonymousClient(server), uuid, ["accept": true])
                #expect(anonymous.status == 401)
                #expect(anonymous.json?["detail"]?.stringValue != nil)
                let bob = server.client(key: try await server.makeKey(actor: "bob", role: .member))
                #expect(try await respond(bob, uuid, ["accept": true]).status == 403)
                // OpenHands' own header carries the key too.
                let viaHeader = try await anonymousClient(server).request(
                    .POST, "/api/conversations/\(uuid)/events/respond_to_confirmation", json: ["accept": true],
                    headers: [("X-Session-API-Key", server.adminKey)])
                #expect(viaHeader.json == ["success": true])
                _ = try await waitForEvent(server.client(), session: session, type: "run.completed")
                // Nothing is waiting any more.
                let nothing = try await respond(server.client(), uuid, ["accept": true])
                #expect(nothing.status == 409)
            }
        }

        @Test func aConfirmationOfThisDoorIsInTheNativeInboxAndDecidableNatively() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let (uuid, session) = try await waitingConversation(server, "write a.txt via-openhands")
                let inbox = try await client.confirmations()
                #expect(inbox.map { $0["session_id"]?.stringValue } == [session])
                let decided = try await client.decide(inbox[0]["id"]!.string, approve: true)
                #expect(decided["run"]?["reply"] == "I wrote a.txt.")
                #expect(server.file("a.txt", in: session) == "via-openhands")
                #expect(try await respond(client, uuid, ["accept": true]).status == 409)
            }
        }

        @Test func conversationIDsAreStableUUIDsBoundInTheStore() async throws {
            try await TestServer.with { server in
                let (uuid, session) = try await waitingConversation(server, "write a.txt x")
                let binding = try #require(
                    try await server.store.compatID(kind: "openhands.conversation", externalID: uuid))
                #expect(binding.localID == session)
                // The first binding of an external id wins.
                let again = try await server.store.bindCompatID(
                    CompatIDBinding(
                        kind: "openhands.conversation", externalID: uuid, localID: "ses_other",
                        namespaceID: binding.namespaceID,
                        createdAt: Date()))
                #expect(again.localID == session)
                let upper = try await server.client().request(.GET, "/api/conversations/\(uuid.uppercased())")
                #expect(upper.json?["id"]?.stringValue == uuid)
            }
        }
    }
}
