import AgentRuntime
import CountersignClient
import CountersignServer
import CountersignTesting
import Dispatch
import Foundation
import GateCore
import Testing

/// Seed 003 (Sigmic tasks with tool approval) replayed against a live server, including
extension Compat {
    /// the document's JavaScript client, unchanged, under Node.
    @Suite struct SigmicTests {
        /// `-F message=… -F autoExecute=…` as curl and the JavaScript FormData send it.
        func multipart(_ fields: [(String, String)]) -> (Data, String) {
            let boundary = "----formdata-countersign-\(UUID().uuidString)"
            var body = ""
            for (name, value) in fields {
                body += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
            }
            body += "--\(boundary)--\r\n"
            return (Data(body.utf8), "multipart/form-data; boundary=\(boundary)")
        }

        func createTask(_ client: CountersignClient, _ message: String, autoExecute: String = "false") async throws
            -> String
        {
            let (body, contentType) = multipart([("message", message), ("autoExecute", autoExecute)])
            let response = try await client.request(
                .POST, "/api/v1/tasks", body: body, headers: [("Content-Type", contentType)])
            #expect(response.status == 201, "\(response.text)")
            #expect(response.json?["success"] == true)
            #expect(response.json?["data"]?["status"] == "pending")
            return try #require(response.json?["data"]?["id"]?.stringValue)
        }

        func approve(_ client: CountersignClient, task: String, call: String, _ outcome: String) async throws
            -> CountersignClient.RawResponse
        {
            try await client.request(
                .POST, "/api/v1/tasks/\(task)/tools/\(call)/approve", json: ["outcome": .string(outcome)])
        }

        /// The pending tool call of a task, once the gate has it.
        func pendingCall(_ server: TestServer, task: String) async throws -> JSONValue {
            _ = try await waitForEvent(server.client(), session: task, type: "confirmation.required")
            let state = try await server.client().call(.GET, "/api/v1/tasks/\(task)")
            #expect(state["data"]?["status"] == "awaiting_approval")
            return try #require(state["data"]?["pendingApprovals"]?.arrayValue?.first)
        }

        func expectSigmicError(
            _ response: CountersignClient.RawResponse, status: Int, code: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) {
            #expect(response.status == status, "\(response.text)", sourceLocation: sourceLocation)
            #expect(response.json?["success"] == false, sourceLocation: sourceLocation)
            #expect(
                response.json?["error"]?["code"]?.stringValue == code, "\(response.text)",
                sourceLocation: sourceLocation)
            #expect(response.json?["error"]?["message"]?.stringValue?.isEmpty == false, sourceLocation: sourceLocation)
        }

        @Test func theDocumentsWorkflowOverTheStream() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let task = try await createTask(client, "write notes.txt hello")
                var received: [ServerSentEvent] = []
                for try await event in client.eventStream(.GET, "/api/v1/tasks/\(task)/stream") {
                    received.append(event)
                    let data = event.json
                    if event.event == "tool_call", data["status"] == "awaiting_approval" {
                        // The document's example nests the fields under `data`; its client reads
                        // them at the top level. Both are there.
                        #expect(data["type"] == "tool_call")
                        #expect(data["data"]?["status"] == "awaiting_approval")
                        #expect(data["data"]?["toolName"] == "write_file")
                        #expect(data["data"]?["args"] == ["path": "notes.txt", "content": "hello"])
                        #expect(data["toolName"] == "write_file")
                        let call = try #require(data["callId"]?.stringValue)
                        #expect(data["data"]?["callId"]?.stringValue == call)
                        #expect(call.hasPrefix("call_"))
                        let approved = try await approve(client, task: task, call: call, "proceed_once")
                        #expect(approved.status == 200)
                        #expect(approved.json?["success"] == true)
                        #expect(approved.json?["data"]?["approved"] == true)
                    }
                }
                let types = received.map(\.event)
                #expect(types == ["tool_call", "tool_result", "content", "done"])
                #expect(received[1].json["success"] == true)
                #expect(received[2].json["text"] == "I wrote notes.txt.")
                #expect(received[2].json["data"]?["text"] == "I wrote notes.txt.")
                #expect(server.file("notes.txt", in: task) == "hello")
                let state = try await client.call(.GET, "/api/v1/tasks/\(task)")
                #expect(state["data"]?["status"] == "completed")
                #expect(state["data"]?["pendingApprovals"] == [])
                #expect(state["data"]?["result"] == "I wrote notes.txt.")
            }
        }

        @Test func pollingShowsPendingApprovalsAndApprovingByCurlWorks() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let task = try await createTask(client, "append log.txt first entry")
                let call = try await pendingCall(server, task: task)
                #expect(call["toolName"] == "append_file")
                #expect(call["args"] == ["path": "log.txt", "content": "first entry"])
                let response = try await approve(client, task: task, call: call["callId"]!.string, "proceed_once")
                #expect(response.json?["data"]?["approved"] == true)
                _ = try await waitForEvent(client, session: task, type: "run.completed")
                #expect(server.file("log.txt", in: task) == "first entry\n")
            }
        }

        @Test func cancelRejectsTheCall() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let task = try await createTask(client, "write secret.txt data")
                let call = try await pendingCall(server, task: task)
                let response = try await approve(client, task: task, call: call["callId"]!.string, "cancel")
                #expect(response.json?["success"] == true)
                #expect(response.json?["data"]?["approved"] == false)
                let done = try await waitForEvent(client, session: task, type: "run.completed")
                #expect(done.json["reply"]?.stringValue?.contains("User rejected the action.") == true)
                #expect(server.file("secret.txt", in: task) == nil)
            }
        }

        @Test func proceedAlwaysGrantsTheToolForTheSessionButNeverADestructiveOne() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let task = try await createTask(client, "write a.txt one")
                let call = try await pendingCall(server, task: task)
                let always = try await approve(client, task: task, call: call["callId"]!.string, "proceed_always")
                #expect(always.json?["data"]?["approved"] == true)
                #expect(always.json?["data"]?["remembered"] == true)
                _ = try await waitForEvent(client, session: task, type: "run.completed")
                // Later writes in the same session (the task's session) run without asking.
                let later = try await client.send(sessionID: task, content: "write b.txt two")
                #expect(later["status"] == "completed")
                #expect(server.file("b.txt", in: task) == "two")

                let deletion = try await createTask(client, "delete a.txt")
                let deleteCall = try await pendingCall(server, task: deletion)
                let once = try await approve(
                    client, task: deletion, call: deleteCall["callId"]!.string, "proceed_always")
                #expect(once.json?["data"]?["approved"] == true)
                #expect(once.json?["data"]?["remembered"] == false)
                #expect(try await server.store.grants(sessionID: deletion).isEmpty)
            }
        }

        @Test func autoExecuteNeverBypassesTheGate() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let task = try await createTask(client, "write a.txt x", autoExecute: "true")
                let call = try await pendingCall(server, task: task)
                #expect(call["status"] == "awaiting_approval")
                #expect(server.file("a.txt", in: task) == nil)
                // Reads run without approval whatever the flag says (policy auto).
                let reader = try await createTask(client, "list", autoExecute: "false")
                _ = try await waitForEvent(client, session: reader, type: "run.completed")
                let state = try await client.call(.GET, "/api/v1/tasks/\(reader)")
                #expect(state["data"]?["status"] == "completed")
            }
        }

        @Test func aJSONBodyCreatesATaskToo() async throws {
            try await TestServer.with { server in
                let response = try await server.client().request(
                    .POST, "/api/v1/tasks", json: ["message": "write a.txt x", "autoExecute": false])
                #expect(response.status == 201)
                #expect(response.json?["data"]?["id"]?.stringValue?.hasPrefix("ses_") == true)
            }
        }

        @Test func theDocumentsErrorCodes() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let task = try await createTask(client, "write a.txt x")
                let call = try await pendingCall(server, task: task)
                let path = "/api/v1/tasks/\(task)/tools/\(call["callId"]!.string)/approve"
                expectSigmicError(
                    try await anonymousClient(server).request(.POST, path, json: ["outcome": "proceed_once"]),
                    status: 401,
                    code: "AUTH_REQUIRED")
                let badKey = CountersignClient(
                    baseURL: server.baseURL, apiKey: "sk_notAKeyAtAllxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
                expectSigmicError(
                    try await badKey.request(.POST, path, json: ["outcome": "proceed_once"]), status: 401,
                    code: "INVALID_API_KEY")
                expectSigmicError(
                    try await badKey.request(.GET, "/api/v1/tasks/\(task)"), status: 401, code: "INVALID_API_KEY")
                expectSigmicError(
                    try await client.request(.POST, path, json: ["outcome": "maybe"]), status: 400,
                    code: "VALIDATION_ERROR")
                expectSigmicError(
                    try await client.request(.POST, path, json: [:]), status: 400, code: "VALIDATION_ERROR")
                expectSigmicError(
                    try await approve(client, task: "ses_unknown", call: call["callId"]!.string, "proceed_once"),
                    status: 404,
                    code: "NOT_FOUND")
                expectSigmicError(
                    try await approve(client, task: task, call: "call_unknown", "proceed_once"), status: 404,
                    code: "NOT_FOUND")
                expectSigmicError(
                    try await client.request(.GET, "/api/v1/tasks/ses_unknown"), status: 404, code: "NOT_FOUND")
                expectSigmicError(
                    try await client.request(.GET, "/api/v1/tasks/ses_unknown/stream"), status: 404, code: "NOT_FOUND")
                let (empty, contentType) = multipart([("autoExecute", "false")])
                expectSigmicError(
                    try await client.request(
                        .POST, "/api/v1/tasks", body: empty, headers: [("Content-Type", contentType)]), status: 400,
                    code: "VALIDATION_ERROR")
                let (flag, flagType) = multipart([("message", "list"), ("autoExecute", "sometimes")])
                expectSigmicError(
                    try await client.request(.POST, "/api/v1/tasks", body: flag, headers: [("Content-Type", flagType)]),
                    status: 400,
                    code: "VALIDATION_ERROR")
                // Namespaces and actors.
                let foreign = server.client(key: try await otherNamespaceKey(server))
                expectSigmicError(
                    try await foreign.request(.POST, path, json: ["outcome": "proceed_once"]), status: 404,
                    code: "NOT_FOUND")
                let bob = server.client(key: try await server.makeKey(actor: "bob", role: .member))
                expectSigmicError(
                    try await bob.request(.POST, path, json: ["outcome": "proceed_once"]), status: 403,
                    code: "FORBIDDEN")
                // Deciding twice.
                #expect(try await client.request(.POST, path, json: ["outcome": "proceed_once"]).status == 200)
                expectSigmicError(
                    try await client.request(.POST, path, json: ["outcome": "cancel"]), status: 409,
                    code: "ALREADY_DECIDED")
            }
        }

        @Test func aConfirmationOfThisDoorIsInTheNativeInboxAndDecidableNatively() async throws {
            try await TestServer.with { server in
                let client = server.client()
                let task = try await createTask(client, "write a.txt via-sigmic")
                let call = try await pendingCall(server, task: task)
                let inbox = try await client.confirmations()
                #expect(inbox.map { $0["call_id"] } == [call["callId"]])
                let decided = try await client.decide(inbox[0]["id"]!.string, approve: true)
                #expect(decided["run"]?["status"] == "completed")
                #expect(server.file("a.txt", in: task) == "via-sigmic")
                let state = try await client.call(.GET, "/api/v1/tasks/\(task)")
                #expect(state["data"]?["status"] == "completed")
            }
        }

        @Test(.enabled(if: NodeScript.node != nil, "needs node (Node 20) on PATH"))
        func theDocumentsJavaScriptClientRunsUnchanged() async throws {
            let project = FileManager.default.temporaryDirectory.appendingPathComponent(
                "sigmic-project-\(UUID().uuidString)", isDirectory: true)
            try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: project) }
            try Data(#"{"name": "sigmic-demo", "version": "1.0.0"}"#.utf8).write(
                to: project.appendingPathComponent("package.json"))
            let reader = ProjectReader.agent(root: project)
            try await TestServer.with(agents: [reader], configure: { $0.compatAgent = ProjectReader.name }) { server in
                let run = try await NodeScript.run(
                    NodeScript.sigmicClient,
                    environment: ["SIGMIC_BASE_URL": server.baseURL, "SIGMIC_API_KEY": server.adminKey])
                #expect(run.status == 0, "stdout: \(run.output)\nstderr: \(run.errors)")
                #expect(run.output.contains("Task created: ses_"))
                #expect(run.output.contains("Tool \"read_file\" wants to execute with args: { path: 'package.json' }"))
                #expect(run.output.contains("Approval result:"))
                #expect(run.output.contains("success: true"))
                #expect(run.output.contains("approved: true"))
                #expect(run.output.contains("\"name\": \"sigmic-demo\""))
                #expect(run.output.contains("Task completed"))
                // The script's approval went through the gate: one approved, succeeded call.
                let decided = try await server.client().confirmations(status: "all")
                #expect(decided.count == 1)
                #expect(decided.first?["status"] == "succeeded")
                #expect(decided.first?["decision"]?["decided_by"] == "admin")
            }
        }
    }
}

/// An agent for the document's own message ("Read the contents of package.json"): it
/// reads project files, and its policy asks before every read (the document's
/// "Security Review" use case).
enum ProjectReader {
    static let name = "project-reader"

    static func agent(root: URL) -> Agent {
        Agent(
            name: name, instructions: "You read the project's files.", model: Model(), tools: [ReadTool(root: root)],
            policy: AgentPolicy(tools: ["read_file": .confirm]))
    }

    struct Model: LanguageModel {
        func respond(to request: ModelRequest, onToken: @escaping @Sendable (String) async -> Void) async throws
            -> ModelResponse
        {
            switch request.messages.last {
            case .user(let text)? where text.hasPrefix("Read the contents of "):
                let path = String(text.dropFirst("Read the contents of ".count))
                return ModelResponse(
                    text: "",
                    toolCalls: [ModelToolCall(id: "read_0", name: "read_file", arguments: ["path": .string(path)])])
            case .tool(_, _, let content)?:
                let text = "Here it is:\n\(content)"
                await onToken(text)
                return ModelResponse(text: text)
            default:
                return ModelResponse(text: "Ask me to read the contents of a file.")
            }
        }
    }

    struct ReadTool: Tool {
        let root: URL
        var descriptor: ToolDescriptor {
            ToolDescriptor(
                name: "read_file", description: "Read a file of the project.",
                inputSchema: [
                    "type": "object", "properties": ["path": ["type": "string"]], "required": ["path"],
                    "additionalProperties": false,
                ], flags: ToolFlags(effect: .read, idempotent: true), toolKey: "project.read")
        }

        func summary(of params: JSONValue) -> String { "Read \(params["path"]?.stringValue ?? "?") of the project" }

        func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput {
            let path = params["path"]?.stringValue ?? ""
            guard !path.isEmpty, !path.contains("/"), !path.hasPrefix("."),
                let data = FileManager.default.contents(atPath: root.appendingPathComponent(path).path)
            else { return .failure("No file at \(path).") }
            return ToolOutput(success: true, content: String(decoding: data, as: UTF8.self))
        }
    }
}

/// Runs a Node script to its end and collects what it printed.
enum NodeScript {
    static let node: String? = {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/node"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    /// `Tests/compat/sigmic-client.mjs`: the document's client, verbatim but for its two
    /// constants, which read `SIGMIC_BASE_URL` and `SIGMIC_API_KEY`.
    static let sigmicClient = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("compat/sigmic-client.mjs")

    struct Result: Sendable {
        var status: Int32
        var output: String
        var errors: String
    }

    /// Waits for the process to exit (a watchdog ends it after `limit`, so a hanging
    /// stream fails the test instead of hanging the suite).
    static func run(_ script: URL, environment: [String: String], limit: Duration = .seconds(120)) async throws
        -> Result
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(node))
        process.arguments = [script.path]
        var merged = ProcessInfo.processInfo.environment
        for (name, value) in environment { merged[name] = value }
        process.environment = merged
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        // Our own descriptors: Foundation closes the pipes' handles when the child exits,
        // and reading a closed FileHandle crashes.
        let outputFD = dup(stdout.fileHandleForReading.fileDescriptor)
        let errorFD = dup(stderr.fileHandleForReading.fileDescriptor)
        let exited = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { finished in
            exited.continuation.yield(finished.terminationStatus)
            exited.continuation.finish()
        }
        try process.run()
        // Blocking reads stay off the cooperative pool, which the server under test needs.
        async let output = readToEnd(outputFD)
        async let errors = readToEnd(errorFD)
        let pid = process.processIdentifier
        let watchdog = Task {
            try await Task.sleep(for: limit)
            kill(pid, SIGKILL)
        }
        var iterator = exited.stream.makeAsyncIterator()
        let status = await iterator.next() ?? -1
        watchdog.cancel()
        return Result(
            status: status, output: String(decoding: await output, as: UTF8.self),
            errors: String(decoding: await errors, as: UTF8.self))
    }

    static func readToEnd(_ fd: Int32) async -> Data {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: readAll(fd)) }
        }
    }
}
