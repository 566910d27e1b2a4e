import Foundation
import Logging
import MCP

/// The MCP SDK's `StdioTransport` over the pipes of a spawned server. Its message
/// stream stays open until `disconnect()`, even after the server's stdout ended: the
/// SDK's client reads `receive()` again in a loop when a stream finishes, and the
/// supervisor learns that the server is gone from the process's exit instead.
actor ChildProcessTransport: Transport {
    nonisolated let logger: Logger
    private let inner: StdioTransport
    private let messages: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    private var pump: Task<Void, Never>?
    /// Once disconnected, never connected again (the descriptors are about to close).
    private var disconnected = false

    init(child: MCPChildProcess, logger: Logger) {
        // The SDK logs routine events (such as the end of a server's output) as notices;
        // they are shown only when the operator asks for debug logs.
        var quieter = logger
        if quieter.logLevel > .debug { quieter.logLevel = max(quieter.logLevel, .warning) }
        self.logger = quieter
        inner = StdioTransport(input: child.input, output: child.output, logger: quieter)
        (messages, continuation) = AsyncThrowingStream<Data, any Error>.makeStream()
    }

    func connect() async throws {
        guard !disconnected else { throw MCPError.connectionClosed }
        try await inner.connect()
        let stream = await inner.receive()
        let continuation = self.continuation
        pump = Task {
            do {
                for try await message in stream { continuation.yield(message) }
            } catch {
                // The stream ends; the process exit tells the supervisor why.
            }
        }
    }

    func disconnect() async {
        disconnected = true
        await inner.disconnect()
        pump?.cancel()
        pump = nil
        continuation.finish()
    }

    func send(_ data: Data) async throws {
        try await inner.send(data)
    }

    nonisolated func receive() -> AsyncThrowingStream<Data, any Error> { messages }
}
