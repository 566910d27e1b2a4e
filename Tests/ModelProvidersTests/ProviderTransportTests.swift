import AgentRuntime
import CountersignTesting
import Foundation
import GateCore
import Testing

@testable import ModelProviders

@Suite struct ProviderTransportTests {
    @Test func retriesHonourRetryAfterThenBackOffExponentially() async throws {
        try await ModelStubServer.with(try Fixtures.cassette("openai_retry_then_success").exchanges) { stub in
            let sleeper = RecordingSleeper()
            let model = openAI(
                stub.baseURL, retry: RetryPolicy(maxAttempts: 4, initialBackoff: .seconds(1), jitter: 0.25),
                sleeper: sleeper)
            let response = try await model.respond(
                to: ModelRequest(instructions: "", messages: [.user("hi")], tools: []), onToken: { _ in })
            #expect(response.text == "Hello there.")
            let waits = sleeper.recorded
            #expect(waits.count == 2)
            #expect(waits.first == .seconds(2))
            // Second try failed with 503 and no Retry-After: 1 s × 2, less up to 25 % jitter.
            #expect(waits.count == 2 && waits[1] >= .milliseconds(1500) && waits[1] <= .seconds(2))
            #expect(stub.received.count == 3)
            try stub.assertConsumed()
        }
    }

    @Test func anthropicOverloadedAndRateLimitedAreRetried() async throws {
        try await ModelStubServer.with(try Fixtures.cassette("anthropic_overloaded_then_success").exchanges) { stub in
            let sleeper = RecordingSleeper()
            let model = anthropic(
                stub.baseURL, retry: RetryPolicy(initialBackoff: .milliseconds(500)), sleeper: sleeper)
            let response = try await model.respond(
                to: ModelRequest(instructions: "", messages: [.user("hi")], tools: []), onToken: { _ in })
            #expect(response.text == "Hello there.")
            let waits = sleeper.recorded
            #expect(waits.count == 2)
            #expect(waits.first.map { $0 >= .milliseconds(375) && $0 <= .milliseconds(500) } == true)
            #expect(waits.last == .seconds(3))
            try stub.assertConsumed()
        }
    }

    @Test func givesUpAfterMaxAttemptsWithTheProvidersMessage() async throws {
        try await ModelStubServer.with(try Fixtures.cassette("openai_always_503").exchanges) { stub in
            let sleeper = RecordingSleeper()
            let error = await providerError {
                _ = try await openAI(stub.baseURL, retry: RetryPolicy(maxAttempts: 4), sleeper: sleeper).respond(
                    to: ModelRequest(instructions: "", messages: [.user("hi")], tools: []), onToken: { _ in })
            }
            #expect(error?.code == .unavailable)
            #expect(
                error?.message
                    == "The model provider (OpenAI-compatible provider at \(stub.baseURL)/v1) answered HTTP 503 after 4 "
                    + "attempts: The server is overloaded or not ready yet. (server_error)")
            #expect(sleeper.recorded.count == 3)
            try stub.assertConsumed()
        }
    }

    @Test func unauthorizedIsNotRetried() async throws {
        try await ModelStubServer.with(try Fixtures.cassette("openai_unauthorized").exchanges) { stub in
            let sleeper = RecordingSleeper()
            let error = await providerError {
                _ = try await openAI(stub.baseURL, key: "sk-wrong", sleeper: sleeper).respond(
                    to: ModelRequest(instructions: "", messages: [.user("hi")], tools: []), onToken: { _ in })
            }
            #expect(error?.message.contains("answered HTTP 401: Incorrect API key provided") == true)
            #expect(error?.details?["provider_status"] == 401)
            #expect(sleeper.recorded.isEmpty)
            try stub.assertConsumed()
        }
        try await ModelStubServer.with(try Fixtures.cassette("anthropic_unauthorized").exchanges) { stub in
            let error = await providerError {
                _ = try await anthropic(stub.baseURL, key: "sk-ant-wrong").respond(
                    to: ModelRequest(instructions: "", messages: [.user("hi")], tools: []), onToken: { _ in })
            }
            #expect(error?.message.contains("answered HTTP 401: invalid x-api-key (authentication_error)") == true)
            try stub.assertConsumed()
        }
    }

    @Test func connectionErrorsAreRetriedThenReported() async throws {
        // A port that was free a moment ago: nothing listens there.
        let port = try await ModelStubServer.with([]) { stub in stub.port }
        let sleeper = RecordingSleeper()
        let model = openAI(
            "http://127.0.0.1:\(port)", retry: RetryPolicy(maxAttempts: 3), sleeper: sleeper,
            timeouts: ProviderTimeouts(connect: .seconds(5)))
        let start = ContinuousClock.now
        let error = await providerError {
            _ = try await model.respond(
                to: ModelRequest(instructions: "", messages: [.user("hi")], tools: []), onToken: { _ in })
        }
        #expect(error?.message.hasPrefix("Could not reach the model provider (OpenAI-compatible provider at") == true)
        #expect(error?.message.contains("after 3 attempts") == true)
        #expect(sleeper.recorded.count == 2)
        // Each refused attempt fails at once; the waits between them are the policy's
        // (recorded, not slept, here). With the HTTP client's own retries, each attempt
        // took the whole 5 s connect timeout.
        #expect(ContinuousClock.now - start < .seconds(3))
    }

    @Test(arguments: ["openai_stall", "anthropic_stall"])
    func aStalledStreamEndsAtTheIdleTimeout(fixture: String) async throws {
        try await ModelStubServer.with(try Fixtures.cassette(fixture).exchanges) { stub in
            let watchdog = ManualWatchdog()
            let tokens = TokenRecorder()
            let request = ModelRequest(instructions: "", messages: [.user("hi")], tools: [])
            let task = Task {
                if fixture.hasPrefix("openai") {
                    return try await openAI(stub.baseURL, watchdog: watchdog).respond(
                        to: request, onToken: tokens.onToken)
                }
                return try await anthropic(stub.baseURL, watchdog: watchdog).respond(
                    to: request, onToken: tokens.onToken)
            }
            await stub.stalled()
            watchdog.expire()
            let error = await providerError { _ = try await task.value }
            #expect(error?.message.contains("sent nothing for 60 s in the middle of its answer") == true)
            try stub.assertConsumed()
        }
    }

    // MARK: Policy arithmetic

    @Test func backoffDoublesUpToTheCapAndJitterOnlyShortens() {
        let policy = RetryPolicy(
            maxAttempts: 8, initialBackoff: .milliseconds(500), maxBackoff: .seconds(3), maxRetryAfter: .seconds(10),
            jitter: 0.5)
        #expect(policy.delay(afterAttempt: 1, retryAfter: nil, random: 0) == .milliseconds(500))
        #expect(policy.delay(afterAttempt: 2, retryAfter: nil, random: 0) == .seconds(1))
        #expect(policy.delay(afterAttempt: 3, retryAfter: nil, random: 0) == .seconds(2))
        #expect(policy.delay(afterAttempt: 4, retryAfter: nil, random: 0) == .seconds(3))
        #expect(policy.delay(afterAttempt: 40, retryAfter: nil, random: 0) == .seconds(3))
        #expect(policy.delay(afterAttempt: 2, retryAfter: nil, random: 0.999_999) > .milliseconds(500))
        #expect(policy.delay(afterAttempt: 2, retryAfter: nil, random: 0.5) == .milliseconds(750))
        #expect(policy.delay(afterAttempt: 1, retryAfter: .seconds(7), random: 0.9) == .seconds(7))
        #expect(policy.delay(afterAttempt: 1, retryAfter: .seconds(3600), random: 0) == .seconds(10))
        #expect(RetryPolicy.isRetryable(status: 429) && RetryPolicy.isRetryable(status: 529))
        #expect(!RetryPolicy.isRetryable(status: 400) && !RetryPolicy.isRetryable(status: 401))
    }

    @Test func retryAfterHeaderForms() {
        #expect(RetryPolicy.retryAfter(headers: [("Retry-After", "2")]) == .seconds(2))
        #expect(RetryPolicy.retryAfter(headers: [("retry-after", "1.5")]) == .milliseconds(1500))
        #expect(
            RetryPolicy.retryAfter(headers: [("retry-after-ms", "250"), ("retry-after", "9")]) == .milliseconds(250))
        let now = Date(timeIntervalSince1970: 1_445_412_480)  // Wed, 21 Oct 2015 07:28:00 GMT
        #expect(
            RetryPolicy.retryAfter(headers: [("Retry-After", "Wed, 21 Oct 2015 07:28:30 GMT")], now: now)
                == .seconds(30))
        #expect(RetryPolicy.retryAfter(headers: [("Retry-After", "soon")]) == nil)
        #expect(RetryPolicy.retryAfter(headers: []) == nil)
    }

    @Test func toolNamesThatProvidersRefuseAreMappedBothWays() {
        let names = ToolNameMap(["git.status", "git_status", "read_file", "x y"])
        #expect(names.wire("read_file") == "read_file")
        #expect(names.wire("git_status") == "git_status")
        #expect(names.wire("git.status") == "git_status_2")
        #expect(names.local("git_status_2") == "git.status")
        #expect(names.wire("x y") == "x_y")
        #expect(names.local("unknown") == "unknown")
    }
}
