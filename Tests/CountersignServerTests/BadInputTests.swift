import AgentRuntime
import CountersignClient
import CountersignTesting
import Foundation
import GateCore
import Testing

/// Bad input gets the documented error shape and status, and writes nothing.
@Suite struct BadInputTests {
    @Test func authenticationIsRequiredEverywhere() async throws {
        try await TestServer.with { server in
            var noKey = server.client()
            noKey.apiKey = nil
            for (method, path) in [
                ("GET", "/v1/sessions"), ("POST", "/v1/sessions"), ("GET", "/v1/confirmations"),
                ("GET", "/v1/sessions/ses_x/events"), ("POST", "/v1/confirmations/conf_x/decision"),
                ("GET", "/v1/audit"), ("GET", "/v1/keys"),
            ] {
                let response = try await noKey.request(.init(rawValue: method), path, json: [:])
                expectError(response, status: 401, code: "unauthenticated")
            }
            let wrong = server.client(key: "sk_notarealkeyatall000000000000000000000000000")
            expectError(try await wrong.request(.GET, "/v1/sessions"), status: 401, code: "unauthenticated")
            let garbage = try await noKey.request(
                .GET, "/v1/sessions", headers: [("Authorization", "Basic Zm9vOmJhcg==")])
            expectError(garbage, status: 401, code: "unauthenticated")
            // Health and readiness need no key.
            #expect(try await noKey.request(.GET, "/health").status == 200)
            #expect(try await noKey.request(.GET, "/ready").status == 200)
        }
    }

    @Test func malformedBodiesAreRefusedAndNothingIsWritten() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let namespace = try #require(try await server.store.namespace(idOrName: "default"))
            let cases: [(String, Data)] = [
                ("not json", Data("{not json".utf8)),
                ("array", Data("[1,2]".utf8)),
                ("wrong type", Data(#"{"agent": 5}"#.utf8)),
                ("unknown field", Data(#"{"agent": "demo", "agnet": "x"}"#.utf8)),
                ("missing field", Data(#"{}"#.utf8)),
                ("unknown agent", Data(#"{"agent": "nope"}"#.utf8)),
                ("metadata not object", Data(#"{"agent": "demo", "metadata": 3}"#.utf8)),
                ("empty", Data()),
            ]
            for (name, body) in cases {
                let response = try await client.request(.POST, "/v1/sessions", body: body)
                #expect(response.status == 400, "\(name): \(response.text)")
                expectError(response, status: 400, code: "validation_error")
            }
            let sessions = try await server.store.sessions(
                namespaceID: namespace.id, actor: nil, beforeID: nil, limit: 10)
            #expect(sessions.isEmpty)
        }
    }

    @Test func oversizedBodiesAre413() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let big = Data(
                ("{\"agent\": \"demo\", \"metadata\": {\"x\": \"" + String(repeating: "a", count: 2 << 20) + "\"}}")
                    .utf8)
            let response = try await client.request(.POST, "/v1/sessions", body: big)
            expectError(response, status: 413, code: "too_large")
        }
    }

    @Test func decisionBodiesAreValidated() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (session, reply) = try await startDemo(client, "write a.txt x")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            let bodies: [JSONValue] = [
                ["decision": "maybe"], ["decision": true], [:], ["decision": "approve", "remember": "forever"],
                ["decision": "approve", "edited_params": "x"], ["decision": "approve", "edited_parms": ["a": 1]],
                ["decision": "deny", "edited_params": ["path": "a.txt", "content": "y"]],
            ]
            for body in bodies {
                let response = try await client.request(.POST, "/v1/confirmations/\(id)/decision", json: body)
                expectError(response, status: 400, code: "validation_error")
            }
            #expect(try await client.confirmation(id)["status"]?.string == "pending")
            #expect(
                try await client.events(sessionID: session).filter { $0["type"]?.string == "confirmation.decided" }
                    .isEmpty)
        }
    }

    @Test func unknownIdsAre404() async throws {
        try await TestServer.with { server in
            let client = server.client()
            expectError(try await client.request(.GET, "/v1/sessions/ses_missing"), status: 404, code: "not_found")
            expectError(
                try await client.request(.GET, "/v1/confirmations/conf_missing"), status: 404, code: "not_found")
            expectError(
                try await client.request(
                    .POST, "/v1/confirmations/conf_missing/decision", json: ["decision": "approve"]),
                status: 404, code: "not_found")
            expectError(
                try await client.request(.POST, "/v1/sessions/ses_missing/messages", json: ["content": "hi"]),
                status: 404, code: "not_found")
            expectError(try await client.request(.GET, "/v1/no-such-route"), status: 404, code: "not_found")
            expectError(
                try await client.request(.GET, "/v1/sessions/x/events?after=-1"), status: 404, code: "not_found")
        }
    }

    @Test func queryParametersAreValidated() async throws {
        try await TestServer.with { server in
            let client = server.client()
            expectError(try await client.request(.GET, "/v1/sessions?limit=0"), status: 400, code: "validation_error")
            expectError(try await client.request(.GET, "/v1/sessions?limit=abc"), status: 400, code: "validation_error")
            expectError(
                try await client.request(.GET, "/v1/confirmations?status=bogus"), status: 400, code: "validation_error")
            let session = try await client.createSession(agent: "demo")["id"]!.string
            expectError(
                try await client.request(.GET, "/v1/sessions/\(session)/events?after=-1"), status: 400,
                code: "validation_error")
        }
    }
}

/// Namespaces and actors: another namespace's objects do not exist; another actor's
/// confirmations cannot be decided.
@Suite struct AccessTests {
    @Test func otherActorsAreForbiddenAndApproversMayDecide() async throws {
        try await TestServer.with { server in
            let alice = server.client(key: try await server.makeKey(actor: "alice", role: .member))
            let bob = server.client(key: try await server.makeKey(actor: "bob", role: .member))
            let approver = server.client(key: try await server.makeKey(actor: "carol", role: .approver))
            let (session, reply) = try await startDemo(alice, "write a.txt x")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            expectError(
                try await bob.request(.POST, "/v1/confirmations/\(id)/decision", json: ["decision": "approve"]),
                status: 403, code: "forbidden")
            expectError(try await bob.request(.GET, "/v1/sessions/\(session)"), status: 403, code: "forbidden")
            #expect(try await bob.confirmations().isEmpty)
            #expect(try await approver.confirmations().count == 1)
            let decided = try await approver.decide(id, approve: true)
            #expect(decided["confirmation"]?["decision"]?["decided_by"]?.string == "carol")
        }
    }

    @Test func otherNamespacesAreInvisible() async throws {
        try await TestServer.with { server in
            let admin = server.client()
            let created = try await admin.call(.POST, "/v1/namespaces", json: ["name": "other"])
            let otherID = created["id"]!.string
            let otherKey = try await admin.call(
                .POST, "/v1/keys", json: ["actor": "eve", "role": "approver", "namespace": "other"])["key"]!.string
            let eve = server.client(key: otherKey)
            let (session, reply) = try await startDemo(admin, "write a.txt x")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            expectError(try await eve.request(.GET, "/v1/sessions/\(session)"), status: 404, code: "not_found")
            expectError(try await eve.request(.GET, "/v1/confirmations/\(id)"), status: 404, code: "not_found")
            expectError(
                try await eve.request(.POST, "/v1/confirmations/\(id)/decision", json: ["decision": "approve"]),
                status: 404, code: "not_found")
            #expect(try await eve.confirmations().isEmpty)
            // X-Namespace must name the key's own namespace.
            let wrongNamespace = server.client(key: otherKey, namespace: "default")
            expectError(try await wrongNamespace.request(.GET, "/v1/sessions"), status: 404, code: "not_found")
            let rightNamespace = server.client(key: otherKey, namespace: otherID)
            #expect(try await rightNamespace.request(.GET, "/v1/sessions").status == 200)
            #expect(try await admin.confirmation(id)["status"]?.string == "pending")
        }
    }

    @Test func revokedAndExpiredKeysAre401() async throws {
        let clock = ManualClock()
        try await TestServer.with(clock: clock) { server in
            let admin = server.client()
            let created = try await admin.call(
                .POST, "/v1/keys",
                json: [
                    "actor": "temp", "role": "member",
                    "expires_at": .string(Timestamp.format(clock.now().addingTimeInterval(60))),
                ])
            let temp = server.client(key: created["key"]!.string)
            #expect(try await temp.request(.GET, "/v1/sessions").status == 200)
            clock.advance(by: 61)
            expectError(try await temp.request(.GET, "/v1/sessions"), status: 401, code: "unauthenticated")

            let other = try await admin.call(.POST, "/v1/keys", json: ["actor": "x", "role": "member"])
            let otherClient = server.client(key: other["key"]!.string)
            #expect(try await otherClient.request(.GET, "/v1/sessions").status == 200)
            _ = try await admin.call(.DELETE, "/v1/keys/\(other["prefix"]!.string)")
            expectError(try await otherClient.request(.GET, "/v1/sessions"), status: 401, code: "unauthenticated")
            // Members cannot manage keys.
            let member = server.client(key: try await server.makeKey(actor: "m", role: .member))
            expectError(
                try await member.request(.POST, "/v1/keys", json: ["actor": "y", "role": "admin"]), status: 403,
                code: "forbidden")
        }
    }
}
