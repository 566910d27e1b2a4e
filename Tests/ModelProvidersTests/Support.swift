import AgentRuntime
import CountersignTesting
import Foundation
import GateCore
import Logging
import Synchronization
import Testing

@testable import ModelProviders

/// Records every wait a provider asks for and returns at once: retries are tested
/// without waiting in real time.
final class RecordingSleeper: ProviderSleeper {
    private let waits = Mutex<[Duration]>([])

    func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        waits.withLock { $0.append(duration) }
    }

    var recorded: [Duration] { waits.withLock { $0 } }
}

/// Paces an idle watchdog by hand: until ``expire()`` every sleep blocks (until
/// cancelled), so a healthy stream never times out; after it every sleep returns at
/// once, so a stalled stream times out without waiting in real time.
final class ManualWatchdog: ProviderSleeper {
    private struct State {
        var expired = false
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        var cancelled: Set<Int> = []
        var nextID = 0
    }

    private let state = Mutex(State())

    func sleep(for duration: Duration) async throws {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate: Result<Void, any Error>? = state.withLock { state in
                    if state.cancelled.contains(id) { return .failure(CancellationError()) }
                    if state.expired { return .success(()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                let waiter = state.waiters.removeValue(forKey: id)
                if waiter == nil { state.cancelled.insert(id) }
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    func expire() {
        let waiters = state.withLock { state in
            state.expired = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// Collects the text deltas a model hands to `onToken`.
final class TokenRecorder: Sendable {
    private let deltas = Mutex<[String]>([])
    var onToken: @Sendable (String) async -> Void { { delta in self.deltas.withLock { $0.append(delta) } } }
    var all: [String] { deltas.withLock { $0 } }
}

enum Fixtures {
    static func cassette(_ name: String) throws -> ModelStubServer.Cassette {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"))
        return try ModelStubServer.Cassette.load(url)
    }
}

/// The tools of the tests, as the runtime describes them to a model.
let writeFileTool = ToolDescriptor(
    name: "write_file", description: "Create or replace a text file in the session workspace.",
    inputSchema: [
        "type": "object", "properties": ["path": ["type": "string"], "content": ["type": "string"]],
        "required": ["path", "content"],
    ], flags: ToolFlags(effect: .write))

let readFileTool = ToolDescriptor(
    name: "read_file", description: "Read a text file.",
    inputSchema: ["type": "object", "properties": ["path": ["type": "string"]], "required": ["path"]],
    flags: ToolFlags(effect: .read))

func transport(
    _ label: String, retry: RetryPolicy = RetryPolicy(), sleeper: RecordingSleeper = RecordingSleeper(),
    watchdog: ManualWatchdog = ManualWatchdog(), timeouts: ProviderTimeouts = ProviderTimeouts()
) -> ProviderTransport {
    var logger = Logger(label: "countersign.model.test")
    logger.logLevel = ProcessInfo.processInfo.environment["COUNTERSIGN_TEST_LOG"] == nil ? .critical : .debug
    return ProviderTransport(
        label: label, timeouts: timeouts, retry: retry, sleeper: sleeper, watchdogSleeper: watchdog, logger: logger)
}

func openAI(
    _ baseURL: String, key: String? = "sk-test-countersign", settings: ModelSettings = ModelSettings(),
    retry: RetryPolicy = RetryPolicy(), sleeper: RecordingSleeper = RecordingSleeper(),
    watchdog: ManualWatchdog = ManualWatchdog(), timeouts: ProviderTimeouts = ProviderTimeouts()
) -> OpenAIChatModel {
    OpenAIChatModel(
        name: "gpt-4.1-mini",
        provider: OpenAIProvider(
            baseURL: baseURL + "/v1", apiKey: key,
            transport: transport(
                "OpenAI-compatible provider at \(baseURL)/v1", retry: retry, sleeper: sleeper, watchdog: watchdog,
                timeouts: timeouts)),
        settings: settings)
}

func anthropic(
    _ baseURL: String, key: String = "sk-ant-test-countersign", settings: ModelSettings = ModelSettings(),
    retry: RetryPolicy = RetryPolicy(), sleeper: RecordingSleeper = RecordingSleeper(),
    watchdog: ManualWatchdog = ManualWatchdog()
) -> AnthropicModel {
    AnthropicModel(
        name: "claude-sonnet-4-20250514",
        provider: AnthropicProvider(
            baseURL: baseURL, apiKey: key,
            transport: transport("Anthropic provider at \(baseURL)", retry: retry, sleeper: sleeper, watchdog: watchdog)
        ),
        settings: settings)
}

/// Runs `body` and returns the CountersignError it throws.
func providerError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async
    -> CountersignError?
{
    do {
        try await body()
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return nil
    } catch let error as CountersignError {
        return error
    } catch {
        Issue.record("expected a CountersignError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

let system = "You keep the team's notes."
let userText = "Please write buy milk to notes/todo.txt"
