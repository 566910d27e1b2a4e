import CountersignClient
import CountersignTesting
import Foundation
import GateCore
import Testing

/// The `countersign` executable as a user runs it.
@Suite struct CommandLineTests {
    let temporary: TemporaryDirectory
    var directory: URL { temporary.url }
    var database: String { directory.appendingPathComponent("countersign.db").path }

    init() throws {
        temporary = try TemporaryDirectory("countersign-cli")
    }

    /// Runs the binary to completion and returns (status, stdout, stderr); `input` is its
    /// whole standard input.
    func run(_ arguments: [String], input: String = "", in folder: URL? = nil) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = ServerProcess.binary()
        process.arguments = arguments
        process.currentDirectoryURL = folder ?? directory
        let out = Pipe()
        let err = Pipe()
        let stdin = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin
        let outFD = dup(out.fileHandleForReading.fileDescriptor)
        let errFD = dup(err.fileHandleForReading.fileDescriptor)
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let stdout = readAll(outFD)
        let stderr = readAll(errFD)
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self)
        )
    }

    @Test func keysCreatePrintsOnlyTheKeyAndTheKeyWorks() async throws {
        let server = try await ServerProcess.launch(database: database, extra: ["--confirmation-ttl", "120"])
        defer { server.kill() }
        let (status, stdout, _) = try run([
            "keys", "create", "--database", "sqlite:\(database)", "--namespace", "default", "--actor", "bob",
            "--role", "approver",
        ])
        #expect(status == 0)
        let lines = stdout.split(separator: "\n")
        #expect(lines.count == 1)
        let key = String(try #require(lines.first))
        #expect(key.hasPrefix("sk_") && key.count == 46)
        let client = CountersignClient(baseURL: server.baseURL, apiKey: key)
        let session = try await client.createSession(agent: "demo")
        #expect(session["actor"]?.stringValue == "bob")
        let reply = try await client.send(sessionID: session["id"]!.stringValue!, content: "write a.txt x")
        let pending = try #require(reply["pending_confirmations"]?.arrayValue?.first)
        let created = try #require(Timestamp.parse(pending["created_at"]!.stringValue!))
        let expires = try #require(Timestamp.parse(pending["expires_at"]!.stringValue!))
        #expect(abs(expires.timeIntervalSince(created) - 120) < 0.01)

        let (listStatus, listed, _) = try run(["keys", "list", "--database", "sqlite:\(database)"])
        #expect(listStatus == 0)
        #expect(listed.contains(String(key.prefix(11))))
        let (revokeStatus, _, _) = try run([
            "keys", "revoke", "--database", "sqlite:\(database)", String(key.prefix(11)),
        ])
        #expect(revokeStatus == 0)
        let after = try await client.request(.GET, "/v1/sessions")
        #expect(after.status == 401)
    }

    @Test func theDataDirectoryComesFromTheEnvironment() async throws {
        let data = directory.appendingPathComponent("elsewhere")
        let server = try await ServerProcess.launch(
            database: database, environment: ["COUNTERSIGN_DATA_DIR": data.path])
        defer { server.kill() }
        let key = try String(contentsOfFile: database + ".admin-key", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let client = CountersignClient(baseURL: server.baseURL, apiKey: key)
        let session = try await client.createSession(agent: "demo")["id"]!.stringValue!
        var isDirectory: ObjCBool = false
        let path = data.appendingPathComponent("workspaces/\(session)").path
        #expect(FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue)
    }

    @Test func limitsAreFlags() async throws {
        let server = try await ServerProcess.launch(
            database: database, extra: ["--max-body-bytes", "64", "--max-message-characters", "5"])
        defer { server.kill() }
        let key = try String(contentsOfFile: database + ".admin-key", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let client = CountersignClient(baseURL: server.baseURL, apiKey: key)
        let session = try await client.createSession(agent: "demo")["id"]!.stringValue!
        let long = try await client.request(
            .POST, "/v1/sessions/\(session)/messages", json: ["content": "list and list"])
        #expect(long.status == 400 && long.errorCode == "validation_error")
        let big = try await client.request(
            .POST, "/v1/sessions",
            json: ["agent": "demo", "metadata": ["x": .string(String(repeating: "a", count: 100))]])
        #expect(big.status == 413 && big.errorCode == "too_large")
        let (status, _, stderr) = try run(["serve", "--database", "sqlite:\(database)", "--max-body-bytes", "0"])
        #expect(status != 0)
        #expect(stderr.contains("greater than 0"))
    }

    @Test func badFlagsFailWithAMessage() throws {
        let (status, _, stderr) = try run(["keys", "create", "--database", "sqlite:\(database)", "--actor", "x"])
        #expect(status != 0)
        #expect(stderr.contains("No database"))
        let (roleStatus, _, roleError) = try run(["serve", "--database", "mysql://nope"])
        #expect(roleStatus != 0)
        #expect(roleError.contains("Unsupported database URL"))
    }

    @Test func sigtermShutsDownGracefully() async throws {
        let server = try await ServerProcess.launch(database: database)
        let client = CountersignClient(
            baseURL: server.baseURL,
            apiKey: try String(contentsOfFile: database + ".admin-key", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines))
        let session = try await client.createSession(agent: "demo")["id"]!.stringValue!
        // An open event stream must not hold the shutdown.
        let stream = Task {
            for try await _ in client.eventStream(.GET, "/v1/sessions/\(session)/events") {}
        }
        _ = try await client.session(session)
        server.terminate()
        #expect(server.process.terminationReason == .exit)
        #expect(server.process.terminationStatus == 0)
        stream.cancel()
    }

    var adminKey: String {
        get throws {
            try String(contentsOfFile: database + ".admin-key", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// A stopped server is reported at once, with its address: the client used to retry
    /// the refused connection until the request's 60 s deadline.
    @Test func aServerThatIsNotRunningIsReportedAtOnce() throws {
        // A port that was just free: bind, read it, close.
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(probe, $0, &length) }
        }
        close(probe)
        let url = "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
        let start = ContinuousClock.now
        let (status, out, err) = try run(["approvals", "list", "--server", url, "--key", "sk_not_needed"])
        let elapsed = ContinuousClock.now - start
        #expect(status == 1)
        #expect(out.isEmpty)
        #expect(err.contains("Cannot reach the Countersign server at \(url)"), "\(err)")
        #expect(!err.contains("USAGE"), "\(err)")
        #expect(elapsed < .seconds(5), "took \(elapsed)")
    }

    @Test func approvalsListApproveAndDenyFromTheTerminal() async throws {
        let server = try await ServerProcess.launch(database: database)
        defer { server.kill() }
        let key = try adminKey
        let client = CountersignClient(baseURL: server.baseURL, apiKey: key)
        let session = try await client.createSession(agent: "demo")["id"]!.stringValue!
        let reply = try await client.send(sessionID: session, content: "write a.txt one and write b.txt two")
        let pending = try #require(reply["pending_confirmations"]?.arrayValue)
        #expect(pending.count == 2)
        let remote = ["--server", server.baseURL, "--key", key]

        let (listStatus, listed, _) = try run(["approvals", "list"] + remote)
        #expect(listStatus == 0)
        for confirmation in pending {
            #expect(listed.contains(confirmation["id"]!.stringValue!))
            #expect(listed.contains(confirmation["summary"]!.stringValue!))
        }
        #expect(listed.contains("asked because: always"))
        let (jsonStatus, json, _) = try run(["approvals", "list", "--json", "--session", session] + remote)
        #expect(jsonStatus == 0)
        #expect(try JSONValue.parse(json).arrayValue?.count == 2)

        let first = pending[0]["id"]!.stringValue!
        let second = pending[1]["id"]!.stringValue!
        let (approveStatus, approved, _) = try run(["approvals", "approve", first] + remote)
        #expect(approveStatus == 0)
        #expect(approved.hasPrefix("approved \(first)"))
        let (denyStatus, denied, _) = try run(["approvals", "deny", second, "--reason", "not b"] + remote)
        #expect(denyStatus == 0)
        #expect(denied.contains("denied \(second)"))
        #expect(denied.contains("not b"), "the resumed run's reply names the reason: \(denied)")
        #expect(try await client.confirmation(first)["status"]?.stringValue == "succeeded")
        #expect(try await client.confirmation(second)["decision"]?["reason"]?.stringValue == "not b")

        // Deciding again fails with the API's code, and nothing changes.
        let (againStatus, _, againError) = try run(["approvals", "approve", first] + remote)
        #expect(againStatus != 0)
        #expect(againError.contains("already_decided"))
        let (emptyStatus, empty, _) = try run(["approvals", "list"] + remote)
        #expect(emptyStatus == 0)
        #expect(empty.contains("No pending confirmations."))
        // Without --key, the admin key file of ./countersign.db is used (the folder `serve` ran in)…
        let (fileKeyStatus, fileKey, _) = try run(["approvals", "list", "--server", server.baseURL])
        #expect(fileKeyStatus == 0)
        #expect(fileKey.contains("No pending confirmations."))
        // … and without any key it says so.
        let elsewhere = directory.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        let (noKeyStatus, _, noKey) = try run(["approvals", "list", "--server", server.baseURL], in: elsewhere)
        #expect(noKeyStatus != 0)
        #expect(noKey.contains("No API key"))
    }

    @Test func chatAsksForEachConfirmationInTheTerminal() async throws {
        let server = try await ServerProcess.launch(database: database)
        defer { server.kill() }
        let key = try adminKey
        let remote = ["--server", server.baseURL, "--key", key]
        // write → approve; append → edit (a bad edit first, then a good one); delete → deny.
        let input = [
            "write notes/a.txt hello", "a",
            "append notes/a.txt world", "e", "{\"path\": 3}", "e",
            "{\"path\": \"notes/a.txt\", \"content\": \"WORLD\"}",
            "delete notes/a.txt", "x", "d", "keep it",
            "read notes/a.txt", "",
        ].joined(separator: "\n")
        let (status, out, err) = try run(["chat", "--agent", "demo"] + remote, input: input)
        #expect(status == 0, "\(err)")
        let session = try #require(
            out.split(separator: "\n").first { $0.hasPrefix("session ses_") }?.split(separator: " ")[1])
        #expect(out.contains("Confirmation needed:"))
        #expect(out.contains("write_file"))
        #expect(out.contains("approved with edits"))
        #expect(out.contains("refused: edited_params do not match"))
        #expect(out.contains("answer a, d or e"))
        #expect(out.contains("denied"))
        #expect(out.contains("hello\nWORLD"), "read shows the file: \(out)")
        let client = CountersignClient(baseURL: server.baseURL, apiKey: key)
        let all = try await client.confirmations(status: "all", sessionID: String(session))
        #expect(all.map { $0["status"]?.stringValue } == ["succeeded", "succeeded", "denied"])
        #expect(all[2]["decision"]?["reason"]?.stringValue == "keep it")
    }
}
