import AgentRuntime
import CountersignClient
import CountersignServer
import CountersignTesting
import Foundation
import GateCore
import Testing

extension Compat {
    /// Seed 004 (Murph's confirmation lifecycle) replayed against a live server.
    @Suite struct MurphTests {
        func chat(_ client: CountersignClient, _ body: JSONValue) async throws -> JSONValue {
            let response = try await client.request(.POST, "/api/v2/murph/chat", json: body)
            #expect(response.status == 200, "\(response.text)")
            return response.json ?? .null
        }

        func decide(_ client: CountersignClient, _ uid: String, _ decision: JSONValue) async throws
            -> CountersignClient.RawResponse
        {
            try await client.request(.POST, "/api/v2/murph/confirmations/\(uid)/decision", json: ["decision": decision])
        }

        func expectMurphError(
            _ response: CountersignClient.RawResponse, status: Int, code: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            #expect(response.status == status, "\(response.text)", sourceLocation: sourceLocation)
            #expect(
                response.json?["error"]?["code"]?.stringValue == code, "\(response.text)",
                sourceLocation: sourceLocation)
            #expect(response.json?["error"]?["message"]?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
        }

        @Test func theLifecycleChatThenConfirm() async throws {
            try await TestServer.with { server in
                let client = server.client()
                // 1. A normal chat request proposes a protected write, which does not run.
                let turn = try await chat(client, ["message": "write storefront/banner.txt Summer sale"])
                let conversation = try #require(turn["conversationId"]?.stringValue)
                let pending = try #require(turn["pendingConfirmation"])
                let uid = try #require(pending["confirmationUid"]?.stringValue)
                #expect(UUID(uuidString: uid) != nil)
                #expect(pending["toolName"] == "write_file")
                #expect(pending["toolKey"] == "files.write")
                #expect(pending["summary"] == "Write 11 bytes to storefront/banner.txt")
                #expect(pending["policy"] == "always")
                #expect(pending["resolvedParams"] == ["path": "storefront/banner.txt", "content": "Summer sale"])
                #expect(pending["writeExecuted"] == false)
                #expect(pending["plainAffirmativeAccepted"] == false)
                #expect(pending["expiresAt"]?.stringValue.flatMap(Timestamp.parse) != nil)
                #expect(server.file("storefront/banner.txt", in: conversation) == nil)

                // A plain "yes" is not accepted as a confirmation.
                let yes = try await chat(client, ["message": "yes", "conversationId": .string(conversation)])
                #expect(yes["pendingConfirmation"]?["confirmationUid"]?.stringValue == uid)
                #expect(yes["pendingConfirmation"]?["plainAffirmativeAccepted"] == false)
                #expect(yes["toolsUsed"] == [])
                #expect(server.file("storefront/banner.txt", in: conversation) == nil)

                // 2. Confirm: the chat response of the turn that executed the write.
                let confirmed = try await decide(client, uid, "confirm")
                #expect(confirmed.status == 200, "\(confirmed.text)")
                let body = try #require(confirmed.json)
                #expect(body["conversationId"]?.stringValue == conversation)
                #expect(body["toolsUsed"] == ["write_file"])
                #expect(body["reply"] == "I wrote storefront/banner.txt.")
                #expect(body["pendingConfirmation"] == .null)
                #expect(body["escalated"] == false)
                #expect(body["customerSwitch"] == .null)
                #expect(server.file("storefront/banner.txt", in: conversation) == "Summer sale")

                // Already used: 404.
                expectMurphError(try await decide(client, uid, "confirm"), status: 404, code: "NOT_FOUND")
            }
        }

        @Test func cancelOnlyRecordsTheCancellation() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let turn = try await chat(client, ["message": "delete products.csv"])
                let conversation = turn["conversationId"]!.string
                let uid = turn["pendingConfirmation"]!["confirmationUid"]!.string
                let cancelled = try await decide(client, uid, "cancel")
                #expect(cancelled.status == 200)
                let body = try #require(cancelled.json)
                #expect(body["confirmationUid"]?.stringValue == uid)
                #expect(body["status"] == "cancelled")
                #expect(body["writeExecuted"] == false)
                #expect(body["toolsUsed"] == nil)
                #expect(body["reply"] == nil)
                // Cancelled: 404 afterwards.
                expectMurphError(try await decide(client, uid, "confirm"), status: 404, code: "NOT_FOUND")
                _ = try await waitForEvent(client, session: conversation, type: "run.completed")
                let native = try #require(try await client.confirmations(status: "all", sessionID: conversation).first)
                #expect(native["status"] == "denied")
                #expect(native["decision"]?["reason"] == "User cancelled the action.")
            }
        }

        @Test func theStreamEndsWithTheChatResponse() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let response = try await client.request(
                    .POST, "/api/v2/murph/chat/stream", json: ["message": "write a.txt x"])
                #expect(response.headers.first(name: "Content-Type") == "text/event-stream")
                let events = sseEvents(response)
                #expect(events.map(\.event) == ["response", "done"])
                let uid = try #require(events[0].json["pendingConfirmation"]?["confirmationUid"]?.stringValue)
                let confirmed = try await decide(client, uid, "confirm")
                #expect(confirmed.json?["toolsUsed"] == ["write_file"])
                let plain = try await client.request(.POST, "/api/v2/murph/chat/stream", json: ["message": "list"])
                let plainEvents = sseEvents(plain)
                #expect(plainEvents.map(\.event) == ["tool_result", "token", "response", "done"])
                #expect(plainEvents[2].json["pendingConfirmation"] == .null)
            }
        }

        @Test func validationAndNotFound() async throws {
            let clock = ManualClock()
            try await TestServer.with(clock: clock) { server in
                let client = server.client()
                let turn = try await chat(client, ["message": "write a.txt x"])
                let uid = turn["pendingConfirmation"]!["confirmationUid"]!.string
                expectMurphError(
                    try await decide(client, "not-a-uuid", "confirm"), status: 400, code: "VALIDATION_ERROR")
                expectMurphError(try await decide(client, uid, "approve"), status: 400, code: "VALIDATION_ERROR")
                expectMurphError(
                    try await client.request(.POST, "/api/v2/murph/confirmations/\(uid)/decision", json: [:]),
                    status: 400,
                    code: "VALIDATION_ERROR")
                expectMurphError(
                    try await decide(client, UUID().uuidString, "confirm"), status: 404, code: "NOT_FOUND")
                expectMurphError(
                    try await client.request(.POST, "/api/v2/murph/chat", json: ["conversationId": "ses_x"]),
                    status: 400,
                    code: "VALIDATION_ERROR")
                expectMurphError(
                    try await anonymousClient(server).request(.POST, "/api/v2/murph/chat", json: ["message": "list"]),
                    status: 401,
                    code: "UNAUTHORIZED")
                // Another namespace: 404; another actor: 403.
                let foreign = server.client(key: try await otherNamespaceKey(server))
                expectMurphError(try await decide(foreign, uid, "confirm"), status: 404, code: "NOT_FOUND")
                let bob = server.client(key: try await server.makeKey(actor: "bob", role: .member))
                expectMurphError(try await decide(bob, uid, "confirm"), status: 403, code: "FORBIDDEN")
                // Expired: 404, and the write never runs.
                clock.advance(by: 301)
                expectMurphError(try await decide(client, uid, "confirm"), status: 404, code: "NOT_FOUND")
                #expect(server.file("a.txt", in: turn["conversationId"]!.string) == nil)
            }
        }

        @Test func anApproverMayDecideAnotherActorsConfirmation() async throws {
            try await TestServer.with { server in
                let alice = server.client(key: try await server.makeKey(actor: "alice", role: .member))
                let turn = try await chat(alice, ["message": "write a.txt from-alice"])
                let carol = server.client(key: try await server.makeKey(actor: "carol", role: .approver))
                let confirmed = try await decide(
                    carol, turn["pendingConfirmation"]!["confirmationUid"]!.string, "confirm")
                #expect(confirmed.json?["toolsUsed"] == ["write_file"])
            }
        }

        @Test func aWriteThatCannotBeProcessedIs503AndStaysPending() async throws {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "murph-503-\(UUID().uuidString)", isDirectory: true)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let database = "sqlite:\(directory.path)/countersign.db"
            var storefront = DemoAgent.make()
            storefront.name = "storefront"
            let agent = storefront
            let (uid, key) = try await TestServer.with(agents: [agent], configure: { $0.databaseURL = database }) {
                server in
                let turn = try await chat(server.client(), ["message": "write a.txt x", "agent": "storefront"])
                return (turn["pendingConfirmation"]!["confirmationUid"]!.string, server.adminKey)
            }
            // The same database, restarted without the agent that proposed the write.
            var configuration = ServerConfiguration()
            configuration.port = 0
            configuration.databaseURL = database
            try await withServer(configuration) { _, baseURL in
                let client = CountersignClient(baseURL: baseURL, apiKey: key)
                expectMurphError(try await decide(client, uid, "confirm"), status: 503, code: "SERVICE_UNAVAILABLE")
                let pending = try await client.confirmations()
                #expect(pending.count == 1)
                #expect(pending.first?["status"] == "pending")
            }
        }

        @Test func aConfirmationOfThisDoorIsInTheNativeInboxAndDecidableNatively() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let turn = try await chat(client, ["message": "write a.txt via-murph"])
                let conversation = turn["conversationId"]!.string
                let inbox = try await client.confirmations()
                #expect(inbox.map { $0["session_id"]?.stringValue } == [conversation])
                #expect(inbox.first?["summary"] == turn["pendingConfirmation"]?["summary"])
                let decided = try await client.decide(inbox[0]["id"]!.string, approve: true)
                #expect(decided["run"]?["status"] == "completed")
                #expect(server.file("a.txt", in: conversation) == "via-murph")
                let uid = turn["pendingConfirmation"]!["confirmationUid"]!.string
                expectMurphError(try await decide(client, uid, "confirm"), status: 404, code: "NOT_FOUND")
            }
        }
    }
}
