import AgentRuntime
import Foundation
import GateCore

/// Resolves tool paths inside a session's workspace. Absolute paths, `..` and
/// symbolic links that lead outside the workspace are refused.
public struct WorkspacePath: Sendable {
    public let root: URL

    public init(root: URL) {
        self.root = root.standardizedFileURL.resolvingSymlinksInPath()
    }

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case empty, absolute(String), escapes(String)
        public var description: String {
            switch self {
            case .empty: "The path is empty."
            case .absolute(let path): "Absolute paths are not allowed (\(path)); use a path inside the workspace."
            case .escapes(let path): "The path \(path) leads outside the session workspace."
            }
        }
    }

    /// The file URL for a relative path, after checking it stays inside the root.
    public func resolve(_ path: String, allowRoot: Bool = false) throws -> URL {
        let trimmed = path.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed == "." {
            if allowRoot { return root }
            throw Problem.empty
        }
        if trimmed.hasPrefix("/") || trimmed.hasPrefix("~") { throw Problem.absolute(trimmed) }
        let components = trimmed.split(separator: "/", omittingEmptySubsequences: true)
        if components.contains("..") { throw Problem.escapes(trimmed) }
        var url = root
        for component in components where component != "." { url.appendPathComponent(String(component)) }
        // Follow links of the deepest existing ancestor: it must stay inside the root.
        var existing = url
        while !FileManager.default.fileExists(atPath: existing.path), existing.path != root.path {
            existing.deleteLastPathComponent()
        }
        let real = existing.resolvingSymlinksInPath().path
        guard real == root.path || real.hasPrefix(root.path + "/") else { throw Problem.escapes(trimmed) }
        if FileManager.default.fileExists(atPath: url.path) {
            let target = url.resolvingSymlinksInPath().path
            guard target == root.path || target.hasPrefix(root.path + "/") else { throw Problem.escapes(trimmed) }
        }
        return url
    }
}

private func pathSchema(_ description: String, extra: [String: JSONValue] = [:], required: [String] = ["path"])
    -> JSONValue
{
    var properties: [String: JSONValue] = ["path": ["type": "string", "description": .string(description)]]
    for (key, value) in extra { properties[key] = value }
    return [
        "type": "object", "properties": .object(properties), "required": .array(required.map(JSONValue.string)),
        "additionalProperties": false,
    ]
}

private func workspace(_ context: ToolContext) -> WorkspacePath { WorkspacePath(root: context.workspace) }

/// Largest file the file tools read or write (1 MiB).
let maxFileBytes = 1 << 20

public struct ReadFileTool: Tool {
    public init() {}
    public let descriptor = ToolDescriptor(
        name: "read_file", description: "Read a text file from the session workspace.",
        inputSchema: pathSchema("Path relative to the workspace."), flags: ToolFlags(effect: .read, idempotent: true),
        toolKey: "files.read")

    public func summary(of params: JSONValue) -> String { "Read \(params["path"]?.stringValue ?? "?")" }

    public func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput {
        await BlockingIO.run { perform(params, context: context) }
    }

    /// The tool's file-system work; it blocks its thread (see ``BlockingIO``).
    func perform(_ params: JSONValue, context: ToolContext) -> ToolOutput {
        let path = params["path"]?.stringValue ?? ""
        do {
            let url = try workspace(context).resolve(path)
            guard let data = FileManager.default.contents(atPath: url.path) else {
                return .failure("No file at \(path).")
            }
            guard data.count <= maxFileBytes else { return .failure("\(path) is larger than 1 MiB.") }
            let text = String(decoding: data, as: UTF8.self)
            return ToolOutput(success: true, content: text, data: ["path": .string(path), "content": .string(text)])
        } catch {
            return .failure("\(error)")
        }
    }
}

public struct ListFilesTool: Tool {
    public init() {}
    public let descriptor = ToolDescriptor(
        name: "list_files", description: "List the files and folders of a folder in the session workspace.",
        inputSchema: pathSchema("Folder relative to the workspace; empty for the root.", required: []),
        flags: ToolFlags(effect: .read, idempotent: true), toolKey: "files.list")

    public func summary(of params: JSONValue) -> String { "List \(params["path"]?.stringValue ?? ".")" }

    public func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput {
        await BlockingIO.run { perform(params, context: context) }
    }

    /// The tool's file-system work; it blocks its thread (see ``BlockingIO``).
    func perform(_ params: JSONValue, context: ToolContext) -> ToolOutput {
        let path = params["path"]?.stringValue ?? ""
        do {
            let url = try workspace(context).resolve(path, allowRoot: true)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue
            else { return .failure("No folder at \(path.isEmpty ? "." : path).") }
            let names = try FileManager.default.contentsOfDirectory(atPath: url.path).sorted().map { name in
                var isDir: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path, isDirectory: &isDir)
                return isDir.boolValue ? name + "/" : name
            }
            return ToolOutput(
                success: true, content: names.isEmpty ? "(empty)" : names.joined(separator: "\n"),
                data: ["entries": .array(names.map(JSONValue.string))])
        } catch {
            return .failure("\(error)")
        }
    }
}

public struct WriteFileTool: Tool {
    public init() {}
    public let descriptor = ToolDescriptor(
        name: "write_file", description: "Create or replace a text file in the session workspace.",
        inputSchema: pathSchema(
            "Path relative to the workspace.", extra: ["content": ["type": "string"]], required: ["path", "content"]),
        flags: ToolFlags(effect: .write, idempotent: true), toolKey: "files.write")

    public func summary(of params: JSONValue) -> String {
        let content = params["content"]?.stringValue ?? ""
        return "Write \(content.utf8.count) bytes to \(params["path"]?.stringValue ?? "?")"
    }

    public func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput {
        await BlockingIO.run { perform(params, context: context) }
    }

    /// The tool's file-system work; it blocks its thread (see ``BlockingIO``).
    func perform(_ params: JSONValue, context: ToolContext) -> ToolOutput {
        let path = params["path"]?.stringValue ?? ""
        let content = params["content"]?.stringValue ?? ""
        guard content.utf8.count <= maxFileBytes else { return .failure("The content is larger than 1 MiB.") }
        do {
            let url = try workspace(context).resolve(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(content.utf8).write(to: url, options: .atomic)
            return ToolOutput(
                success: true, content: "Wrote \(content.utf8.count) bytes to \(path).",
                data: ["path": .string(path), "bytes": .int(Int64(content.utf8.count))])
        } catch {
            return .failure("\(error)")
        }
    }
}

public struct AppendFileTool: Tool {
    public init() {}
    public let descriptor = ToolDescriptor(
        name: "append_file", description: "Append a line of text to a file in the session workspace.",
        inputSchema: pathSchema(
            "Path relative to the workspace.", extra: ["content": ["type": "string"]], required: ["path", "content"]),
        flags: ToolFlags(effect: .write, idempotent: false), toolKey: "files.append")

    public func summary(of params: JSONValue) -> String {
        "Append a line to \(params["path"]?.stringValue ?? "?"): \(params["content"]?.stringValue ?? "")"
    }

    public func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput {
        await BlockingIO.run { perform(params, context: context) }
    }

    /// The tool's file-system work; it blocks its thread (see ``BlockingIO``).
    func perform(_ params: JSONValue, context: ToolContext) -> ToolOutput {
        let path = params["path"]?.stringValue ?? ""
        let content = params["content"]?.stringValue ?? ""
        do {
            let url = try workspace(context).resolve(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            var existing = FileManager.default.contents(atPath: url.path) ?? Data()
            if !existing.isEmpty, existing.last != UInt8(ascii: "\n") { existing.append(UInt8(ascii: "\n")) }
            existing.append(contentsOf: Array((content + "\n").utf8))
            guard existing.count <= maxFileBytes else { return .failure("\(path) would exceed 1 MiB.") }
            try existing.write(to: url, options: .atomic)
            return ToolOutput(success: true, content: "Appended a line to \(path).", data: ["path": .string(path)])
        } catch {
            return .failure("\(error)")
        }
    }
}

public struct DeleteFileTool: Tool {
    public init() {}
    public let descriptor = ToolDescriptor(
        name: "delete_file", description: "Delete a file from the session workspace.",
        inputSchema: pathSchema("Path relative to the workspace."),
        flags: ToolFlags(effect: .destructive, idempotent: false), toolKey: "files.delete")

    public func summary(of params: JSONValue) -> String { "Delete \(params["path"]?.stringValue ?? "?")" }

    public func run(_ params: JSONValue, context: ToolContext) async -> ToolOutput {
        await BlockingIO.run { perform(params, context: context) }
    }

    /// The tool's file-system work; it blocks its thread (see ``BlockingIO``).
    func perform(_ params: JSONValue, context: ToolContext) -> ToolOutput {
        let path = params["path"]?.stringValue ?? ""
        do {
            let url = try workspace(context).resolve(path)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                return .failure("No file at \(path).")
            }
            guard !isDirectory.boolValue else { return .failure("\(path) is a folder; only files can be deleted.") }
            try FileManager.default.removeItem(at: url)
            return ToolOutput(success: true, content: "Deleted \(path).", data: ["path": .string(path)])
        } catch {
            return .failure("\(error)")
        }
    }
}

/// The built-in file tools, in the order the demo agent lists them.
public enum WorkspaceFiles {
    public static var tools: [any Tool] {
        [ReadFileTool(), ListFilesTool(), WriteFileTool(), AppendFileTool(), DeleteFileTool()]
    }
}
