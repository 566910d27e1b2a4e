import AgentRuntime
import Foundation
import GateCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Resolves tool paths inside a session's workspace. Absolute paths, `..` and
/// symbolic links that lead outside the workspace are refused.
///
/// The root is trusted as given (the server creates it under its data folder); only what
/// lies below it is checked, with one `lstat` per path component down to the first one
/// that does not exist. A component that is a symbolic link must resolve (`realpath`) to
/// a place inside the root's real location; a link that resolves nowhere is refused
/// too, as nothing proves where it leads. Resolving every ancestor of the root on each
/// call, as this once did, cost some twenty `newfstatat` calls per tool call.
public struct WorkspacePath: Sendable {
    public let root: URL

    public init(root: URL) {
        self.root = root.standardizedFileURL
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
        let resolved = try resolvePath(path, allowRoot: allowRoot)
        return resolved == root.path ? root : URL(fileURLWithPath: resolved, isDirectory: false)
    }

    /// ``resolve(_:allowRoot:)`` as a file-system path.
    public func resolvePath(_ path: String, allowRoot: Bool = false) throws -> String {
        let trimmed = path.trimmingWhitespace(includingNewlines: false)
        let rootPath = root.path
        if trimmed.isEmpty || trimmed == "." {
            if allowRoot { return rootPath }
            throw Problem.empty
        }
        if trimmed.hasPrefix("/") || trimmed.hasPrefix("~") { throw Problem.absolute(trimmed) }
        let components = trimmed.split(separator: "/" as Character, omittingEmptySubsequences: true)
        if components.contains("..") { throw Problem.escapes(trimmed) }
        var current = rootPath
        var realRoot: String?
        var probing = true
        for component in components where component != "." {
            current += "/"
            current += component
            guard probing else { continue }
            switch FileSystem.kind(at: current) {
            case .missing:
                // Nothing below a missing component exists either: what is created there
                // is created inside the root.
                probing = false
            case .symbolicLink:
                let inside = realRoot ?? FileSystem.realPath(rootPath) ?? rootPath
                realRoot = inside
                guard let target = FileSystem.realPath(current), target == inside || target.hasPrefix(inside + "/")
                else { throw Problem.escapes(trimmed) }
            case .other:
                continue
            }
        }
        if current == rootPath, !allowRoot { throw Problem.empty }
        return current
    }
}

/// The few POSIX file calls the file tools make directly.
enum FileSystem {
    enum Kind { case missing, symbolicLink, other }

    /// What is at `path`, without following a final symbolic link.
    static func kind(at path: String) -> Kind {
        var status = stat()
        guard lstat(path, &status) == 0 else { return .missing }
        return status.st_mode & S_IFMT == S_IFLNK ? .symbolicLink : .other
    }

    /// `path` with every symbolic link resolved; nil when it does not resolve.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    struct Failure: Error, CustomStringConvertible {
        var operation: String
        var path: String
        var code: Int32
        var description: String { "Could not \(operation) \(path): \(String(cString: strerror(code)))." }
    }

    /// Creates the folder at `path` and any missing ancestors (`mkdir -p`): one `mkdir`
    /// per missing folder and one more for the first that exists.
    static func makeFolders(_ path: String) throws {
        if mkdir(path, 0o777) == 0 || errno == EEXIST { return }
        guard errno == ENOENT, let slash = path.lastIndex(of: "/"), slash != path.startIndex else {
            throw Failure(operation: "create the folder", path: path, code: errno)
        }
        try makeFolders(String(path[..<slash]))
        if mkdir(path, 0o777) != 0, errno != EEXIST {
            throw Failure(operation: "create the folder", path: path, code: errno)
        }
    }

    /// Replaces (or creates) the file at `path` with `bytes`, atomically and durably: the
    /// bytes go to a new temporary file in the same folder, which is fsynced and then
    /// renamed over `path`. A reader sees the old file or the new one, never a part, and
    /// a crash leaves at most a stray temporary file. Missing parent folders are created.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        // The folder of `path` ("" for a file in "/", "." for a bare name).
        let folder = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let temporary = "\(folder)/.countersign-\(String(UInt64.random(in: .min ... .max), radix: 36)).tmp"
        var descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        if descriptor < 0, errno == ENOENT {
            try makeFolders(folder)
            descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        }
        guard descriptor >= 0 else { throw Failure(operation: "create a file in", path: folder, code: errno) }
        var failure: Failure?
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = Failure(operation: "write", path: path, code: errno)
                    return
                }
                offset += written
            }
        }
        if failure == nil, fsync(descriptor) != 0 { failure = Failure(operation: "sync", path: path, code: errno) }
        close(descriptor)
        if failure == nil, rename(temporary, path) != 0 {
            failure = Failure(operation: "replace", path: path, code: errno)
        }
        if let failure {
            unlink(temporary)
            throw failure
        }
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
            try FileSystem.writeAtomically(Array(content.utf8), to: try workspace(context).resolvePath(path))
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
            var existing = FileManager.default.contents(atPath: url.path) ?? Data()
            if !existing.isEmpty, existing.last != UInt8(ascii: "\n") { existing.append(UInt8(ascii: "\n")) }
            existing.append(contentsOf: Array((content + "\n").utf8))
            guard existing.count <= maxFileBytes else { return .failure("\(path) would exceed 1 MiB.") }
            try FileSystem.writeAtomically(Array(existing), to: url.path)
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
