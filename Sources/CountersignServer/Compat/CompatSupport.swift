import AgentRuntime
import Crypto
import Foundation
import GateCore
import HTTPTypes
import Hummingbird
import NIOCore

/// The five seed wire formats of SPEC §7, served beside the native API (docs/compat.md).
/// Each door translates its requests onto the same engine, store and access rules as the
/// native API: no second gate, no second store.
struct CompatDoors {
    let store: any Store
    let engine: RunEngine
    let access: AccessControl
    let configuration: ServerConfiguration

    /// `v1` is the native `/v1` group with its authentication; the Mixpeek-style door
    /// (seed 000) lives under it. The other doors authenticate in their own shapes.
    func register(on router: Router<AppRequestContext>, v1: RouterGroup<AppRequestContext>) {
        let kit = CompatKit(store: store, engine: engine, access: access, configuration: configuration)
        MixpeekController(kit: kit).register(on: v1)
        ChatController(kit: kit).register(on: router)
        OpenHandsController(kit: kit).register(on: router)
        SigmicController(kit: kit).register(on: router)
        MurphController(kit: kit).register(on: router)
    }
}

/// What the doors share: authentication with API keys, bodies, sessions, batch
/// decisions, tool results from the log and ids in the shapes the formats need.
struct CompatKit: Sendable {
    let store: any Store
    let engine: RunEngine
    let access: AccessControl
    let configuration: ServerConfiguration

    var clock: any WallClock { configuration.clock }
    var stream: CompatStream {
        CompatStream(store: store, notifier: engine.notifier, heartbeat: configuration.heartbeat)
    }

    // MARK: Authentication

    enum Authentication: Sendable {
        case identified(Identity)
        /// No key was sent.
        case missing
        /// A key was sent but is malformed, unknown, revoked or expired.
        case invalid
        /// `X-Namespace` names a namespace the key does not belong to.
        case otherNamespace
    }

    /// `Authorization: Bearer sk_…` (or the key in `keyHeader`, when given), checked
    /// like the native ``AuthMiddleware`` does, with `X-Namespace` (id or name).
    func authenticate(_ request: Request, keyHeader: HTTPField.Name? = nil) async throws -> Authentication {
        var presented: String?
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " " as Character, maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else { return .invalid }
            presented = parts[1].trimmingWhitespace(includingNewlines: false)
        } else if let keyHeader, let value = request.headers[keyHeader] {
            presented = value.trimmingWhitespace(includingNewlines: false)
        }
        guard let presented, !presented.isEmpty else { return .missing }
        guard let key = try await APIKeys.verify(presented, store: store, now: clock.now()) else { return .invalid }
        return try await identify(key, namespaceHeader: request.headers[.namespace])
    }

    func identify(_ key: APIKey, namespaceHeader: String?) async throws -> Authentication {
        if let wanted = namespaceHeader, !wanted.isEmpty {
            guard let namespace = try await store.namespace(idOrName: wanted), namespace.id == key.namespaceID else {
                return .otherNamespace
            }
        }
        return .identified(
            Identity(actor: key.actor, role: key.role, namespaceID: key.namespaceID, keyPrefix: key.prefix))
    }

    // MARK: Bodies

    /// The raw body, at most `maxBodyBytes` (`too_large` beyond).
    func body(_ request: Request) async throws -> Data {
        do {
            let buffer = try await request.body.collect(upTo: configuration.maxBodyBytes)
            return Data(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw CountersignError(
                .tooLarge, "The request body is larger than \(configuration.maxBodyBytes) bytes.")
        }
    }

    /// The body as a JSON object: nil when the body is empty or not a JSON object.
    func jsonObject(_ request: Request) async throws -> [String: JSONValue]? {
        let data = try await body(request)
        guard !data.isEmpty, case .object(let members) = try? JSONValue.parse(data) else { return nil }
        return members
    }

    /// Checks a message text the way the native message endpoint does.
    func validMessage(_ text: String) -> Bool {
        !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            && text.count <= configuration.maxMessageCharacters
    }

    // MARK: Sessions and confirmations

    /// A new session of the caller, with the agent named or the configured compat agent.
    func createSession(for identity: Identity, agent: String?, metadata: JSONValue) async throws -> Session {
        try await engine.createSession(
            namespaceID: identity.namespaceID, actor: identity.actor, agent: agent ?? configuration.compatAgent,
            metadata: metadata)
    }

    /// The session's confirmations, oldest first: every status, or only `status`.
    func confirmations(of session: Session, status: ConfirmationStatus? = nil) async throws -> [Confirmation] {
        var all: [Confirmation] = []
        var after: String?
        while true {
            let page = try await store.confirmations(
                namespaceID: session.namespaceID,
                filter: ConfirmationFilter(status: status, sessionID: session.id, afterID: after, limit: 500))
            all.append(contentsOf: page)
            guard page.count == 500, let last = page.last else { return all }
            after = last.id
        }
    }

    /// What a batch decision came to.
    struct BatchOutcome: Sendable {
        var decided: [Confirmation] = []
        /// Confirmations that could not be decided: decided meanwhile, or expired.
        var failed: [(confirmation: Confirmation, error: CountersignError)] = []
        /// The run, driven on by the decision that settled the last open confirmation.
        var resumed: RunHandle?
        /// The session's last seq before the first decision.
        var startSeq: Int64 = 0
    }

    /// Decides every pending confirmation of `session`, oldest first, each atomically
    /// through the engine (the chat API's confirm, OpenHands' accept). The caller must be
    /// allowed to decide all of them before any is decided.
    func decideAll(in session: Session, by identity: Identity, _ request: DecisionRequest) async throws
        -> BatchOutcome
    {
        let pending = try await confirmations(of: session, status: .pending)
        for confirmation in pending { _ = try await access.decidable(confirmation.id, for: identity) }
        var outcome = BatchOutcome()
        outcome.startSeq = try await store.session(id: session.id)?.lastSeq ?? session.lastSeq
        for confirmation in pending {
            do {
                let result = try await engine.decide(
                    confirmationID: confirmation.id, request: request, by: identity)
                outcome.decided.append(result.confirmation)
                if let handle = result.resumed { outcome.resumed = handle }
            } catch let error as CountersignError where error.code == .alreadyDecided || error.code == .expired {
                outcome.failed.append((confirmation, error))
            }
        }
        return outcome
    }

    /// The `tool.result` data of the calls of `confirmationIDs`, from the log after `after`.
    func toolResults(sessionID: String, after: Int64, confirmationIDs: Set<String>) async throws
        -> [String: JSONValue]
    {
        var results: [String: JSONValue] = [:]
        var cursor = after
        while true {
            let page = try await store.events(sessionID: sessionID, after: cursor, limit: 500)
            for event in page where event.type == EventType.toolResult {
                if let id = event.data["confirmation_id"]?.stringValue, confirmationIDs.contains(id) {
                    results[id] = event.data
                }
            }
            guard page.count == 500, let last = page.last else { return results }
            cursor = last.seq
        }
    }

    /// Whether the session's agent still runs on this server (a decision on a session
    /// whose agent is gone could not be carried out).
    func agentAvailable(for session: Session) -> Bool {
        engine.agents[session.agent] != nil
    }

    /// Whether approving `confirmation` with `remember: session` would record a grant.
    func grantAllowed(for confirmation: Confirmation, in session: Session) -> Bool {
        guard let agent = engine.agents[session.agent], let tool = agent.tool(named: confirmation.toolName) else {
            return false
        }
        return agent.policy.allowsGrant(toolName: tool.descriptor.name, flags: tool.descriptor.flags)
    }

    // MARK: Ids

    /// The UUID that stands for `localID` on a door, bound in the store so that it can
    /// be resolved later (the same UUID every time).
    func externalID(kind: String, for localID: String, namespaceID: String) async throws -> String {
        let binding = try await store.bindCompatID(
            CompatIDBinding(
                kind: kind, externalID: CompatUUID.derive(kind: kind, localID: localID), localID: localID,
                namespaceID: namespaceID, createdAt: clock.now()))
        return binding.externalID
    }

    /// The Countersign id a door's UUID stands for, when it is bound in `namespaceID`.
    func localID(kind: String, externalID: String, namespaceID: String) async throws -> String? {
        guard let binding = try await store.compatID(kind: kind, externalID: externalID),
            binding.namespaceID == namespaceID
        else { return nil }
        return binding.localID
    }
}

/// UUIDs for the doors whose ids must be UUIDs (OpenHands conversations, Murph
/// confirmations): derived from the Countersign id (SHA-256, RFC 9562 version 8), so a
/// session or confirmation always shows the same UUID; the store binds it back.
enum CompatUUID {
    static func derive(kind: String, localID: String) -> String {
        var bytes = Array(SHA256.hash(data: Data("countersign.compat.v1|\(kind)|\(localID)".utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return format(bytes)
    }

    /// The canonical (lowercase, hyphenated) form of a UUID written hyphenated or as 32
    /// hex digits; nil when `text` is not a UUID.
    static func canonical(_ text: String) -> String? {
        let hex = Array(text.lowercased().filter { $0 != "-" })
        let hyphens = text.filter { $0 == "-" }.count
        guard hex.count == 32, hyphens == 0 || (hyphens == 4 && text.count == 36),
            hex.allSatisfy({ $0.isHexDigit })
        else { return nil }
        if hyphens == 4 {
            let dashes = text.enumerated().filter { $0.element == "-" }.map(\.offset)
            guard dashes == [8, 13, 18, 23] else { return nil }
        }
        var bytes: [UInt8] = []
        var index = 0
        while index < 32 {
            guard let byte = UInt8(String(hex[index..<index + 2]), radix: 16) else { return nil }
            bytes.append(byte)
            index += 2
        }
        return format(bytes)
    }

    static func format(_ bytes: [UInt8]) -> String {
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let characters = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }
}

/// SSE frames of the doors: `event:` and one JSON `data:` line (the Sigmic client reads
/// exactly these two lines first), then `id:` when the door supports resuming.
enum SSEFrame {
    static func make(_ event: String, _ data: JSONValue, id: Int64? = nil) -> String {
        var text = "event: \(event)\ndata: \(data.canonicalString)\n"
        if let id { text += "id: \(id)\n" }
        return text + "\n"
    }

    /// A complete SSE response of fixed frames.
    static func response(_ frames: [String]) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: frames.joined())))
    }
}

extension HTTPField.Name {
    static let sessionAPIKey = HTTPField.Name("X-Session-API-Key")!
}

extension JSONValue {
    /// What a tool produced, for the doors' `result` fields: its structured data, or
    /// its text.
    static func toolOutput(_ result: JSONValue) -> JSONValue {
        if let data = result["result"], data != .null { return data }
        return ["content": result["content"] ?? .null]
    }
}

/// "Should I …?" from a confirmation's one-sentence summary.
enum ConfirmationQuestion {
    static func make(_ summaries: [String]) -> String {
        let phrases = summaries.map { summary -> String in
            var text = summary.trimmingCharacters(in: .whitespacesAndNewlines)
            while text.hasSuffix(".") { text.removeLast() }
            let characters = Array(text)
            if characters.count > 1, characters[0].isUppercase, characters[1].isLowercase {
                text = characters[0].lowercased() + String(characters.dropFirst())
            }
            return text
        }
        if phrases.count == 1 { return "Should I \(phrases[0])?" }
        return "Should I do these \(phrases.count) things: " + phrases.joined(separator: "; ") + "?"
    }
}

/// The error of a seed wire format that reports errors as `{code, message}` with its own
/// codes (Murph, Sigmic). The format's controller maps native errors with `from(_:)` and
/// renders the body with its envelope.
protocol CompatFailure: Error {
    var status: HTTPResponse.Status { get }
    var code: String { get }
    var message: String { get }
    init(status: HTTPResponse.Status, code: String, message: String)
    static func from(_ error: CountersignError) -> Self
}

extension CompatFailure {
    /// Runs a handler of the format named `api`: what it throws becomes the format's error
    /// response; an unexpected error is logged and answered as `INTERNAL_ERROR` with the
    /// request id, never with its text.
    static func handle(
        _ context: AppRequestContext, api: String, envelope: (Self) -> JSONValue,
        _ body: () async throws -> Response
    ) async -> Response {
        var failure: Self
        do {
            return try await body()
        } catch let error as Self {
            failure = error
        } catch let error as CountersignError where error.code != .internal {
            failure = from(error)
        } catch {
            context.logger.error("\(api) API request failed", metadata: ["error": "\(String(reflecting: error))"])
            failure = Self(
                status: .internalServerError, code: "INTERNAL_ERROR",
                message: "The server could not complete the request (request id \(context.requestID)).")
        }
        return JSONResponse.make(status: failure.status, envelope(failure))
    }
}
