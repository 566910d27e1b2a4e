import AgentRuntime
import CountersignClient
import CountersignServer
import CountersignTesting
import Foundation
import GateCore
import Testing

extension Compat {
    /// Seed 001 (chat API with `/chat/confirm`) replayed against a live server.
    @Suite struct ChatTests {
        /// A `session_id` cookie for `key` (the bootstrap admin key by default).
        func login(_ server: TestServer, key: String? = nil) async throws -> String {
            let response = try await server.client(key: key).request(.POST, "/auth/session")
            #expect(response.status == 200, "\(response.text)")
            let cookie = try #require(response.headers.first(name: "Set-Cookie"))
            #expect(cookie.contains("HttpOnly"))
            #expect(cookie.contains("SameSite=Strict"))
            let pair = try #require(cookie.split(separator: ";").first)
            #expect(pair.hasPrefix("session_id="))
            return String(pair)
        }

        func chat(_ server: TestServer, _ cookie: String, _ path: String, _ body: JSONValue) async throws
            -> CountersignClient.RawResponse
        {
            try await anonymousClient(server).request(.POST, path, json: body, headers: [("Cookie", cookie)])
        }

        func expectChatError(
            _ response: CountersignClient.RawResponse, status: Int, error: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            #expect(response.status == status, "\(response.text)", sourceLocation: sourceLocation)
            #expect(response.json?["error"]?.stringValue == error, "\(response.text)", sourceLocation: sourceLocation)
            #expect(response.json?["message"]?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
        }

        @Test func theDocumentsWorkflowSyncChatThenConfirm() async throws {
            try await TestServer.with { server in
                let cookie = try await login(server)
                // 1. The agent requests confirmation.
                let first = try await chat(
                    server, cookie, "/chat", ["message": "write meetings/review.txt Project Review at 3 PM"])
                #expect(first.status == 200)
                let body = try #require(first.json)
                let thread = try #require(body["thread_id"]?.stringValue)
                #expect(body["requires_confirmation"] == true)
                #expect(body["confirmation_message"] == "Should I write 22 bytes to meetings/review.txt?")
                #expect(body["response"]?.stringValue?.isEmpty == false)
                #expect(server.file("meetings/review.txt", in: thread) == nil)

                // Saying yes in the chat approves nothing.
                let yes = try await chat(server, cookie, "/chat", ["message": "yes", "thread_id": .string(thread)])
                #expect(yes.json?["requires_confirmation"] == true)
                #expect(server.file("meetings/review.txt", in: thread) == nil)

                // 2. The user confirms (the example's body, with the `confirmation` text).
                let confirmed = try await chat(
                    server, cookie, "/chat/confirm", ["thread_id": .string(thread), "confirmation": "yes"])
                #expect(confirmed.status == 200, "\(confirmed.text)")
                let result = try #require(confirmed.json)
                #expect(result["thread_id"]?.stringValue == thread)
                #expect(result["status"] == "completed")
                #expect(result["response"] == "I wrote meetings/review.txt.")
                let results = try #require(result["results"]?.objectValue)
                #expect(results.count == 1)
                let (actionID, action) = try #require(results.first)
                #expect(actionID.hasPrefix("conf_"))
                #expect(action["tool"] == "write_file")
                #expect(action["success"] == true)
                #expect(action["result"] == ["path": "meetings/review.txt", "bytes": 22])
                #expect(action["error"] == .null)
                // 3. The actions were executed.
                #expect(server.file("meetings/review.txt", in: thread) == "Project Review at 3 PM")
            }
        }

        @Test func theConfirmationBodyWithoutTextIsEnough() async throws {
            try await TestServer.with { server in
                let cookie = try await login(server)
                let first = try await chat(server, cookie, "/chat", ["message": "write a.txt x"])
                let thread = first.json!["thread_id"]!.string
                let confirmed = try await chat(server, cookie, "/chat/confirm", ["thread_id": .string(thread)])
                #expect(confirmed.json?["status"] == "completed")
                #expect(server.file("a.txt", in: thread) == "x")
            }
        }

        @Test func streamingEmitsConfirmationRequiredInTheDocumentsShape() async throws {
            try await TestServer.with { server in
                let cookie = try await login(server)
                for path in ["/chat/stream", "/chat"] {
                    let response = try await anonymousClient(server).request(
                        .POST, path, json: ["message": "write notes.txt hello"],
                        headers: [("Cookie", cookie), ("Accept", "text/event-stream")])
                    #expect(response.headers.first(name: "Content-Type") == "text/event-stream")
                    let events = sseEvents(response)
                    #expect(events.map(\.event) == ["confirmation_required", "done"])
                    let required = events[0].json
                    #expect(required["event_type"] == "confirmation_required")
                    let thread = try #require(required["data"]?["thread_id"]?.stringValue)
                    #expect(required["data"]?["message"] == "Should I write 5 bytes to notes.txt?")
                    #expect(events[1].json["data"]?["requires_confirmation"] == true)
                    #expect(events[1].json["data"]?["thread_id"]?.stringValue == thread)
                    let confirmed = try await chat(server, cookie, "/chat/confirm", ["thread_id": .string(thread)])
                    #expect(confirmed.json?["status"] == "completed")
                }
                // A turn without a gated call streams tokens and done.
                let plain = try await anonymousClient(server).request(
                    .POST, "/chat/stream", json: ["message": "list"], headers: [("Cookie", cookie)])
                let events = sseEvents(plain)
                #expect(events.map(\.event) == ["tool_result", "token", "done"])
                #expect(events[1].json["data"]?["content"]?.stringValue?.isEmpty == false)
                #expect(events[2].json["data"]?["requires_confirmation"] == false)
            }
        }

        @Test func cancelDeclinesThePendingActions() async throws {
            try await TestServer.with { server in
                let cookie = try await login(server)
                let first = try await chat(server, cookie, "/chat", ["message": "delete precious.txt"])
                let thread = first.json!["thread_id"]!.string
                try Data("keep".utf8).write(to: server.workspace(of: thread).appendingPathComponent("precious.txt"))
                let cancelled = try await chat(server, cookie, "/chat/cancel", ["thread_id": .string(thread)])
                #expect(cancelled.status == 200)
                #expect(cancelled.json?["status"] == "cancelled")
                #expect(cancelled.json?["response"]?.stringValue?.contains("User cancelled the action.") == true)
                let action = try #require(cancelled.json?["results"]?.objectValue?.first?.value)
                #expect(action["success"] == false)
                #expect(server.file("precious.txt", in: thread) == "keep")
                // Nothing is left to confirm.
                let late = try await chat(server, cookie, "/chat/confirm", ["thread_id": .string(thread)])
                expectChatError(late, status: 409, error: "no_pending_actions")
            }
        }

        @Test func aMissingOrInvalidCookieIs401() async throws {
            let clock = ManualClock()
            try await TestServer.with(clock: clock, configure: { $0.chatCookieTTL = 600 }) { server in
                let body: JSONValue = ["thread_id": "ses_x"]
                expectChatError(
                    try await anonymousClient(server).request(.POST, "/chat/confirm", json: body), status: 401,
                    error: "unauthenticated")
                expectChatError(
                    try await chat(server, "session_id=forged", "/chat/confirm", body), status: 401,
                    error: "unauthenticated")
                let cookie = try await login(server)
                let tampered = cookie.dropLast(2) + (cookie.hasSuffix("AA") ? "BB" : "AA")
                expectChatError(
                    try await chat(server, String(tampered), "/chat", ["message": "list"]), status: 401,
                    error: "unauthenticated")
                expectChatError(
                    try await anonymousClient(server).request(.POST, "/auth/session"), status: 401,
                    error: "unauthenticated")
                #expect(try await chat(server, cookie, "/chat", ["message": "list"]).status == 200)
                clock.advance(by: 601)
                expectChatError(
                    try await chat(server, cookie, "/chat", ["message": "list"]), status: 401, error: "unauthenticated")
                // Revoking the API key ends its cookie sessions.
                let key = try await server.makeKey(actor: "dana", role: .member)
                let danaCookie = try await login(server, key: key)
                #expect(try await chat(server, danaCookie, "/chat", ["message": "list"]).status == 200)
                _ = try await server.client().call(.DELETE, "/v1/keys/\(key.prefix(11))")
                expectChatError(
                    try await chat(server, danaCookie, "/chat", ["message": "list"]), status: 401,
                    error: "unauthenticated")
            }
        }

        @Test func sixtyRequestsPerMinutePerSessionThen429() async throws {
            let clock = ManualClock()
            try await TestServer.with(clock: clock) { server in
                #expect(server.runtime.configuration.chatRateLimitPerMinute == 60)
                let cookie = try await login(server)
                let other = try await login(server)
                for _ in 0..<60 {
                    let response = try await chat(server, cookie, "/chat/cancel", ["thread_id": "ses_unknown"])
                    #expect(response.status == 404)
                }
                let limited = try await chat(server, cookie, "/chat/confirm", ["thread_id": "ses_unknown"])
                expectChatError(limited, status: 429, error: "rate_limited")
                #expect(limited.headers.first(name: "Retry-After") == "1")
                // Per session: another cookie session is not limited.
                #expect(try await chat(server, other, "/chat/confirm", ["thread_id": "ses_unknown"]).status == 404)
                clock.advance(by: 1)
                #expect(try await chat(server, cookie, "/chat/confirm", ["thread_id": "ses_unknown"]).status == 404)
            }
        }

        @Test func theRateLimitIsConfigurable() async throws {
            try await TestServer.with(clock: ManualClock(), configure: { $0.chatRateLimitPerMinute = 2 }) { server in
                let cookie = try await login(server)
                #expect(try await chat(server, cookie, "/chat", ["message": "list"]).status == 200)
                #expect(try await chat(server, cookie, "/chat", ["message": "list"]).status == 200)
                expectChatError(
                    try await chat(server, cookie, "/chat", ["message": "list"]), status: 429, error: "rate_limited")
            }
        }

        @Test func aFailedActionIs500ExecutionError() async throws {
            try await TestServer.with { server in
                let cookie = try await login(server)
                let first = try await chat(server, cookie, "/chat", ["message": "write ../outside.txt x"])
                let thread = first.json!["thread_id"]!.string
                #expect(first.json?["requires_confirmation"] == true)
                let confirmed = try await chat(server, cookie, "/chat/confirm", ["thread_id": .string(thread)])
                expectChatError(confirmed, status: 500, error: "execution_error")
                #expect(confirmed.json?["message"]?.stringValue?.hasPrefix("Failed to execute actions: ") == true)
                #expect(confirmed.json?["message"]?.stringValue?.contains("outside the session workspace") == true)
            }
        }

        @Test func threadsAndBodiesAreChecked() async throws {
            try await TestServer.with { server in
                let cookie = try await login(server)
                expectChatError(
                    try await chat(server, cookie, "/chat/confirm", [:]), status: 400, error: "invalid_request")
                expectChatError(
                    try await chat(server, cookie, "/chat", ["message": ""]), status: 400, error: "invalid_request")
                expectChatError(
                    try await chat(server, cookie, "/chat/confirm", ["thread_id": "ses_unknown"]), status: 404,
                    error: "not_found")
                // Another actor's thread: 403; another namespace's: 404.
                let first = try await chat(server, cookie, "/chat", ["message": "write a.txt x"])
                let thread = first.json!["thread_id"]!
                let bob = try await login(server, key: try await server.makeKey(actor: "bob", role: .member))
                expectChatError(
                    try await chat(server, bob, "/chat/confirm", ["thread_id": thread]), status: 403, error: "forbidden"
                )
                let foreign = try await login(server, key: try await otherNamespaceKey(server))
                expectChatError(
                    try await chat(server, foreign, "/chat/confirm", ["thread_id": thread]), status: 404,
                    error: "not_found")
                let idle = try await chat(server, cookie, "/chat", ["message": "list"])
                expectChatError(
                    try await chat(server, cookie, "/chat/confirm", ["thread_id": idle.json!["thread_id"]!]),
                    status: 409,
                    error: "no_pending_actions")
            }
        }

        @Test func aConfirmationOfThisDoorIsInTheNativeInboxAndDecidableNatively() async throws {
            try await TestServer.with { server in
                let cookie = try await login(server)
                let first = try await chat(server, cookie, "/chat", ["message": "write a.txt via-chat"])
                let thread = first.json!["thread_id"]!.string
                let client = server.client()
                let inbox = try await client.confirmations(sessionID: thread)
                #expect(inbox.count == 1)
                #expect(inbox.first?["tool_name"] == "write_file")
                let decided = try await client.decide(inbox[0]["id"]!.string, approve: true)
                #expect(decided["run"]?["status"] == "completed")
                #expect(server.file("a.txt", in: thread) == "via-chat")
                expectChatError(
                    try await chat(server, cookie, "/chat/confirm", ["thread_id": .string(thread)]), status: 409,
                    error: "no_pending_actions")
            }
        }
    }
}
