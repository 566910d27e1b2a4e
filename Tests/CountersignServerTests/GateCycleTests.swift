import AgentRuntime
import CountersignClient
import CountersignTesting
import Foundation
import GateCore
import Testing

/// The confirmation cycle over real HTTP on loopback (issue 3 acceptance).
@Suite struct GateCycleTests {
    @Test func walkthroughWritesOnlyAfterApproval() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "write notes/todo.txt buy milk")
            #expect(reply["status"]?.string == "awaiting_confirmation")
            let pending = try #require(reply["pending_confirmations"]?.arrayValue?.first)
            #expect(pending["tool_name"]?.string == "write_file")
            #expect(pending["params"] == ["path": "notes/todo.txt", "content": "buy milk"])
            #expect(
                pending["params_hash"]?.string
                    == (["path": "notes/todo.txt", "content": "buy milk"] as JSONValue).canonicalHash)
            #expect(server.file("notes/todo.txt", in: session) == nil)
            #expect(try await client.session(session)["status"]?.string == "awaiting_confirmation")

            let inbox = try await client.confirmations()
            #expect(inbox.map { $0["id"]?.string } == [pending["id"]?.string])

            let decided = try await client.decide(
                pending["id"]!.string, approve: true, paramsHash: pending["params_hash"]!.string)
            #expect(decided["confirmation"]?["status"]?.string == "approved")
            #expect(decided["run"]?["status"]?.string == "completed")
            #expect(decided["run"]?["reply"]?.string == "I wrote notes/todo.txt.")
            #expect(server.file("notes/todo.txt", in: session) == "buy milk")
            let after = try await client.confirmation(pending["id"]!.string)
            #expect(after["status"]?.string == "succeeded")

            let read = try await client.send(sessionID: session, content: "read notes/todo.txt")
            #expect(read["status"]?.string == "completed")
            #expect(read["reply"]?.string == "buy milk")
            #expect(try await client.session(session)["status"]?.string == "idle")
        }
    }

    @Test func denyDoesNotRunAndTheModelGetsTheReason() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "write secret.txt launch codes")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            let decided = try await client.decide(id, approve: false, reason: "not today")
            #expect(decided["confirmation"]?["status"]?.string == "denied")
            #expect(decided["run"]?["status"]?.string == "completed")
            #expect(decided["run"]?["reply"]?.string.contains("not today") == true)
            #expect(server.file("secret.txt", in: session) == nil)
            let events = try await client.events(sessionID: session)
            #expect(!events.contains { $0["type"]?.string == "tool.started" })
            let result = try #require(events.first { $0["type"]?.string == "tool.result" })
            #expect(result["data"]?["status"]?.string == "denied")
        }
    }

    @Test func denyWithoutReasonUsesTheDefault() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (_, reply) = try await startDemo(client, "delete old.txt")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            let decided = try await client.decide(id, approve: false)
            #expect(decided["confirmation"]?["decision"]?["reason"]?.string == "User rejected the action.")
            #expect(decided["run"]?["reply"]?.string.contains("User rejected the action.") == true)
        }
    }

    @Test func editedParamsAreValidatedRunInsteadAndAudited() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "write notes.txt draft")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string

            let bad = try await client.request(
                .POST, "/v1/confirmations/\(id)/decision",
                json: ["decision": "approve", "edited_params": ["path": "notes.txt", "content": 42]])
            expectError(bad, status: 400, code: "validation_error")
            let missing = try await client.request(
                .POST, "/v1/confirmations/\(id)/decision",
                json: ["decision": "approve", "edited_params": ["path": "notes.txt"]])
            expectError(missing, status: 400, code: "validation_error")
            #expect(try await client.confirmation(id)["status"]?.string == "pending")
            #expect(server.file("notes.txt", in: session) == nil)

            let edited: JSONValue = ["path": "notes.txt", "content": "final text"]
            let decided = try await client.decide(id, approve: true, editedParams: edited)
            #expect(decided["run"]?["status"]?.string == "completed")
            #expect(decided["run"]?["reply"]?.string == "I wrote notes.txt (as you edited it).")
            #expect(server.file("notes.txt", in: session) == "final text")

            let audit = try await client.call(.GET, "/v1/audit?limit=1000")["data"]?.arrayValue ?? []
            let approval = try #require(audit.first { $0["action"]?.string == "confirmation.approved" })
            #expect(approval["data"]?["params"] == ["path": "notes.txt", "content": "draft"])
            #expect(approval["data"]?["edited_params"] == edited)
            let stored = try await client.confirmation(id)
            #expect(stored["decision"]?["original_params"] == ["path": "notes.txt", "content": "draft"])
            #expect(stored["decision"]?["edited_params"] == edited)
        }
    }

    @Test func staleParamsHashIsRefused() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "write a.txt one")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            let stale = (["path": "a.txt", "content": "two"] as JSONValue).canonicalHash
            let response = try await client.request(
                .POST, "/v1/confirmations/\(id)/decision", json: ["decision": "approve", "params_hash": .string(stale)])
            expectError(response, status: 409, code: "params_mismatch")
            #expect(try await client.confirmation(id)["status"]?.string == "pending")
            #expect(server.file("a.txt", in: session) == nil)
        }
    }

    @Test func wordsNeverApprove() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "write a.txt x")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            let eventsBefore = try await client.events(sessionID: session).count
            for word in ["yes", "confirm", "approve it"] {
                let response = try await client.request(
                    .POST, "/v1/sessions/\(session)/messages", json: ["content": .string(word)])
                expectError(response, status: 409, code: "confirmation_pending")
                #expect(response.json?["error"]?["details"]?["pending_confirmations"] == [.string(id)])
                #expect(response.json?["error"]?["details"]?["plainAffirmativeAccepted"] == false)
            }
            #expect(try await client.confirmation(id)["status"]?.string == "pending")
            #expect(try await client.events(sessionID: session).count == eventsBefore)
            #expect(server.file("a.txt", in: session) == nil)
        }
    }

    @Test func parallelCallsEachGetAConfirmationAndTheRunWaitsForBoth() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "write a.txt x and write b.txt y")
            let pending = reply["pending_confirmations"]?.arrayValue ?? []
            #expect(pending.count == 2)
            let byPath = Dictionary(
                uniqueKeysWithValues: pending.map { ($0["params"]!["path"]!.string, $0["id"]!.string) })
            let first = try await client.decide(try #require(byPath["a.txt"]), approve: true)
            #expect(first["run"] == .null)
            #expect(server.file("a.txt", in: session) == nil)
            #expect(try await client.session(session)["status"]?.string == "awaiting_confirmation")
            let second = try await client.decide(try #require(byPath["b.txt"]), approve: false, reason: "only a")
            #expect(second["run"]?["status"]?.string == "completed")
            #expect(server.file("a.txt", in: session) == "x")
            #expect(server.file("b.txt", in: session) == nil)
            let replyText = second["run"]?["reply"]?.string ?? ""
            #expect(replyText.contains("I wrote a.txt"))
            #expect(replyText.contains("only a"))
            #expect(try await client.session(session)["status"]?.string == "idle")
        }
    }

    @Test func mixedTurnRunsAutoCallsAtOnce() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, _) = try await startDemo(client, "write seed.txt hello")
            let id = try #require(try await client.confirmations(sessionID: session).first?["id"]).string
            _ = try await client.decide(id, approve: true)
            let reply = try await client.send(sessionID: session, content: "read seed.txt and write copy.txt hello")
            #expect(reply["status"]?.string == "awaiting_confirmation")
            let events = try await client.events(sessionID: session)
            let readResult = events.first {
                $0["type"]?.string == "tool.result" && $0["data"]?["tool_name"]?.string == "read_file"
            }
            #expect(readResult?["data"]?["content"]?.string == "hello")
            #expect(
                (reply["pending_confirmations"]?.arrayValue ?? []).map { $0["tool_name"]?.string } == ["write_file"])
        }
    }

    @Test func thirtyTwoConcurrentDecisionsHaveOneWinner() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "append log.txt entry")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            let statuses = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for index in 0..<32 {
                    group.addTask {
                        let body: JSONValue = ["decision": index % 2 == 0 ? "approve" : "deny"]
                        let response = try await client.request(.POST, "/v1/confirmations/\(id)/decision", json: body)
                        return (response.status, response.errorCode)
                    }
                }
                var all: [(Int, String?)] = []
                for try await status in group { all.append(status) }
                return all
            }
            #expect(statuses.filter { $0.0 == 200 }.count == 1)
            #expect(statuses.filter { $0.0 == 409 && $0.1 == "already_decided" }.count == 31)
            let final = try await client.confirmation(id)
            let events = try await client.events(sessionID: session)
            #expect(events.filter { $0["type"]?.string == "confirmation.decided" }.count == 1)
            if final["decision"]?["decision"]?.string == "approve" {
                _ = try await waitForEvent(
                    client, session: session, type: "run.completed", runID: final["run_id"]!.string)
                #expect(server.file("log.txt", in: session) == "entry\n")
                let started = try await client.events(sessionID: session).filter {
                    $0["type"]?.string == "tool.started"
                }
                #expect(started.count == 1)
            } else {
                #expect(server.file("log.txt", in: session) == nil)
            }
        }
    }

    @Test func alreadyDecidedCarriesTheWinningDecision() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (_, reply) = try await startDemo(client, "write a.txt x")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            _ = try await client.decide(id, approve: false, reason: "first")
            let second = try await client.request(
                .POST, "/v1/confirmations/\(id)/decision", json: ["decision": "approve"])
            expectError(second, status: 409, code: "already_decided")
            #expect(second.json?["error"]?["details"]?["decision"]?["decision"]?.string == "deny")
            #expect(second.json?["error"]?["details"]?["decision"]?["reason"]?.string == "first")
        }
    }

    @Test func batchDecisionsDecideEachAtomically() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "write a.txt x and write b.txt y")
            let ids = (reply["pending_confirmations"]?.arrayValue ?? []).map { $0["id"]!.string }
            let body: JSONValue = .array([
                ["id": .string(ids[0]), "decision": "approve"],
                ["id": .string(ids[1]), "decision": "approve"],
                ["id": "conf_unknown", "decision": "approve"],
            ])
            let response = try await client.call(.POST, "/v1/confirmations/decisions", json: body)
            let results = response["results"]?.arrayValue ?? []
            #expect(results.map { $0["status"]?.intValue } == [200, 200, 404])
            #expect(response["runs"]?.arrayValue?.first?["status"]?.string == "completed")
            #expect(server.file("a.txt", in: session) == "x")
            #expect(server.file("b.txt", in: session) == "y")
        }
    }

    @Test func cancelSettlesPendingConfirmations() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "write a.txt x")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            let cancelled = try await client.cancel(sessionID: session)
            #expect(cancelled["cancelled_confirmations"] == [.string(id)])
            #expect(cancelled["session"]?["status"]?.string == "cancelled")
            #expect(try await client.confirmation(id)["status"]?.string == "cancelled")
            let late = try await client.request(
                .POST, "/v1/confirmations/\(id)/decision", json: ["decision": "approve"])
            expectError(late, status: 409, code: "already_decided")
            #expect(server.file("a.txt", in: session) == nil)
            let again = try await client.send(sessionID: session, content: "list")
            #expect(again["status"]?.string == "completed")
        }
    }
}

@Suite struct DenyReasonTests {
    @Test func aBlankReasonFallsBackToTheDefault() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (_, reply) = try await startDemo(client, "write a.txt x")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            let decided = try await client.decide(id, approve: false, reason: "  ")
            #expect(decided["confirmation"]?["decision"]?["reason"]?.string == "User rejected the action.")
        }
    }
}
