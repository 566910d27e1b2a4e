import Dispatch
import Foundation
import Logging
import Synchronization
import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A spawned stdio MCP server: the process, descriptors for its stdin and stdout, and
/// the last lines it wrote to stderr (for error messages). The process is always
/// reaped: Foundation's `Process` waits for it, and ``exit`` holds the status once it
/// has.
///
/// The descriptors the transport uses are our own duplicates (close-on-exec): Foundation
/// closes a pipe's handles when the child exits, and a descriptor number closed under a
/// transport could be reused by another file meanwhile.
final class MCPChildProcess: Sendable {
    /// Reads what the server writes (its stdout).
    let input: FileDescriptor
    /// Writes to the server (its stdin).
    let output: FileDescriptor
    let processID: Int32
    /// How the process ended, set once it has been reaped.
    let exit: OneShot<Ending>

    struct Ending: Sendable, CustomStringConvertible {
        /// The exit status, or the number of the signal that ended the process.
        var status: Int32
        var bySignal: Bool

        var description: String {
            bySignal ? "the process was killed by signal \(status)" : "the process exited with status \(status)"
        }
    }

    private let pipes: [Pipe]
    private let closed = Mutex(false)
    private let stderrTail: ErrorTail

    private init(process: Process, pipes: [Pipe], input: Int32, output: Int32, exit: OneShot<Ending>, tail: ErrorTail) {
        self.pipes = pipes
        self.input = FileDescriptor(rawValue: input)
        self.output = FileDescriptor(rawValue: output)
        processID = process.processIdentifier
        self.exit = exit
        stderrTail = tail
    }

    /// Spawns `argv`. argv[0] without a `/` is looked up on the `PATH` the child gets.
    static func launch(
        argv: [String], environment: [String: String], workingDirectory: String?, logger: Logger
    ) throws -> MCPChildProcess {
        ignoreBrokenPipes
        guard let command = argv.first else { throw MCPConnectionError("the command is empty") }
        var childEnvironment: [String: String] = [:]
        let own = ProcessInfo.processInfo.environment
        for name in MCPServerConfig.inheritedEnvironment { childEnvironment[name] = own[name] }
        childEnvironment.merge(environment) { _, configured in configured }
        guard let executable = resolve(command, path: childEnvironment["PATH"] ?? "", in: workingDirectory) else {
            throw MCPConnectionError("cannot find the command '\(command)' on PATH")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(argv.dropFirst())
        process.environment = childEnvironment
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        let exit = OneShot<Ending>()
        process.terminationHandler = { finished in
            exit.fulfil(
                Ending(status: finished.terminationStatus, bySignal: finished.terminationReason == .uncaughtSignal))
        }
        let input = fcntl(stdout.fileHandleForReading.fileDescriptor, F_DUPFD_CLOEXEC, 0)
        let output = fcntl(stdin.fileHandleForWriting.fileDescriptor, F_DUPFD_CLOEXEC, 0)
        let errors = fcntl(stderr.fileHandleForReading.fileDescriptor, F_DUPFD_CLOEXEC, 0)
        guard input >= 0, output >= 0, errors >= 0 else {
            for descriptor in [input, output, errors] where descriptor >= 0 { close(descriptor) }
            throw MCPConnectionError("cannot set up the pipes to '\(command)' (errno \(errno))")
        }
        do {
            try process.run()
        } catch {
            for descriptor in [input, output, errors] { close(descriptor) }
            throw MCPConnectionError("cannot start '\(executable)': \(error.localizedDescription)")
        }
        let tail = ErrorTail()
        // Blocking reads on a thread of their own until the child's stderr ends.
        DispatchQueue.global().async {
            defer { close(errors) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            var pending = ""
            while true {
                let count = read(errors, &buffer, buffer.count)
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                pending += String(decoding: buffer[0..<count], as: UTF8.self)
                while let newline = pending.firstIndex(where: \.isNewline) {
                    let line = String(pending[..<newline])
                    pending = String(pending[pending.index(after: newline)...])
                    guard !line.isEmpty else { continue }
                    logger.debug("MCP server stderr", metadata: ["command": "\(command)", "line": "\(line)"])
                    tail.append(String(line.prefix(500)))
                }
            }
            if !pending.isEmpty { tail.append(String(pending.prefix(500))) }
        }
        return MCPChildProcess(
            process: process, pipes: [stdin, stdout, stderr], input: input, output: output, exit: exit, tail: tail)
    }

    /// The last lines the server wrote to stderr.
    var recentErrorOutput: String { stderrTail.lines.suffix(5).joined(separator: "\n") }

    /// Stops the server: closes its stdin (an MCP stdio server exits at the end of its
    /// input), waits up to `grace`, then sends SIGKILL (not SIGTERM: a child started
    /// from async code can inherit a blocked SIGTERM), and waits until it has been
    /// reaped. Waiting is not cut short by cancellation: a shutdown must not leave a
    /// child behind. Call once the transport no longer uses the descriptors.
    func stop(grace: Duration) async {
        let first = closed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        if first {
            try? pipes[0].fileHandleForWriting.close()
            close(output.rawValue)
        }
        let exit = self.exit
        let pid = processID
        await Task.detached {
            if await exit.wait(atMost: grace) == nil {
                kill(pid, SIGKILL)
                _ = await exit.wait()
            }
        }.value
        if first {
            close(input.rawValue)
            // Foundation's own handles of all three pipes (those it has not closed).
            for pipe in pipes {
                try? pipe.fileHandleForReading.close()
                try? pipe.fileHandleForWriting.close()
            }
        }
    }

    /// A command name → an executable path: with a `/`, relative to the working
    /// directory; otherwise the first executable file of that name on `path`.
    static func resolve(_ command: String, path: String, in workingDirectory: String?) -> String? {
        if command.contains("/") {
            if command.hasPrefix("/") { return command }
            let base = workingDirectory ?? FileManager.default.currentDirectoryPath
            return URL(fileURLWithPath: base).appendingPathComponent(command).path
        }
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(command).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Writing to a server that has died must fail with EPIPE, not kill Countersign.
    private static let ignoreBrokenPipes: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()
}

/// The last lines a child wrote to stderr.
private final class ErrorTail: Sendable {
    private let kept = Mutex<[String]>([])

    func append(_ line: String) {
        kept.withLock { lines in
            lines.append(line)
            if lines.count > 20 { lines.removeFirst(lines.count - 20) }
        }
    }

    var lines: [String] { kept.withLock { $0 } }
}

/// Why a connection to an MCP server failed, in words for the log and the model.
struct MCPConnectionError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
