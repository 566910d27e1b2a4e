import AgentRuntime
import CountersignClient
import CountersignServer
import CountersignTesting
import Foundation
import GateCore
import Testing

/// Real races over HTTP: many concurrent requests against one server, and the outcome
/// checked against the side effects in the workspace.
@Suite struct RaceHarnessTests {
    static func unlimited(_ configuration: inout ServerConfiguration) {
        configuration.keyRequestsPerMinute = 0
        configuration.sessionRequestsPerMinute = 0
    }

    @Test func sixtyFourMixedDecisionsHaveExactlyOneWinner() async throws {
        try await TestServer.with(configure: Self.unlimited) { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "append log.txt once")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for index in 0..<64 {
                    group.addTask {
                        let decision = index % 2 == 0 ? "approve" : "deny"
                        let response = try await client.request(
                            .POST, "/v1/confirmations/\(id)/decision", json: ["decision": .string(decision)])
                        return (response.status, decision)
                    }
                }
                var all: [(Int, String)] = []
                for try await result in group { all.append(result) }
                return all
            }
            let winners = results.filter { $0.0 == 200 }
            #expect(winners.count == 1)
            #expect(results.filter { $0.0 == 409 }.count == 63)
            let final = try await client.confirmation(id)
            let runID = final["run_id"]!.string
            _ = try await waitForEvent(client, session: session, type: "run.completed", runID: runID)
            let ran = server.file("log.txt", in: session)
            if winners.first?.1 == "approve" {
                #expect(ran == "once\n")
                #expect(try await client.confirmation(id)["status"]?.string == "succeeded")
            } else {
                #expect(ran == nil)
                #expect(final["status"]?.string == "denied")
            }
        }
    }

    /// Every decision races the expiry of its confirmation: either the decision wins and
    /// the tool runs once, or expiry wins and it never runs — never both, never twice.
    @Test func decisionsRacingExpiry() async throws {
        let clock = ManualClock()
        try await TestServer.with(clock: clock, confirmationTTL: 60, configure: Self.unlimited) { server in
            let client = server.client()
            var pending: [(session: String, id: String)] = []
            for index in 0..<24 {
                let (session, reply) = try await startDemo(client, "append log.txt race\(index)")
                pending.append((session, try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string))
            }
            // The clock jumps past every expiry once a few decisions are through, while the
            // rest are in flight.
            let (finished, signal) = AsyncStream<Void>.makeStream()
            let statuses = try await withThrowingTaskGroup(of: (String, Int).self) { group in
                group.addTask {
                    var iterator = finished.makeAsyncIterator()
                    for _ in 0..<4 { await iterator.next() }
                    clock.advance(by: 60)
                    _ = try await server.engine.expireDue()
                    return ("clock", 0)
                }
                for item in pending {
                    group.addTask {
                        let response = try await client.request(
                            .POST, "/v1/confirmations/\(item.id)/decision", json: ["decision": "approve"])
                        signal.yield()
                        return (item.id, response.status)
                    }
                }
                var all: [String: Int] = [:]
                for try await (id, status) in group { all[id] = status }
                return all
            }
            print(
                "expiry race: \(statuses.values.filter { $0 == 200 }.count) decisions won, "
                    + "\(statuses.values.filter { $0 == 410 }.count) expired first")
            for item in pending {
                let confirmation = try await client.confirmation(item.id)
                _ = try await waitForEvent(
                    client, session: item.session, type: "run.completed", runID: confirmation["run_id"]!.string)
                let status = try await client.confirmation(item.id)["status"]!.string
                let file = server.file("log.txt", in: item.session)
                switch statuses[item.id] {
                case 200:
                    #expect(status == "succeeded")
                    #expect(file?.components(separatedBy: "\n").filter { $0.hasPrefix("race") }.count == 1)
                case 410:
                    #expect(status == "expired")
                    #expect(file == nil)
                default:
                    Issue.record("unexpected decision status \(String(describing: statuses[item.id]))")
                }
            }
        }
    }

    /// Every decision races a cancel of its session: the call runs at most once, and
    /// exactly once when it ended `succeeded`; a cancelled call never ran.
    @Test func decisionsRacingCancel() async throws {
        try await TestServer.with(configure: Self.unlimited) { server in
            let client = server.client()
            var pending: [(session: String, id: String)] = []
            for index in 0..<24 {
                let (session, reply) = try await startDemo(client, "append log.txt cancel\(index)")
                pending.append((session, try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string))
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for item in pending {
                    group.addTask {
                        _ = try await client.request(
                            .POST, "/v1/confirmations/\(item.id)/decision", json: ["decision": "approve"])
                    }
                    group.addTask { _ = try await client.request(.POST, "/v1/sessions/\(item.session)/cancel") }
                }
                try await group.waitForAll()
            }
            for item in pending {
                // Wait until the session's run has ended, whichever way.
                let session = try await client.session(item.session)
                if session["status"]?.string == "running" {
                    _ = try await waitForEvent(client, session: item.session, type: "run.completed")
                }
                let status = try await client.confirmation(item.id)["status"]!.string
                let file = server.file("log.txt", in: item.session)
                print("cancel race: \(item.id) \(status)")
                switch status {
                case "succeeded": #expect(file?.hasPrefix("cancel") == true && file?.filter { $0 == "\n" }.count == 1)
                case "cancelled": #expect(file == nil)
                default: Issue.record("\(item.id) ended \(status)")
                }
            }
        }
    }

    @Test func manySessionsDecidingAtOnceLoseNothing() async throws {
        try await TestServer.with(configure: Self.unlimited) { server in
            let client = server.client()
            var pending: [(session: String, id: String)] = []
            for index in 0..<40 {
                let (session, reply) = try await startDemo(client, "write out.txt value\(index)")
                pending.append((session, try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string))
            }
            let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                for item in pending {
                    group.addTask { try await client.decide(item.id, approve: true)["run"]?["status"]?.string ?? "" }
                }
                var all: [String] = []
                for try await outcome in group { all.append(outcome) }
                return all
            }
            #expect(outcomes.allSatisfy { $0 == "completed" })
            for (index, item) in pending.enumerated() {
                #expect(server.file("out.txt", in: item.session) == "value\(index)")
                #expect(try await client.session(item.session)["status"]?.string == "idle")
            }
        }
    }
}
