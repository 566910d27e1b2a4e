import AgentRuntime
import CountersignClient
import CountersignTesting
import Foundation
import GateCore
import NIOHTTP1
import Testing

/// Two namespaces, three actors: every endpoint called with every wrong combination
/// answers the documented status, and no body carries anything of the other tenant.
@Suite struct TenancyProbeTests {
    struct Call: Sendable {
        var method: HTTPMethod
        var path: String
        var body: JSONValue?
        /// Lists answer 200 with the caller's own (empty) view; object routes do not.
        var isList: Bool = false
    }

    @Test func everyWrongCombinationGetsTheDocumentedStatus() async throws {
        let clock = ManualClock()
        try await TestServer.with(clock: clock) { server in
            let admin = server.client()
            let alice = server.client(key: try await server.makeKey(actor: "alice", role: .member))
            let bob = server.client(key: try await server.makeKey(actor: "bob", role: .member))
            let carol = server.client(key: try await server.makeKey(actor: "carol", role: .approver))
            let other = try await admin.call(.POST, "/v1/namespaces", json: ["name": "tenant-b"])
            let eveKey = try await admin.call(
                .POST, "/v1/keys", json: ["actor": "eve", "role": "admin", "namespace": "tenant-b"])["key"]!.string
            let eve = server.client(key: eveKey)
            let revokedKey = try await admin.call(.POST, "/v1/keys", json: ["actor": "alice", "role": "member"])
            _ = try await admin.call(.DELETE, "/v1/keys/\(revokedKey["prefix"]!.string)")
            let expiring = try await admin.call(
                .POST, "/v1/keys",
                json: [
                    "actor": "alice", "role": "member",
                    "expires_at": .string(Timestamp.format(clock.now().addingTimeInterval(30))),
                ])

            // Alice's secret work in namespace `default`.
            let secret = "the-secret-\(Identifier.make("s", length: 8))"
            let (session, reply) = try await startDemo(alice, "write \(secret).txt \(secret)")
            let confirmation = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            let namespaceA = try #require(try await server.store.namespace(idOrName: "default")).id
            clock.advance(by: 31)

            let calls: [Call] = [
                Call(method: .GET, path: "/v1/sessions", isList: true),
                Call(method: .GET, path: "/v1/sessions/\(session)"),
                Call(method: .POST, path: "/v1/sessions/\(session)/messages", body: ["content": "yes"]),
                Call(method: .GET, path: "/v1/sessions/\(session)/events"),
                Call(method: .POST, path: "/v1/sessions/\(session)/cancel"),
                Call(method: .GET, path: "/v1/confirmations", isList: true),
                Call(method: .GET, path: "/v1/confirmations?status=all&session_id=\(session)", isList: true),
                Call(method: .GET, path: "/v1/confirmations/\(confirmation)"),
                Call(method: .POST, path: "/v1/confirmations/\(confirmation)/decision", body: ["decision": "approve"]),
                Call(
                    method: .POST, path: "/v1/confirmations/decisions",
                    body: [["id": .string(confirmation), "decision": "approve"]], isList: true),
            ]
            let unauthenticated: [(String, CountersignClient)] = [
                (
                    "no key",
                    {
                        var c = server.client(); c.apiKey = nil; return c
                    }()
                ),
                ("revoked key", server.client(key: revokedKey["key"]!.string)),
                ("expired key", server.client(key: expiring["key"]!.string)),
                ("malformed key", server.client(key: "not-a-key")),
                ("another namespace's id in X-Namespace", server.client(key: eveKey, namespace: namespaceA)),
            ]
            var checked = 0
            for call in calls {
                for (name, client) in unauthenticated {
                    let response = try await client.request(call.method, call.path, json: call.body)
                    let expected = name.hasPrefix("another") ? 404 : 401
                    #expect(response.status == expected, "\(name) \(call.method) \(call.path): \(response.text)")
                    #expect(!response.text.contains(secret) && !response.text.contains(session))
                    checked += 1
                }
                let malformed = try await server.client().request(
                    call.method, call.path, json: call.body, headers: [("Authorization", "Token abc")])
                expectError(malformed, status: 401, code: "unauthenticated")

                // Another namespace: the objects do not exist.
                let fromEve = try await eve.request(call.method, call.path, json: call.body)
                if call.isList {
                    #expect(fromEve.status == 200, "\(call.path): \(fromEve.text)")
                } else {
                    expectError(fromEve, status: 404, code: "not_found")
                }
                for needle in [secret, session, namespaceA, "alice"] {
                    #expect(!fromEve.text.contains(needle), "\(call.path) leaked \(needle): \(fromEve.text)")
                }
                // Another actor of the same namespace: forbidden, lists show nothing of alice.
                let fromBob = try await bob.request(call.method, call.path, json: call.body)
                if call.isList {
                    #expect(fromBob.status == 200)
                    #expect(!fromBob.text.contains(secret), "\(call.path): \(fromBob.text)")
                } else {
                    expectError(fromBob, status: 403, code: "forbidden")
                }
                checked += 3
            }
            // Batch decisions answer per item, in the item's own status.
            let batch = try await eve.call(
                .POST, "/v1/confirmations/decisions", json: [["id": .string(confirmation), "decision": "approve"]])
            #expect(batch["results"]?.arrayValue?.first?["status"] == 404)

            // Admin endpoints: a member is forbidden; another namespace's admin sees its own only.
            expectError(try await bob.request(.GET, "/v1/keys"), status: 403, code: "forbidden")
            expectError(try await bob.request(.GET, "/v1/audit"), status: 403, code: "forbidden")
            let eveKeys = try await eve.call(.GET, "/v1/keys")
            #expect(!eveKeys.canonicalString.contains("alice"))
            let eveNamespaces = try await eve.call(.GET, "/v1/namespaces")["data"]?.arrayValue ?? []
            #expect(eveNamespaces.map { $0["id"] } == [other["id"]])
            expectError(
                try await eve.request(
                    .POST, "/v1/keys", json: ["actor": "x", "role": "admin", "namespace": "default"]),
                status: 404, code: "not_found")
            expectError(
                try await eve.request(.POST, "/v1/namespaces", json: ["name": "tenant-c"]), status: 403,
                code: "forbidden")
            let eveAudit = try await eve.call(.GET, "/v1/audit?limit=1000")
            #expect(!eveAudit.canonicalString.contains(secret) && !eveAudit.canonicalString.contains(session))

            // Nothing above changed alice's confirmation; the approver may decide it.
            #expect(try await alice.confirmation(confirmation)["status"]?.string == "pending")
            _ = try await carol.decide(confirmation, approve: true)
            #expect(server.file("\(secret).txt", in: session) == secret)
            #expect(checked == calls.count * (unauthenticated.count + 3))

            // The audit chains of both namespaces verify after all of it.
            #expect(try await admin.call(.GET, "/v1/audit/verify")["ok"] == true)
            #expect(try await eve.call(.GET, "/v1/audit/verify")["ok"] == true)
        }
    }
}
