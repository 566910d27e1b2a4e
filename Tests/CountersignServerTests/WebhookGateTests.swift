import AgentRuntime
import CountersignClient
import CountersignServer
import CountersignTesting
import Foundation
import GateCore
import Testing
import ToolSources

/// Webhook tools from the config file, through the gate, against a local receiver.
@Suite struct WebhookGateTests {
    static func config(receiver: String) -> String {
        """
        http_fetch: {max_bytes: 1024, timeout: 2s, max_redirects: 2, allow_hosts: ["169.254.169.254"]}
        webhook_tools:
          - name: transfer
            url: "\(receiver)/transfer"
            description: Move money between accounts.
            effect: write
            summary: "Transfer {amount} EUR to {to}"
            schema:
              type: object
              properties: {to: {type: string}, amount: {type: number}}
              required: [to, amount]
              additionalProperties: false
            headers: {Authorization: {env: BANK_TOKEN}, X-Team: finance}
            timeout: 5s
        agents:
          - name: treasurer
            model: demo
            tools: [transfer, read_file]
            policy:
              transfer: auto
              rules:
                - {id: big-transfers, tool: transfer, when: {amount: {min: 100.01}}, policy: confirm}
                - {id: no-offshore, tool: transfer, when: {to: {regex: "KY[0-9]+"}}, policy: deny}
        """
    }

    @Test func theConfigDeclaresWebhookToolsAndFetchLimits() throws {
        let config = try loadConfig(Self.config(receiver: "http://127.0.0.1:9"), environment: ["BANK_TOKEN": "s3cret"])
        let tool = try #require(config.webhookTools.first)
        #expect(tool.configuration.url == "http://127.0.0.1:9/transfer")
        #expect(tool.descriptor.flags == ToolFlags(effect: .write))
        #expect(tool.configuration.headers.map { "\($0.0)=\($0.1)" } == ["Authorization=s3cret", "X-Team=finance"])
        #expect(tool.configuration.timeout == 5)
        #expect(tool.summary(of: ["to": "DE1", "amount": 20]) == "Transfer 20 EUR to DE1")
        #expect(
            config.fetchLimits
                == HTTPFetchTool.Limits(
                    maxBytes: 1024, timeout: 2, maxRedirects: 2, allowedHosts: ["169.254.169.254"]))
        let agent = try #require(config.agents.first)
        #expect(agent.tools.map(\.descriptor.name) == ["transfer", "read_file"])
        #expect(
            agent.policy.rules.map(\.when) == [["amount": .range(min: 100.01, max: nil)], ["to": .regex("KY[0-9]+")]])
    }

    @Test(arguments: [
        (
            "webhook_tools: [{name: t, url: \"ftp://x\", effect: write}]",
            "webhook_tools[0].url: 'ftp://x' is not an http"
        ),
        ("webhook_tools: [{name: t, url: \"http://x\"}]", "webhook_tools[0]: missing key 'effect'"),
        ("webhook_tools: [{name: t, url: \"http://x\", effect: send}]", "unknown effect 'send'"),
        ("webhook_tools: [{name: read_file, url: \"http://x\", effect: read}]", "the name of a built-in tool"),
        (
            "webhook_tools: [{name: t, url: \"http://x\", effect: write, headers: {A: {env: NOPE_VAR}}}]",
            "the environment variable NOPE_VAR is not set"
        ),
        (
            "webhook_tools: [{name: t, url: \"http://x\", effect: write, schema: {type: string}}]",
            "the schema's type must be object"
        ),
        (
            "webhook_tools: [{name: t, url: \"http://x\", effect: write}, {name: t, url: \"http://y\", effect: read}]",
            "duplicate webhook tool name 't'"
        ),
        ("http_fetch: {max_bytes: 0}", "http_fetch.max_bytes: must be at least 1"),
        ("http_fetch: {timeout: fast}", "http_fetch.timeout: expected seconds"),
        (
            "agents: [{name: a, model: demo, policy: {rules: [{tool: write_file, when: {path: {regex: \"(\"}}, policy: auto}]}}]",
            "'(' is not a valid regular expression"
        ),
    ])
    func badWebhookAndFetchSectionsNameTheProblem(yaml: String, expected: String) throws {
        try expectConfigError(yaml, contains: expected)
    }

    /// Small transfers run at once; big ones wait for a person and reach the receiver
    /// with the confirmation id as Idempotency-Key; offshore ones never run.
    @Test func transfersThroughTheGate() async throws {
        let expected = ModelStubServer.ExpectedRequest(
            method: "POST", path: "/transfer", headers: ["authorization": "s3cret", "x-team": "finance"])
        try await ModelStubServer.with([
            .init(request: expected, response: .init(json: ["ok": true, "ref": "t1"])),
            .init(request: expected, response: .init(json: ["ok": true, "ref": "t2"])),
        ]) { bank in
            let config = try loadConfig(Self.config(receiver: bank.baseURL), environment: ["BANK_TOKEN": "s3cret"])
            var treasurer = try #require(config.agents.first)
            treasurer.model = ScriptedModel([
                .call(("transfer", ["to": "DE1", "amount": 20])),
                .reply("Sent 20.", expectLastToolResultContains: "t1"),
                .call(("transfer", ["to": "DE2", "amount": 5000])),
                .reply("Sent 5000.", expectLastToolResultContains: "t2"),
                .call(("transfer", ["to": "KY42", "amount": 1])),
                .reply("Refused.", expectLastToolResultContains: "Policy does not allow transfer (rule no-offshore)"),
            ])
            try await TestServer.with(agents: [treasurer]) { server in
                let client = server.client()
                let session = try await client.createSession(agent: "treasurer")["id"]!.string
                let small = try await client.send(sessionID: session, content: "pay DE1 20")
                #expect(small["status"] == "completed")
                #expect(bank.received.count == 1)
                #expect(bank.received[0].headers["idempotency-key"]?.hasPrefix("call_") == true)
                #expect(bank.received[0].json == ["to": "DE1", "amount": 20])

                let big = try await client.send(sessionID: session, content: "pay DE2 5000")
                #expect(big["status"] == "awaiting_confirmation")
                let confirmation = try #require(big["pending_confirmations"]?.arrayValue?.first)
                #expect(confirmation["policy"] == "rule")
                #expect(confirmation["rule_id"] == "big-transfers")
                #expect(confirmation["summary"] == "Transfer 5000 EUR to DE2")
                #expect(confirmation["tool_key"] == "webhook.transfer")
                #expect(bank.received.count == 1, "nothing is sent before a person approves")
                let decided = try await client.decide(confirmation["id"]!.string, approve: true)
                #expect(decided["run"]?["status"] == "completed")
                #expect(bank.received.count == 2)
                #expect(bank.received[1].headers["idempotency-key"] == confirmation["id"]?.stringValue)
                #expect(bank.received[1].headers["x-countersign-confirmation-id"] == confirmation["id"]?.stringValue)

                let offshore = try await client.send(sessionID: session, content: "pay KY42 1")
                #expect(offshore["status"] == "completed")
                #expect(bank.received.count == 2)
                try bank.assertConsumed()
            }
        }
    }
}
