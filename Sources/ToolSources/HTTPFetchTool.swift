import AgentRuntime
import AsyncHTTPClient
import Foundation
import GateCore
import NIOCore

/// `http_fetch`: GET a URL and return its text. Its output comes from outside, so the
/// tool is `openWorld` and taints the session.
public struct HTTPFetchTool: Tool {
    public var maxBytes: Int
    public var timeout: TimeAmount

    public init(maxBytes: Int = 256 * 1024, timeout: TimeAmount = .seconds(10)) {
        self.maxBytes = maxBytes
        self.timeout = timeout
    }

    public let descriptor = ToolDescriptor(
        name: "http_fetch", description: "Fetch a web page or API response over HTTP(S) with GET.",
        inputSchema: [
            "type": "object", "properties": ["url": ["type": "string", "description": "http:// or https:// URL"]],
            "required": ["url"], "additionalProperties": false,
        ],
        flags: ToolFlags(effect: .read, openWorld: true, idempotent: true), toolKey: "http.fetch")

    public func summary(of params: JSONValue) -> String { "Fetch \(params["url"]?.stringValue ?? "?")" }

    public func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput {
        let url = params["url"]?.stringValue ?? ""
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
            ["http", "https"].contains(scheme),
            let host = parsed.host
        else { return .failure("Only http:// and https:// URLs can be fetched.") }
        if host.hasPrefix("169.254.") || host == "metadata.google.internal" {
            return .failure("Fetching link-local metadata addresses is not allowed.")
        }
        do {
            var request = HTTPClientRequest(url: url)
            request.method = .GET
            request.headers.add(name: "User-Agent", value: "countersign-http-fetch/1")
            let response = try await HTTPClient.shared.execute(request, timeout: timeout)
            let body = try await response.body.collect(upTo: maxBytes)
            let text = String(buffer: body)
            return ToolOutput(
                success: (200..<300).contains(Int(response.status.code)),
                content: "HTTP \(response.status.code)\n\(text)",
                data: ["status": .int(Int64(response.status.code)), "url": .string(url)])
        } catch {
            return .failure("Fetching \(url) failed: \(error)")
        }
    }
}
