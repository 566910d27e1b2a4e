import AgentRuntime
import CountersignTesting
import Foundation
import GateCore
import Testing

@testable import ToolSources

typealias Stub = ModelStubServer

@Suite struct WebhookToolTests {
    static func invoice(_ url: String, timeout: TimeInterval = 10, maxResponseBytes: Int = 64 * 1024) -> WebhookTool {
        WebhookTool(
            WebhookTool.Configuration(
                name: "send_invoice", url: url, description: "Send an invoice.",
                inputSchema: ["type": "object", "properties": ["customer": ["type": "string"]]],
                flags: ToolFlags(effect: .write, idempotent: true), headers: [("Authorization", "Bearer t0ken")],
                timeout: timeout, maxResponseBytes: maxResponseBytes, summaryTemplate: "Invoice {customer} {amount} EUR"
            ))
    }

    /// The arguments are POSTed as JSON with the confirmation id as Idempotency-Key, the
    /// same on a retry of the same call, so the receiver can de-duplicate it.
    @Test func postsTheArgumentsWithTheConfirmationIDAsIdempotencyKey() async throws {
        let expected = Stub.ExpectedRequest(
            method: "POST", path: "/invoice",
            headers: [
                "idempotency-key": "conf_abc", "authorization": "Bearer t0ken", "content-type": "application/json",
                "x-countersign-call-id": "call_t", "x-countersign-session-id": "ses_t",
            ],
            body: ["customer": "acme", "amount": 250])
        try await Stub.with([
            .init(request: expected, response: .init(json: ["id": "inv_1", "status": "sent"])),
            .init(request: expected, response: .init(status: 409, json: ["error": "duplicate", "id": "inv_1"])),
        ]) { stub in
            let tool = Self.invoice("\(stub.baseURL)/invoice")
            #expect(tool.descriptor.toolKey == "webhook.send_invoice")
            #expect(tool.summary(of: ["customer": "acme", "amount": 250]) == "Invoice acme 250 EUR")
            let first = await tool.run(
                ["customer": "acme", "amount": 250], context: context(confirmationID: "conf_abc"))
            #expect(first.success)
            #expect(first.data?["body"]?["id"] == "inv_1")
            #expect(first.data?["status"] == 200)
            // A retry (after a crash, say) carries the same key; the receiver says so.
            let retry = await tool.run(
                ["customer": "acme", "amount": 250], context: context(confirmationID: "conf_abc"))
            #expect(!retry.success)
            #expect(retry.content.contains("HTTP 409"))
            try stub.assertConsumed()
        }
    }

    @Test func anUngatedCallUsesItsCallIDAsKey() async throws {
        try await Stub.with([
            .init(
                request: .init(path: "/invoice", headers: ["idempotency-key": "call_t"]),
                response: .init(text: "ok"))
        ]) { stub in
            let output = await Self.invoice("\(stub.baseURL)/invoice").run(
                [:], context: context())
            #expect(output == ToolOutput(success: true, content: "ok", data: ["status": 200]))
            #expect(stub.received.first?.headers["x-countersign-confirmation-id"] == nil)
            try stub.assertConsumed()
        }
    }

    @Test func errorsTimeoutsAndLargeAnswersAreToldNotThrown() async throws {
        try await Stub.with([
            .init(request: .init(path: "/fail"), response: .init(status: 500, text: "boom")),
            .init(request: .init(path: "/big"), response: .init(text: String(repeating: "x", count: 100))),
            .init(request: .init(path: "/slow"), response: .init(chunks: [], stall: true)),
        ]) { stub in
            let failed = await Self.invoice("\(stub.baseURL)/fail").run(
                [:], context: context(confirmationID: "conf_abc"))
            #expect(!failed.success)
            #expect(failed.content == "send_invoice answered HTTP 500: boom")

            let big = await Self.invoice("\(stub.baseURL)/big", maxResponseBytes: 10).run(
                [:], context: context(confirmationID: "conf_abc"))
            #expect(big.success)
            #expect(big.content == "xxxxxxxxxx\n[response truncated at 10 bytes]")

            let slow = await Self.invoice("\(stub.baseURL)/slow", timeout: 0.3).run(
                [:], context: context(confirmationID: "conf_abc"))
            #expect(!slow.success)
            #expect(slow.content.contains("did not answer within 0.3 s"))
            #expect(slow.content.contains("same Idempotency-Key"))
            try stub.assertConsumed()
        }
    }

    /// A receiver that is not running is the tool's failure at once: the HTTP client
    /// does not retry the refused connection for the whole connect timeout (5 s).
    @Test func aReceiverThatIsNotRunningFailsAtOnce() async throws {
        let port = try await Stub.with([]) { stub in stub.port }
        let start = ContinuousClock.now
        let down = await Self.invoice("http://127.0.0.1:\(port)/invoice", timeout: 30).run(
            [:], context: context(confirmationID: "conf_abc"))
        #expect(!down.success)
        #expect(ContinuousClock.now - start < .seconds(2), "\(down.content)")
    }
}

@Suite struct HTTPFetchLimitTests {
    @Test func bodiesAreCutAtMaxBytes() async throws {
        try await Stub.with([
            .init(
                request: .init(method: "GET", path: "/page"), response: .init(text: String(repeating: "a", count: 64)))
        ]) { stub in
            let output = await HTTPFetchTool(limits: .init(maxBytes: 16)).run(
                ["url": .string("\(stub.baseURL)/page")], context: context(confirmationID: "conf_abc"))
            #expect(output.success)
            #expect(output.content.hasPrefix("HTTP 200\n" + String(repeating: "a", count: 16) + "\n[truncated"))
            #expect(output.data?["truncated"] == true)
        }
    }

    @Test func everyRedirectHopIsCheckedAgain() async throws {
        try await Stub.with([
            .init(
                request: .init(method: "GET", path: "/go"),
                response: .init(status: 302, headers: ["Location": "/there"], text: "")),
            .init(request: .init(method: "GET", path: "/there"), response: .init(text: "arrived")),
            .init(
                request: .init(method: "GET", path: "/steal"),
                response: .init(
                    status: 302, headers: ["Location": "http://169.254.169.254/latest/meta-data/iam"], text: "")),
        ]) { stub in
            let followed = await HTTPFetchTool().run(
                ["url": .string("\(stub.baseURL)/go")], context: context(confirmationID: "conf_abc"))
            #expect(followed.content == "HTTP 200\narrived")
            #expect(followed.data?["url"] == .string("\(stub.baseURL)/there"))

            let stolen = await HTTPFetchTool().run(
                ["url": .string("\(stub.baseURL)/steal")], context: context(confirmationID: "conf_abc"))
            #expect(!stolen.success)
            #expect(stolen.content.contains("169.254.169.254"))
            #expect(stolen.content.contains("link-local"))
            try stub.assertConsumed()
        }
    }

    @Test func redirectsAreCapped() async throws {
        try await Stub.with([
            .init(request: .init(method: "GET", path: "/a"), response: .init(status: 301, headers: ["Location": "/b"])),
            .init(request: .init(method: "GET", path: "/b"), response: .init(status: 301, headers: ["Location": "/c"])),
        ]) { stub in
            let output = await HTTPFetchTool(limits: .init(maxRedirects: 1)).run(
                ["url": .string("\(stub.baseURL)/a")], context: context(confirmationID: "conf_abc"))
            #expect(!output.success)
            #expect(output.content.contains("stopped after 1 redirects"))
            try stub.assertConsumed()
        }
    }

    @Test func theServerItselfIsRefusedUnlessAllowed() async throws {
        try await Stub.with([
            .init(request: .init(method: "GET", path: "/health"), response: .init(text: "ok"))
        ]) { stub in
            let own = context(confirmationID: "conf_abc", serverPorts: [stub.port])
            for host in ["127.0.0.1", "localhost"] {
                let refused = await HTTPFetchTool().run(
                    ["url": .string("http://\(host):\(stub.port)/health")], context: own)
                #expect(!refused.success)
                #expect(refused.content.contains("is this Countersign server"), "\(refused.content)")
            }
            let allowed = await HTTPFetchTool(limits: .init(allowedHosts: ["127.0.0.1:\(stub.port)"])).run(
                ["url": .string("\(stub.baseURL)/health")], context: own)
            #expect(allowed.content == "HTTP 200\nok")
            try stub.assertConsumed()
        }
    }

    @Test func slowServersTimeOut() async throws {
        try await Stub.with([
            .init(request: .init(method: "GET", path: "/slow"), response: .init(chunks: ["partial"], stall: true))
        ]) { stub in
            let output = await HTTPFetchTool(limits: .init(timeout: 0.3)).run(
                ["url": .string("\(stub.baseURL)/slow")], context: context(confirmationID: "conf_abc"))
            #expect(!output.success)
            #expect(output.content.contains("took longer than 0.3 s"), "\(output.content)")
        }
    }

    @Test(arguments: [
        ("169.254.169.254", 80, "link-local"),
        ("[fe80::1]", 80, "link-local"),
        ("::ffff:169.254.1.1", 80, "link-local"),
        ("100.100.100.200", 80, "metadata"),
        ("metadata.google.internal", 80, "metadata"),
        ("0.0.0.0", 9, "not a routable"),
    ])
    func metadataAndLinkLocalAddressesAreRefused(host: String, port: Int, reason: String) {
        let refusal = FetchGuard.refusal(host: host, port: port, allowed: [], serverPorts: [])
        #expect(refusal?.contains(reason) == true, "\(refusal ?? "nil")")
        #expect(FetchGuard.refusal(host: host, port: port, allowed: [host.lowercased()], serverPorts: []) == nil)
    }

    @Test func ordinaryAddressesPass() {
        #expect(FetchGuard.refusal(host: "127.0.0.1", port: 9000, allowed: [], serverPorts: [8080]) == nil)
        #expect(FetchGuard.refusal(host: "93.184.216.34", port: 443, allowed: [], serverPorts: [443]) == nil)
        #expect(FetchGuard.refusal(host: "127.0.0.1", port: 8080, allowed: [], serverPorts: [8080]) != nil)
    }
}
