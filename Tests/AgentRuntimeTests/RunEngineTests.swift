import AgentRuntime
import CountersignTesting
import Foundation
import GateCore
import ModelProviders
import Storage
import Testing
import ToolSources

/// The engine against a real SQLite file, driven by scripted models.
struct EngineFixture {
    let store: SQLiteStore
    let engine: RunEngine
    let temporary: TemporaryDirectory
    var directory: URL { temporary.url }
    let namespaceID: String
    let clock: ManualClock

    init(agents: [Agent], ttl: TimeInterval = 300) async throws {
        temporary = try TemporaryDirectory("engine")
        store = try SQLiteStore(path: temporary.url.appendingPathComponent("db.sqlite").path)
        try await store.migrate()
        clock = ManualClock()
        let namespace = Namespace(id: "ns_test", name: "default", createdAt: clock.now())
        let key = APIKey(
            prefix: "sk_test", hash: "x", namespaceID: namespace.id, actor: "admin", role: .admin,
            createdAt: clock.now())
        _ = try await store.bootstrapIfEmpty(namespace: namespace, key: key)
        namespaceID = namespace.id
        engine = RunEngine(
            store: store, agents: AgentRegistry(agents), clock: clock,
            configuration: RunEngine.Configuration(
                confirmationTTL: ttl, workspaceRoot: temporary.url.appendingPathComponent("workspaces")))
    }

    func session(agent: String) async throws -> Session {
        try await engine.createSession(namespaceID: namespaceID, actor: "alice", agent: agent)
    }

    func events(_ session: Session) async throws -> [SessionEvent] {
        try await store.events(sessionID: session.id, after: 0, limit: 10_000)
    }
}

/// A tool that counts its runs and can be told to fail.
final class CountingTool: Tool, @unchecked Sendable {
    let descriptor: ToolDescriptor
    private let lock = NSLock()
    private var runs = 0

    init(name: String, effect: ToolEffect, idempotent: Bool = false) {
        descriptor = ToolDescriptor(
            name: name, description: "test tool",
            inputSchema: ["type": "object", "properties": ["n": ["type": "integer"]], "additionalProperties": false],
            flags: ToolFlags(effect: effect, idempotent: idempotent))
    }

    var count: Int { lock.withLock { runs } }

    func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput {
        lock.withLock { runs += 1 }
        return ToolOutput(success: true, content: "ran \(descriptor.name) with \(params.canonicalString)")
    }
}

@Suite struct RunEngineTests {
    @Test func scriptedConversationWithAnAutoToolCompletes() async throws {
        let reader = CountingTool(name: "lookup", effect: .read)
        let model = ScriptedModel([
            .call(("lookup", ["n": 1])),
            .reply("done", expectLastToolResultContains: "ran lookup"),
        ])
        let fixture = try await EngineFixture(agents: [
            Agent(name: "a", instructions: "", model: model, tools: [reader])
        ])
        let session = try await fixture.session(agent: "a")
        let outcome = try await fixture.engine.send(sessionID: session.id, content: "go").outcome
        #expect(outcome.status == .completed)
        #expect(outcome.reply == "done")
        #expect(outcome.toolsUsed == ["lookup"])
        #expect(reader.count == 1)
        try model.assertConsumed()
        let types = try await fixture.events(session).map(\.type)
        #expect(
            types == [
                "message.created", "run.started", "message.completed", "tool_call.created", "tool.started",
                "tool.result",
                "token", "message.completed", "run.completed",
            ])
    }

    @Test func invalidArgumentsAndUnknownToolsNeverRun() async throws {
        let writer = CountingTool(name: "save", effect: .write)
        let model = ScriptedModel([
            ScriptedModel.Step(
                ModelResponse(
                    text: "",
                    toolCalls: [
                        ModelToolCall(id: "1", name: "save", arguments: "{not json"),
                        ModelToolCall(id: "2", name: "save", arguments: #"{"n": "text"}"#),
                        ModelToolCall(id: "3", name: "nope", arguments: "{}"),
                    ])),
            .reply("sorry"),
        ])
        let fixture = try await EngineFixture(agents: [
            Agent(name: "a", instructions: "", model: model, tools: [writer])
        ])
        let session = try await fixture.session(agent: "a")
        let outcome = try await fixture.engine.send(sessionID: session.id, content: "go").outcome
        #expect(outcome.status == .completed)
        #expect(writer.count == 0)
        let results = try await fixture.events(session).filter { $0.type == "tool.result" }
        #expect(results.count == 3)
        #expect(results.allSatisfy { $0.data["status"]?.stringValue == "blocked" })
        let history = model.received[1].messages
        let toolMessages = history.compactMap { message -> String? in
            if case .tool(_, _, let content) = message { return content }
            return nil
        }
        #expect(toolMessages.count == 3)
        #expect(toolMessages[0].contains("not a valid JSON object"))
        #expect(toolMessages[1].contains("schema"))
        #expect(toolMessages[2].contains("no tool named nope"))
    }

    @Test func modelFailureEndsTheRunAndTheSessionCanContinue() async throws {
        let model = ScriptedModel([.reply("after failure")])
        struct Broken: LanguageModel {
            func respond(to request: ModelRequest, onToken: @escaping @Sendable (String) async -> Void) async throws
                -> ModelResponse
            { throw CountersignError(.unavailable, "provider down") }
        }
        let fixture = try await EngineFixture(agents: [
            Agent(name: "broken", instructions: "", model: Broken(), tools: []),
            Agent(name: "ok", instructions: "", model: model, tools: []),
        ])
        let session = try await fixture.session(agent: "broken")
        let outcome = try await fixture.engine.send(sessionID: session.id, content: "go").outcome
        #expect(outcome.status == .failed)
        #expect(outcome.error == "provider down")
        #expect(try await fixture.store.session(id: session.id)?.status == .idle)
        #expect(try await fixture.events(session).last?.type == "run.failed")
        let second = try await fixture.engine.send(sessionID: session.id, content: "again").outcome
        #expect(second.status == .failed)
    }

    @Test func rememberSessionGrantsLaterCallsButNeverDestructiveOnes() async throws {
        let writer = CountingTool(name: "save", effect: .write)
        let remover = CountingTool(name: "remove", effect: .destructive)
        let model = ScriptedModel([
            .call(("save", ["n": 1])), .reply("saved"),
            .call(("save", ["n": 2])), .reply("saved again"),
            .call(("remove", ["n": 3])),
        ])
        let fixture = try await EngineFixture(agents: [
            Agent(name: "a", instructions: "", model: model, tools: [writer, remover])
        ])
        let session = try await fixture.session(agent: "a")
        let first = try await fixture.engine.send(sessionID: session.id, content: "one").outcome
        let confirmation = try #require(first.pendingConfirmations.first)
        let decided = try await fixture.engine.decide(
            confirmationID: confirmation.id, request: DecisionRequest(kind: .approve, remember: .session),
            decidedBy: "alice")
        #expect(await decided.resumed?.outcome.status == .completed)
        #expect(try await fixture.store.grants(sessionID: session.id).map(\.toolName) == ["save"])
        let second = try await fixture.engine.send(sessionID: session.id, content: "two").outcome
        #expect(second.status == .completed)
        #expect(writer.count == 2)
        let third = try await fixture.engine.send(sessionID: session.id, content: "three").outcome
        let destructive = try #require(third.pendingConfirmations.first)
        await #expect(throws: CountersignError.self) {
            _ = try await fixture.engine.decide(
                confirmationID: destructive.id, request: DecisionRequest(kind: .approve, remember: .session),
                decidedBy: "alice")
        }
        #expect(try await fixture.store.confirmation(id: destructive.id)?.status == .pending)
        #expect(remover.count == 0)
    }

    @Test func crashDuringExecutionReRunsOnlyIdempotentTools() async throws {
        let idempotent = CountingTool(name: "put", effect: .write, idempotent: true)
        let once = CountingTool(name: "charge", effect: .write, idempotent: false)
        let model = ScriptedModel([
            .call(("put", ["n": 1]), ("charge", ["n": 2])),
            ScriptedModel.Step(
                check: { request in
                    let contents = request.messages.compactMap { message -> String? in
                        if case .tool(_, _, let content) = message { return content }
                        return nil
                    }
                    guard contents.count == 2, contents[0].contains("ran put"),
                        contents[1].contains("outcome of this call is unknown")
                    else { throw ScriptedModel.ScriptError.unexpectedRequest("unexpected results: \(contents)") }
                }, ModelResponse(text: "recovered")),
        ])
        let fixture = try await EngineFixture(agents: [
            Agent(name: "a", instructions: "", model: model, tools: [idempotent, once])
        ])
        let session = try await fixture.session(agent: "a")
        let outcome = try await fixture.engine.send(sessionID: session.id, content: "go").outcome
        #expect(outcome.pendingConfirmations.count == 2)
        // Simulate a crash after both were claimed: approve both, then mark them executing
        // as a killed process would have left them, and recover.
        for confirmation in outcome.pendingConfirmations {
            try await fixture.store.execute(
                sql: "UPDATE confirmations SET status = 'executing' WHERE id = ?", arguments: [confirmation.id])
            try await fixture.store.execute(
                sql: "UPDATE tool_calls SET status = 'executing' WHERE id = ?", arguments: [confirmation.callID])
        }
        try await fixture.store.execute(
            sql: "UPDATE runs SET status = 'running' WHERE id = ?", arguments: [outcome.runID])
        let handles = try await fixture.engine.recover()
        #expect(handles.count == 1)
        let recovered = await handles[0].outcome
        #expect(recovered.status == .completed)
        #expect(idempotent.count == 1)
        #expect(once.count == 0)
        let statuses = try await fixture.store.confirmations(
            namespaceID: fixture.namespaceID, filter: ConfirmationFilter()
        )
        .map(\.status)
        #expect(Set(statuses) == [.succeeded, .failed])
        try model.assertConsumed()
    }

    @Test func demoModelUnderstandsItsCommands() async throws {
        let fixture = try await EngineFixture(agents: [
            Agent(name: "demo", instructions: "", model: DemoModel(), tools: WorkspaceFiles.tools)
        ])
        let session = try await fixture.session(agent: "demo")
        let help = try await fixture.engine.send(sessionID: session.id, content: "hello there").outcome
        #expect(help.reply == DemoModel.help)
        let listed = try await fixture.engine.send(sessionID: session.id, content: "list").outcome
        #expect(listed.status == .completed)
        #expect(listed.toolsUsed == ["list_files"])
    }
}
