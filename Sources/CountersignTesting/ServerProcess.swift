import Dispatch
import Foundation
import GateCore

/// A `countersign serve` child process, for tests that need a real crash: start it,
/// SIGKILL it, start it again on the same database.
public final class ServerProcess: @unchecked Sendable {
    public let process: Process
    public let port: Int
    public let output: Pipe

    /// The `countersign` executable next to the test bundle (SwiftPM builds it into the
    /// same products folder), or `COUNTERSIGN_BIN`.
    public static func binary() -> URL {
        if let path = ProcessInfo.processInfo.environment["COUNTERSIGN_BIN"] { return URL(fileURLWithPath: path) }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        if directory.lastPathComponent.hasSuffix(".xctest") { directory.deleteLastPathComponent() }
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("countersign")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: ".build/debug/countersign")
    }

    private init(process: Process, port: Int, output: Pipe) {
        self.process = process
        self.port = port
        self.output = output
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Starts `countersign serve --port 0 --database sqlite:<database> <extra>` and
    /// returns once it prints the address it listens on.
    public static func launch(
        database: String, extra: [String] = [], environment extraEnvironment: [String: String] = [:]
    )
        async throws -> ServerProcess
    {
        let process = Process()
        process.executableURL = binary()
        process.arguments = ["serve", "--port", "0", "--database", "sqlite:\(database)"] + extra
        var environment = ProcessInfo.processInfo.environment
        environment["COUNTERSIGN_LOG_LEVEL"] = "warning"
        environment["COUNTERSIGN_FAILPOINTS"] = nil
        for (name, value) in extraEnvironment { environment[name] = value }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let once = ResumeOnce()
        // Our own descriptor for the read end: Foundation closes the pipe's handles when
        // the child exits, and reading a closed FileHandle crashes.
        let readFD = dup(output.fileHandleForReading.fileDescriptor)
        let port: Int = try await withCheckedThrowingContinuation { continuation in
            // A server that dies before it listens (a failpoint during recovery, a bad
            // flag) must not leave us waiting for a line that never comes.
            process.terminationHandler = { process in
                once.run {
                    continuation.resume(
                        throwing: CountersignError(
                            .internal, "countersign exited (status \(process.terminationStatus)) before listening"))
                }
            }
            do {
                try process.run()
            } catch {
                once.run { continuation.resume(throwing: error) }
                return
            }
            DispatchQueue.global().async {
                defer { close(readFD) }
                var text = ""
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = read(readFD, &buffer, buffer.count)
                    if count < 0, errno == EINTR { continue }
                    let data = count > 0 ? Data(buffer[0..<count]) : Data()
                    if data.isEmpty {
                        once.run {
                            continuation.resume(
                                throwing: CountersignError(.internal, "countersign exited before listening: \(text)"))
                        }
                        return
                    }
                    text += String(decoding: data, as: UTF8.self)
                    if let range = text.range(of: "Countersign listening on http://127.0.0.1:"),
                        let end = text[range.upperBound...].firstIndex(of: "\n"),
                        let port = Int(text[range.upperBound..<end])
                    {
                        once.run { continuation.resume(returning: port) }
                        return
                    }
                }
            }
        }
        return ServerProcess(process: process, port: port, output: output)
    }

    /// SIGKILL: no shutdown code runs.
    public func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then waits for the process to exit; SIGKILL after `timeout` seconds (a
    /// test then sees `terminationReason == .uncaughtSignal`).
    public func terminate(timeout: Double = 10) {
        guard process.isRunning else { return }
        let pid = process.processIdentifier
        Foundation.kill(pid, SIGTERM)
        let watchdog = DispatchWorkItem { [process] in
            if process.isRunning { Foundation.kill(pid, SIGKILL) }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        process.waitUntilExit()
        watchdog.cancel()
    }

    deinit {
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
        }
    }
}

/// Runs a closure at most once, from any thread.
final class ResumeOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false

    func run(_ body: () -> Void) {
        lock.lock()
        let first = !done
        done = true
        lock.unlock()
        if first { body() }
    }
}

/// Reads a file descriptor to its end and closes it.
public func readAll(_ fd: Int32) -> Data {
    defer { close(fd) }
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = read(fd, &buffer, buffer.count)
        if count < 0, errno == EINTR { continue }
        if count <= 0 { return data }
        data.append(contentsOf: buffer[0..<count])
    }
}
