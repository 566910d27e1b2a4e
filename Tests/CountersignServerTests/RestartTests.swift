import CountersignClient
import CountersignTesting
import Foundation
import GateCore
import Testing

/// A real crash: the server process is killed with SIGKILL while a confirmation is
/// pending, started again on the same database, and the confirmation is decided.
@Suite struct RestartTests {
    @Test func pendingConfirmationSurvivesSIGKILLAndRunsOnceAfterRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "countersign-restart-\(Identifier.make("t", length: 10))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = directory.appendingPathComponent("countersign.db").path

        let first = try await ServerProcess.launch(database: database)
        let key = try String(contentsOfFile: database + ".admin-key", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(key.hasPrefix("sk_"))
        let attributes = try FileManager.default.attributesOfItem(atPath: database + ".admin-key")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        var client = CountersignClient(baseURL: first.baseURL, apiKey: key)
        let session = try await client.createSession(agent: "demo")["id"]!.string
        let reply = try await client.send(sessionID: session, content: "append journal.txt survived")
        let id = try #require(reply["pending_confirmations"]?.arrayValue?.first?["id"]).string
        let eventsBefore = try await client.events(sessionID: session)
        first.kill()

        let second = try await ServerProcess.launch(database: database)
        defer { second.kill() }
        client = CountersignClient(baseURL: second.baseURL, apiKey: key)
        #expect(try await client.confirmation(id)["status"]?.string == "pending")
        #expect(try await client.session(session)["status"]?.string == "awaiting_confirmation")
        #expect(try await client.events(sessionID: session) == eventsBefore)
        let decided = try await client.decide(id, approve: true)
        #expect(decided["run"]?["status"]?.string == "completed")
        let dataDirectory = directory.appendingPathComponent("countersign-data/workspaces/\(session)")
        let journal = try String(contentsOf: dataDirectory.appendingPathComponent("journal.txt"), encoding: .utf8)
        #expect(journal == "survived\n")
        let seqs = try await client.events(sessionID: session).compactMap { $0["seq"]?.intValue }
        #expect(seqs == Array(1...Int64(seqs.count)))
    }
}
