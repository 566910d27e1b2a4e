import AgentRuntime
import CountersignTesting
import Foundation
import GateCore
import MCP
import Synchronization
import Testing

@testable import ToolSources

/// The scripts of Tests/mcp/.
enum MCPScripts {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("mcp", isDirectory: true)
    static let tickets = directory.appendingPathComponent("tickets_server.py")
}

/// A restart sleeper that records the delays it is asked for and returns at once.
final class RecordingSleeper: MCPRestartSleeper {
    private let recorded = Mutex<[Duration]>([])
    var delays: [Duration] { recorded.withLock { $0 } }
    func sleep(for duration: Duration) async throws {
        recorded.withLock { $0.append(duration) }
        try Task.checkCancellation()
        await Task.yield()
    }
}

/// A restart sleeper that records the delays and waits until the test opens it.
final class GatedSleeper: MCPRestartSleeper {
    private let recorded = Mutex<[Duration]>([])
    let gate = OneShot<Void>()
    var delays: [Duration] { recorded.withLock { $0 } }
    func sleep(for duration: Duration) async throws {
        recorded.withLock { $0.append(duration) }
        _ = await gate.wait()
        try Task.checkCancellation()
    }
}

/// The context a tool runs with in these tests: a made-up session and call, the system
/// temporary folder as workspace.
func context(confirmationID: String? = nil, serverPorts: Set<Int> = []) -> ToolContext {
    var context = ToolContext(
        sessionID: "ses_t", callID: "call_t", confirmationID: confirmationID,
        workspace: FileManager.default.temporaryDirectory)
    context.serverPorts = serverPorts
    return context
}

func tool(_ connection: MCPServerConnection, _ name: String) throws -> any AgentRuntime.Tool {
    try #require(
        connection.currentTools.first { $0.descriptor.name == name },
        "\(name) not among \(connection.currentTools.map(\.descriptor.name))")
}

@Suite struct MCPAnnotationTests {
    @Test(arguments: [
        // readOnly, destructive, idempotent, openWorld → effect, openWorld, idempotent
        (Bool?.none, Bool?.none, Bool?.none, Bool?.none, ToolEffect.destructive, true, false),
        (true, nil, nil, false, .read, false, true),
        (true, true, false, nil, .read, true, true),
        (false, false, false, false, .write, false, false),
        (false, false, true, nil, .write, true, true),
        (false, true, true, false, .destructive, false, true),
        (nil, false, nil, true, .write, true, false),
    ])
    func annotationsMapToFlags(
        readOnly: Bool?, destructive: Bool?, idempotent: Bool?, openWorld: Bool?, effect: ToolEffect,
        expectedOpenWorld: Bool, expectedIdempotent: Bool
    ) {
        let annotations = MCP.Tool.Annotations(
            readOnlyHint: readOnly, destructiveHint: destructive, idempotentHint: idempotent, openWorldHint: openWorld)
        #expect(
            MCPTool.flags(annotations)
                == ToolFlags(effect: effect, openWorld: expectedOpenWorld, idempotent: expectedIdempotent))
    }

    @Test func backoffDoublesUpToTheCap() {
        let policy = MCPRestartPolicy(initialDelay: .milliseconds(500), maxDelay: .seconds(30))
        #expect(
            (0..<9).map { policy.delay(afterFailures: $0) } == [
                .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30),
                .seconds(30), .seconds(30),
            ])
        #expect(policy.delay(afterFailures: 10_000) == .seconds(30))
    }

    @Test func serverNames() {
        #expect(MCPServerConfig.isValidName("git"))
        #expect(MCPServerConfig.isValidName("my_server-2"))
        #expect(!MCPServerConfig.isValidName(""))
        #expect(!MCPServerConfig.isValidName("Git"))
        #expect(!MCPServerConfig.isValidName("a.b"))
    }

    @Test func eventStreamDecoderKeepsIDsAndSplitsAnywhere() {
        let body = Array("id: 7\r\nevent: message\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: ping\n\ndata: x\n".utf8)
        var decoder = SSEDecoder()
        var events: [SSEEvent] = []
        for byte in body { events += decoder.feed([byte]) }
        events += decoder.finish()
        #expect(
            events == [
                SSEEvent(id: "7", event: "message", data: "{\"a\":\n1}"),
                SSEEvent(id: nil, event: nil, data: "x"),
            ])
        #expect(decoder.lastEventID == "7")
    }
}

/// Real MCP servers from PyPI and Tests/mcp, over stdio and Streamable HTTP.
@Suite(.serialized) struct MCPServerTests {
    init() throws { try MCPFixtures.requirePythonPackages() }

    @Test func timeServerOverStdio() async throws {
        let connection = MCPServerConnection(
            MCPServerConfig(
                name: "time",
                endpoint: .command(argv: ["python3", "-m", "mcp_server_time"], environment: [:], workingDirectory: nil))
        )
        #expect(await connection.start(), "\(connection.lastError ?? "")")
        #expect(connection.status == .running)
        let names = connection.currentTools.map(\.descriptor.name).sorted()
        #expect(names == ["time.convert_time", "time.get_current_time"])
        let current = try tool(connection, "time.get_current_time")
        #expect(current.descriptor.toolKey == "mcp.time.get_current_time")
        #expect(current.descriptor.flags == ToolFlags(effect: .read, openWorld: false, idempotent: true))
        #expect(current.descriptor.inputSchema["properties"]?["timezone"] != nil)
        let output = await current.run(["timezone": "Europe/Paris"], context: context())
        #expect(output.success, "\(output.content)")
        #expect(output.content.contains("Europe/Paris"))
        let bad = await current.run(["timezone": "Not/AZone"], context: context())
        #expect(!bad.success)

        let pid = try #require(connection.processID)
        await connection.stop()
        #expect(!MCPFixtures.processExists(pid))
        #expect(connection.currentTools.isEmpty)
        let after = await current.run(["timezone": "UTC"], context: context())
        #expect(!after.success)
        #expect(after.content.contains("The MCP server time is not running"), "\(after.content)")
    }

    @Test func ticketsOverStdioAnnounceNewTools() async throws {
        let connection = MCPServerConnection(
            MCPServerConfig(
                name: "tickets",
                endpoint: .command(
                    argv: ["python3", MCPScripts.tickets.path, "stdio"], environment: [:], workingDirectory: nil)))
        #expect(await connection.start(), "\(connection.lastError ?? "")")
        defer { Task { await connection.stop() } }
        try await checkTickets(connection)
        await connection.stop()
    }

    @Test func ticketsOverStreamableHTTP() async throws {
        let server = try await MCPHTTPServerProcess.launch(script: MCPScripts.tickets)
        defer { server.kill() }
        let connection = MCPServerConnection(
            MCPServerConfig(name: "tickets", endpoint: .url(server.url, headers: ["X-Test": "1"])))
        #expect(await connection.start(), "\(connection.lastError ?? "")")
        try await checkTickets(connection)
        await connection.stop()
    }

    /// Tools and flags, a write, a read of it, and a tool that appears after
    /// `notifications/tools/list_changed`.
    func checkTickets(_ connection: MCPServerConnection) async throws {
        #expect(
            connection.currentTools.map(\.descriptor.name).sorted() == [
                "tickets.create_ticket", "tickets.enable_reports", "tickets.list_tickets",
            ])
        let create = try tool(connection, "tickets.create_ticket")
        #expect(create.descriptor.flags == ToolFlags(effect: .write, openWorld: false, idempotent: false))
        #expect(create.descriptor.inputSchema["required"] == ["title"])
        let list = try tool(connection, "tickets.list_tickets")
        #expect(list.descriptor.flags == ToolFlags(effect: .read, openWorld: false, idempotent: true))
        #expect(try tool(connection, "tickets.enable_reports").descriptor.flags.effect == .write)

        let created = await create.run(["title": "Printer on fire"], context: context(confirmationID: "conf_1"))
        #expect(
            created
                == ToolOutput(
                    success: true, content: "created ticket #1: Printer on fire",
                    data: [
                        "result": "created ticket #1: Printer on fire"
                    ]))
        #expect(await list.run([:], context: context()).content == "#1: Printer on fire (conf_1)")

        #expect(!connection.currentTools.contains { $0.descriptor.name == "tickets.ticket_report" })
        let enabled = try await tool(connection, "tickets.enable_reports").run([:], context: context())
        #expect(enabled.content == "reports enabled")
        try await MCPFixtures.waitUntil("ticket_report is listed") {
            connection.currentTools.contains { $0.descriptor.name == "tickets.ticket_report" }
        }
        let report = try await tool(connection, "tickets.ticket_report").run([:], context: context())
        #expect(report.content == "1 open tickets")
    }

    @Test func aKilledStdioServerIsRestartedAndShutDownCleanly() async throws {
        let sleeper = RecordingSleeper()
        let connection = MCPServerConnection(
            MCPServerConfig(
                name: "time",
                endpoint: .command(argv: ["python3", "-m", "mcp_server_time"], environment: [:], workingDirectory: nil)),
            options: .init(sleeper: sleeper))
        #expect(await connection.start())
        let supervisor = Task { try await connection.run() }
        let first = try #require(connection.processID)
        let current = try tool(connection, "time.get_current_time")
        #expect(await current.run(["timezone": "UTC"], context: context()).success)

        kill(first, SIGKILL)
        try await MCPFixtures.waitUntil("the server has been restarted") {
            connection.sessionCount == 2 && connection.status == .running
        }
        let second = try #require(connection.processID)
        #expect(second != first)
        #expect(!MCPFixtures.processExists(first), "the killed child was reaped")
        #expect(sleeper.delays == [.milliseconds(500)])
        #expect(connection.lastError == nil)
        let again = try tool(connection, "time.get_current_time")
        #expect(await again.run(["timezone": "UTC"], context: context()).success)

        supervisor.cancel()
        try await supervisor.value
        #expect(connection.status == .stopped)
        #expect(!MCPFixtures.processExists(second), "shutdown leaves no child behind")
    }

    @Test func aStreamableHTTPServerThatGoesAwayIsReconnected() async throws {
        let first = try await MCPHTTPServerProcess.launch(script: MCPScripts.tickets)
        defer { first.kill() }
        let sleeper = GatedSleeper()
        let connection = MCPServerConnection(
            MCPServerConfig(name: "tickets", endpoint: .url(first.url, headers: [:])), options: .init(sleeper: sleeper))
        #expect(await connection.start())
        let supervisor = Task { try await connection.run() }
        let create = try tool(connection, "tickets.create_ticket")
        #expect(await create.run(["title": "one"], context: context()).success)

        first.kill()
        try await MCPFixtures.waitUntil("the connection noticed") {
            connection.status == .restarting && sleeper.delays.count == 1
        }
        let down = await create.run(["title": "two"], context: context())
        #expect(!down.success)
        #expect(down.content.contains("The MCP server tickets is not running"), "\(down.content)")
        #expect(down.content.contains("it is restarting"))
        #expect(connection.currentTools.count == 3, "the tools stay listed while it restarts")

        let second = try await MCPHTTPServerProcess.launch(script: MCPScripts.tickets, port: first.port)
        defer { second.kill() }
        sleeper.gate.fulfil(())
        try await MCPFixtures.waitUntil("it is connected again") {
            connection.status == .running && connection.sessionCount == 2
        }
        #expect(sleeper.delays == [.milliseconds(500)])
        let again = await create.run(["title": "two"], context: context())
        #expect(again.content == "created ticket #1: two", "a new server process: \(again.content)")
        supervisor.cancel()
        try await supervisor.value
        #expect(connection.status == .stopped)
    }

    @Test func aServerThatCannotStartIsRetriedWithBackoff() async throws {
        let sleeper = RecordingSleeper()
        let connection = MCPServerConnection(
            MCPServerConfig(
                name: "broken",
                endpoint: .command(
                    argv: ["python3", "-c", "import sys; sys.exit('no such server')"], environment: [:],
                    workingDirectory: nil)),
            options: .init(sleeper: sleeper))
        #expect(await connection.start() == false)
        #expect(connection.lastError?.contains("no such server") == true, "\(connection.lastError ?? "")")
        #expect(connection.currentTools.isEmpty)
        let supervisor = Task { try await connection.run() }
        try await MCPFixtures.waitUntil("three more attempts failed") { sleeper.delays.count >= 3 }
        supervisor.cancel()
        try await supervisor.value
        #expect(Array(sleeper.delays.prefix(3)) == [.milliseconds(500), .seconds(1), .seconds(2)])
        #expect(connection.status == .stopped)
    }

    @Test func aMissingCommandIsReported() async throws {
        let connection = MCPServerConnection(
            MCPServerConfig(
                name: "nothing",
                endpoint: .command(argv: ["countersign-no-such-command"], environment: [:], workingDirectory: nil)))
        #expect(await connection.start() == false)
        #expect(connection.lastError?.contains("cannot find the command 'countersign-no-such-command'") == true)
    }
}
