import AgentRuntime
import CountersignClient
import CountersignTesting
import Foundation
import GateCore
import Testing

@Suite struct LimitsTests {
    @Test func perKeyLimitAnswers429WithRetryAfterAndRefills() async throws {
        let clock = ManualClock()
        try await TestServer.with(clock: clock, configure: { $0.keyRequestsPerMinute = 5 }) { server in
            let client = server.client()
            for _ in 0..<5 { #expect(try await client.request(.GET, "/v1/sessions").status == 200) }
            let limited = try await client.request(.GET, "/v1/sessions")
            expectError(limited, status: 429, code: "rate_limited")
            #expect(limited.headers.first(name: "Retry-After") == "12")
            // Another key has its own bucket; health and readiness are never limited.
            let other = server.client(key: try await server.makeKey(actor: "o", role: .member))
            #expect(try await other.request(.GET, "/v1/sessions").status == 200)
            for _ in 0..<20 { #expect(try await client.request(.GET, "/health").status == 200) }
            #expect(try await client.request(.GET, "/ready").status == 200)
            clock.advance(by: 12)
            #expect(try await client.request(.GET, "/v1/sessions").status == 200)
            expectError(try await client.request(.GET, "/v1/sessions"), status: 429, code: "rate_limited")
        }
    }

    @Test func perSessionLimitCountsRequestsOnTheSession() async throws {
        let clock = ManualClock()
        try await TestServer.with(clock: clock, configure: { $0.sessionRequestsPerMinute = 3 }) { server in
            let client = server.client()
            let session = try await client.createSession(agent: "demo")["id"]!.string
            let other = try await client.createSession(agent: "demo")["id"]!.string
            for _ in 0..<3 { #expect(try await client.request(.GET, "/v1/sessions/\(session)").status == 200) }
            let limited = try await client.request(.POST, "/v1/sessions/\(session)/messages", json: ["content": "list"])
            expectError(limited, status: 429, code: "rate_limited")
            #expect(limited.headers.first(name: "Retry-After") == "20")
            #expect(try await client.request(.GET, "/v1/sessions/\(other)").status == 200)
            // The refused message started nothing.
            #expect(try await client.events(sessionID: other).isEmpty)
        }
    }

    @Test func openStreamsPerKeyAreBounded() async throws {
        try await TestServer.with(configure: { $0.maxStreamsPerKey = 2 }) { server in
            let client = server.client()
            let session = try await client.createSession(agent: "demo")["id"]!.string
            var tasks: [Task<Void, any Error>] = []
            for _ in 0..<2 {
                let (opened, signal) = AsyncStream<Void>.makeStream()
                tasks.append(
                    Task {
                        for try await event in client.eventStream(
                            .GET, "/v1/sessions/\(session)/events", includeComments: true)
                        where event.event == ":" {
                            signal.yield()
                        }
                    })
                var iterator = opened.makeAsyncIterator()
                await iterator.next()
            }
            let third = try await client.request(
                .GET, "/v1/sessions/\(session)/events", headers: [("Accept", "text/event-stream")])
            expectError(third, status: 429, code: "rate_limited")
            // JSON pages are not streams and are not counted.
            #expect(try await client.request(.GET, "/v1/sessions/\(session)/events").status == 200)
            for task in tasks { task.cancel() }
        }
    }

    /// Heartbeats are an hour apart here: only the revocation itself can end the stream.
    @Test(.timeLimit(.minutes(1))) func revokingAKeyClosesItsOpenStreams() async throws {
        try await TestServer.with(heartbeat: .seconds(3600)) { server in
            let admin = server.client()
            let created = try await admin.call(.POST, "/v1/keys", json: ["actor": "m", "role": "member"])
            let member = server.client(key: created["key"]!.string)
            let session = try await member.createSession(agent: "demo")["id"]!.string
            let (opened, signal) = AsyncStream<Void>.makeStream()
            let reader = Task {
                var count = 0
                for try await event in member.eventStream(
                    .GET, "/v1/sessions/\(session)/events", includeComments: true)
                {
                    if event.event == ":" && event.data == "connected" { signal.yield() }
                    count += 1
                }
                return count
            }
            var iterator = opened.makeAsyncIterator()
            await iterator.next()
            _ = try await admin.call(.DELETE, "/v1/keys/\(created["prefix"]!.string)")
            // The stream ends by itself: the reader's loop finishes.
            let seen = try await reader.value
            #expect(seen >= 1)
            expectError(try await member.request(.GET, "/v1/sessions"), status: 401, code: "unauthenticated")
        }
    }

    @Test func aStepAskingForTooManyConfirmationsIsBounded() async throws {
        try await TestServer.with(configure: { $0.maxPendingConfirmationsPerSession = 2 }) { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "write a.txt 1 and write b.txt 2 and write c.txt 3")
            #expect(reply["pending_confirmations"]?.arrayValue?.count == 2)
            let blocked = try await client.events(sessionID: session).filter {
                $0["type"]?.string == "tool.result" && $0["data"]?["status"]?.string == "blocked"
            }
            #expect(blocked.count == 1)
        }
    }
}
