import CountersignClient
import CountersignTesting
import Foundation
import GateCore
import Storage
import Testing

@Suite struct AuditTests {
    @Test func theChainVerifiesAndAHandEditIsFoundAtItsRow() async throws {
        try await TestServer.with { server in
            let client = server.client()
            let (_, reply) = try await startDemo(client, "write a.txt x")
            let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
            _ = try await client.decide(id, approve: true)
            let verified = try await client.call(.GET, "/v1/audit/verify")
            #expect(verified["ok"] == true)
            #expect(verified["first_broken"] == .null)
            let entries = try await client.call(.GET, "/v1/audit?limit=1000")["data"]?.arrayValue ?? []
            let actions = entries.compactMap { $0["action"]?.stringValue }
            #expect(actions.contains("confirmation.requested"))
            #expect(actions.contains("confirmation.approved"))
            #expect(actions.contains("confirmation.succeeded"))
            let approval = try #require(entries.first { $0["action"]?.stringValue == "confirmation.approved" })
            let rowID = try #require(approval["id"]?.intValue)
            #expect(approval["actor"]?.stringValue == "admin")
            #expect(approval["data"]?["key_prefix"]?.stringValue == String(server.adminKey.prefix(11)))

            let sqlite = try #require(server.store as? SQLiteStore)
            try await sqlite.execute(
                sql: "UPDATE audit SET actor = 'mallory' WHERE id = ?", arguments: [rowID])
            let broken = try await client.call(.GET, "/v1/audit/verify")
            #expect(broken["ok"] == false)
            #expect(broken["first_broken"]?.intValue == rowID)

            let member = server.client(key: try await server.makeKey(actor: "m", role: .member))
            expectError(try await member.request(.GET, "/v1/audit/verify"), status: 403, code: "forbidden")
        }
    }
}
