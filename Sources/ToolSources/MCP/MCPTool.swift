import AgentRuntime
import Foundation
import GateCore
import MCP

/// A tool of an MCP server, as the agent sees it: named `<server>.<tool>`, keyed
/// `mcp.<server>.<tool>`, with flags from the tool's annotations. Running it sends
/// `tools/call` through the server's connection.
public struct MCPTool: AgentRuntime.Tool {
    public let descriptor: ToolDescriptor
    /// The name the server knows the tool by.
    public let remoteName: String
    public let serverName: String
    let connection: MCPServerConnection

    init(_ tool: MCP.Tool, server: String, connection: MCPServerConnection) {
        remoteName = tool.name
        serverName = server
        self.connection = connection
        var description = tool.description ?? tool.annotations.title ?? tool.title ?? ""
        if description.isEmpty { description = "\(tool.name) (MCP server \(server))" }
        descriptor = ToolDescriptor(
            name: "\(server).\(tool.name)", description: description, inputSchema: JSONValue(tool.inputSchema),
            flags: Self.flags(tool.annotations), toolKey: "mcp.\(server).\(tool.name)")
    }

    /// MCP tool annotations → gate flags. The MCP defaults apply to absent hints
    /// (`readOnlyHint` false, `destructiveHint` true, `idempotentHint` false,
    /// `openWorldHint` true), so a tool that says nothing is treated as destructive and
    /// open-world — the careful reading of "may do anything":
    /// - `readOnlyHint: true` → effect `read` (the other hints about writing are moot);
    /// - otherwise `destructiveHint` true or absent → `destructive`, false → `write`;
    /// - `idempotent` = `idempotentHint ?? false` (a read-only tool counts as idempotent);
    /// - `openWorld` = `openWorldHint ?? true`.
    public static func flags(_ annotations: MCP.Tool.Annotations) -> ToolFlags {
        let readOnly = annotations.readOnlyHint ?? false
        let effect: ToolEffect = readOnly ? .read : (annotations.destructiveHint ?? true) ? .destructive : .write
        return ToolFlags(
            effect: effect, openWorld: annotations.openWorldHint ?? true,
            idempotent: readOnly || (annotations.idempotentHint ?? false))
    }

    public func summary(of params: JSONValue) -> String {
        let arguments = params.objectValue?.isEmpty == false ? " with \(params.canonicalString)" : ""
        return "Call \(remoteName) on the MCP server \(serverName)\(arguments)"
    }

    public func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput {
        await connection.call(remoteName, arguments: params, confirmationID: context.confirmationID)
    }
}

extension ToolOutput {
    /// A `tools/call` result as a tool output: the text of the content blocks (other
    /// kinds are described in one line), `isError` → failure.
    init(mcpContent content: [MCP.Tool.Content], isError: Bool?) {
        var parts: [String] = []
        for block in content {
            switch block {
            case .text(let text, _, _):
                parts.append(text)
            case .image(_, let mimeType, _, _):
                parts.append("[image, \(mimeType)]")
            case .audio(_, let mimeType, _, _):
                parts.append("[audio, \(mimeType)]")
            case .resource(let resource, _, _):
                parts.append(resource.text ?? "[resource \(resource.uri)]")
            case .resourceLink(let uri, let name, _, _, _, _):
                parts.append("[resource link \(name): \(uri)]")
            }
        }
        self.init(success: !(isError ?? false), content: parts.joined(separator: "\n"))
    }
}
