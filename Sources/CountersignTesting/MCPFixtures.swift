import Dispatch
import Foundation
import GateCore

/// Real MCP servers for tests: the PyPI packages `mcp`, `mcp-server-git` and
/// `mcp-server-time` (scripts/test installs them) and the scripts of `Tests/mcp/`.
public enum MCPFixtures {
    /// What to run when the packages are missing.
    public static let installHint = "python3 -m pip install mcp mcp-server-git mcp-server-time"

    /// Fails (with the command that fixes it) unless `python3` can import the packages.
    public static func requirePythonPackages() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import mcp, mcp_server_git, mcp_server_time"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
            process.waitUntilExit()
        } catch {
            throw CountersignError(.internal, "python3 is needed for the MCP tests (\(error)); then \(installHint)")
        }
        guard process.terminationStatus == 0 else {
            throw CountersignError(
                .internal,
                "The MCP tests need the Python packages mcp, mcp-server-git and mcp-server-time: \(installHint)")
        }
    }

    /// Runs `git` in `directory` and returns its standard output.
    @discardableResult
    public static func git(_ arguments: [String], in directory: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        process.currentDirectoryURL = directory
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CountersignError(.internal, "git \(arguments.joined(separator: " ")) failed")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// A throwaway git repository with one commit (`README.md`) and an identity.
    public static func gitRepository() throws -> URL {
        let directory = try TemporaryDirectory.create("mcp-git")
        try git(["init", "--quiet", "--initial-branch=main"], in: directory)
        try git(["config", "user.email", "tests@countersign.invalid"], in: directory)
        try git(["config", "user.name", "Countersign Tests"], in: directory)
        try Data("# Scratch\n".utf8).write(to: directory.appendingPathComponent("README.md"))
        try git(["add", "README.md"], in: directory)
        try git(["commit", "--quiet", "-m", "first"], in: directory)
        return directory
    }

    /// Whether a process with this id still exists (a zombie counts: it has not been
    /// reaped).
    public static func processExists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno != ESRCH
    }

    /// Polls `condition` until it holds or `timeout` passes; throws on timeout. For
    /// things that happen in another process, where there is nothing to await.
    public static func waitUntil(
        _ what: String, timeout: Duration = .seconds(20), _ condition: @Sendable () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        if try await condition() { return }
        throw CountersignError(.internal, "timed out after \(timeout) waiting until \(what)")
    }
}

/// A Streamable HTTP MCP server in a Python child process (a script of `Tests/mcp/`
/// run as `python3 SCRIPT http 127.0.0.1 PORT`, 0 for a free port), listening on the
/// port it prints.
public final class MCPHTTPServerProcess: @unchecked Sendable {
    public let process: Process
    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)/mcp" }

    private init(process: Process, port: Int) {
        self.process = process
        self.port = port
    }

    public static func launch(script: URL, port: Int = 0) async throws -> MCPHTTPServerProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, "http", "127.0.0.1", "\(port)"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let readFD = dup(output.fileHandleForReading.fileDescriptor)
        try process.run()
        let port: Int = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                defer { close(readFD) }
                var text = ""
                var buffer = [UInt8](repeating: 0, count: 1024)
                while true {
                    let count = read(readFD, &buffer, buffer.count)
                    if count < 0, errno == EINTR { continue }
                    guard count > 0 else {
                        continuation.resume(
                            throwing: CountersignError(.internal, "\(script.lastPathComponent) exited: \(text)"))
                        return
                    }
                    text += String(decoding: buffer[0..<count], as: UTF8.self)
                    if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("PORT ") }),
                        let port = Int(line.dropFirst(5))
                    {
                        continuation.resume(returning: port)
                        return
                    }
                }
            }
        }
        return MCPHTTPServerProcess(process: process, port: port)
    }

    /// SIGKILL, and wait until it has been reaped.
    public func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}
