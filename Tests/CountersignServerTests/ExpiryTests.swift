import AgentRuntime
import CountersignClient
import CountersignTesting
import Foundation
import GateCore
import Testing

@Suite struct ExpiryTests {
    @Test func decidingAfterExpiryIsGoneAndTheToolNeverRuns() async throws {
        let clock = ManualClock()
        try await TestServer.with(clock: clock, confirmationTTL: 300) { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "write late.txt too late")
            let pending = try #require(reply["pending_confirmations"]?.arrayValue?.first)
            let id = pending["id"]!.string
            #expect(
                Timestamp.parse(pending["expires_at"]!.string)
                    == Date(millis: clock.now().addingTimeInterval(300).millis))

            clock.advance(by: 299)
            #expect(try await client.confirmation(id)["status"]?.string == "pending")
            clock.advance(by: 1)
            let response = try await client.request(
                .POST, "/v1/confirmations/\(id)/decision", json: ["decision": "approve"])
            expectError(response, status: 410, code: "expired")
            // A second attempt is still 410, whether the request or the sweeper expired it.
            let again = try await client.request(
                .POST, "/v1/confirmations/\(id)/decision", json: ["decision": "approve"])
            expectError(again, status: 410, code: "expired")

            let completed = try await waitForEvent(
                client, session: session, type: "run.completed", runID: pending["run_id"]!.string)
            #expect(completed.data.contains("expired"))
            let events = try await client.events(sessionID: session)
            #expect(events.filter { $0["type"]?.string == "confirmation.expired" }.count == 1)
            #expect(!events.contains { $0["type"]?.string == "tool.started" })
            #expect(try await client.confirmation(id)["status"]?.string == "expired")
            #expect(try await client.session(session)["status"]?.string == "idle")
            #expect(server.file("late.txt", in: session) == nil)
        }
    }

    @Test func theSweeperExpiresWithoutAnyDecision() async throws {
        let clock = ManualClock()
        try await TestServer.with(clock: clock, confirmationTTL: 60) { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "delete important.txt")
            let runID = try #require(reply["pending_confirmations"]?.arrayValue?.first?["run_id"]).string
            clock.advance(by: 61)
            #expect(try await server.engine.expireDue() == 1)
            let completed = try await waitForEvent(client, session: session, type: "run.completed", runID: runID)
            #expect(completed.data.contains("expired before anyone approved it"))
            #expect(try await client.session(session)["status"]?.string == "idle")
        }
    }
}
