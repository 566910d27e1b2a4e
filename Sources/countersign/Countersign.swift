import AgentRuntime
import ArgumentParser
import CountersignServer
import Foundation
import GateCore
import Hummingbird
import Logging
import Storage

@main
struct Countersign: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "countersign",
        abstract: "A self-hosted agent server where every side-effecting tool call waits for a person.",
        subcommands: [Serve.self, Keys.self, Namespaces.self, Audit.self, Approvals.self, Chat.self])
}

/// Reads a flag, else its environment variable, else the default.
func setting<T>(_ flag: T?, _ variable: String, _ fallback: T, parse: (String) -> T?) throws -> T {
    if let flag { return flag }
    if let text = ProcessInfo.processInfo.environment[variable], !text.isEmpty {
        guard let value = parse(text) else { throw ValidationError("\(variable)=\(text) is not valid.") }
        return value
    }
    return fallback
}

struct DatabaseOption: ParsableArguments {
    @Option(help: "sqlite:PATH or postgres://user:pass@host:port/db (env COUNTERSIGN_DATABASE).")
    var database: String?

    func resolved() throws -> String {
        try setting(database, "COUNTERSIGN_DATABASE", "sqlite:./countersign.db") { $0 }
    }

    func openStore() async throws -> any Store {
        var configuration = ServerConfiguration()
        configuration.databaseURL = try resolved()
        switch try configuration.database() {
        case .sqlite(let path):
            guard FileManager.default.fileExists(atPath: path) else {
                throw ValidationError("No database at \(path). Start `countersign serve` once to create it.")
            }
            let store = try SQLiteStore(path: path)
            try await store.migrate()
            return store
        case .postgres:
            throw ValidationError("PostgreSQL is not supported by this build yet.")
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP server.")

    @Option(help: "Address to listen on (env COUNTERSIGN_HOST).") var host: String?
    @Option(help: "Port to listen on; 0 picks a free one (env COUNTERSIGN_PORT).") var port: Int?
    @OptionGroup var database: DatabaseOption
    @Option(help: "YAML configuration file (env COUNTERSIGN_CONFIG).") var config: String?
    @Option(help: "Seconds a confirmation stays pending (env COUNTERSIGN_CONFIRMATION_TTL).")
    var confirmationTtl: Double?
    @Option(help: "Folder for session workspaces (env COUNTERSIGN_DATA_DIR).") var dataDir: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error (env COUNTERSIGN_LOG_LEVEL).")
    var logLevel: String?
    @Option(help: "Requests per minute per API key, 0 for no limit (env COUNTERSIGN_KEY_REQUESTS_PER_MINUTE).")
    var keyRequestsPerMinute: Int?
    @Option(help: "Requests per minute per session, 0 for no limit (env COUNTERSIGN_SESSION_REQUESTS_PER_MINUTE).")
    var sessionRequestsPerMinute: Int?
    @Option(help: "Largest request body in bytes (env COUNTERSIGN_MAX_BODY_BYTES; default 1048576).")
    var maxBodyBytes: Int?
    @Option(help: "Longest user message in characters (env COUNTERSIGN_MAX_MESSAGE_CHARACTERS; default 32000).")
    var maxMessageCharacters: Int?
    @Option(help: "Event streams one API key may hold open (env COUNTERSIGN_MAX_STREAMS_PER_KEY; default 32).")
    var maxStreamsPerKey: Int?
    @Option(help: "Confirmations one model step may ask for (env COUNTERSIGN_MAX_PENDING_CONFIRMATIONS; default 32).")
    var maxPendingConfirmations: Int?

    func run() async throws {
        var configuration = ServerConfiguration()
        configuration.host = try setting(host, "COUNTERSIGN_HOST", "127.0.0.1") { $0 }
        configuration.port = try setting(port, "COUNTERSIGN_PORT", 8080) { Int($0) }
        configuration.databaseURL = try database.resolved()
        configuration.confirmationTTL = try setting(confirmationTtl, "COUNTERSIGN_CONFIRMATION_TTL", 300) {
            Double($0)
        }
        guard configuration.confirmationTTL > 0 else { throw ValidationError("--confirmation-ttl must be > 0.") }
        let dataDirectory = try setting(dataDir, "COUNTERSIGN_DATA_DIR", "") { $0 }
        configuration.dataDirectory = dataDirectory.isEmpty ? nil : dataDirectory
        configuration.keyRequestsPerMinute = try setting(
            keyRequestsPerMinute, "COUNTERSIGN_KEY_REQUESTS_PER_MINUTE", configuration.keyRequestsPerMinute
        ) { Int($0) }
        configuration.sessionRequestsPerMinute = try setting(
            sessionRequestsPerMinute, "COUNTERSIGN_SESSION_REQUESTS_PER_MINUTE", configuration.sessionRequestsPerMinute
        ) { Int($0) }
        configuration.maxBodyBytes = try setting(
            maxBodyBytes, "COUNTERSIGN_MAX_BODY_BYTES", configuration.maxBodyBytes
        ) { Int($0) }
        configuration.maxMessageCharacters = try setting(
            maxMessageCharacters, "COUNTERSIGN_MAX_MESSAGE_CHARACTERS", configuration.maxMessageCharacters
        ) { Int($0) }
        configuration.maxStreamsPerKey = try setting(
            maxStreamsPerKey, "COUNTERSIGN_MAX_STREAMS_PER_KEY", configuration.maxStreamsPerKey
        ) { Int($0) }
        configuration.maxPendingConfirmationsPerSession = try setting(
            maxPendingConfirmations, "COUNTERSIGN_MAX_PENDING_CONFIRMATIONS",
            configuration.maxPendingConfirmationsPerSession
        ) { Int($0) }
        guard configuration.maxBodyBytes > 0, configuration.maxMessageCharacters > 0,
            configuration.maxStreamsPerKey > 0, configuration.maxPendingConfirmationsPerSession > 0
        else { throw ValidationError("Size and count limits must be greater than 0.") }
        guard configuration.keyRequestsPerMinute >= 0, configuration.sessionRequestsPerMinute >= 0 else {
            throw ValidationError("Rate limits must be 0 (no limit) or more.")
        }
        if let points = ProcessInfo.processInfo.environment["COUNTERSIGN_FAILPOINTS"], !points.isEmpty {
            let seed = UInt64(ProcessInfo.processInfo.environment["COUNTERSIGN_FAILPOINT_SEED"] ?? "") ?? 0
            configuration.failpoints = try Failpoints.parse(points, seed: seed)
        }
        let level = try setting(logLevel, "COUNTERSIGN_LOG_LEVEL", "info") { $0 }
        LoggingSystem.bootstrap { label in ServerLogHandler(label: label) }
        var logger = Logger(label: "countersign")
        logger.logLevel = Logger.Level(rawValue: level) ?? .info

        // Not `setting(config, …, nil)`: with an optional fallback the flag's nil is
        // wrapped as `.some(nil)` and the environment variable would never be read.
        let file = try setting(config, "COUNTERSIGN_CONFIG", "") { $0 }
        if !file.isEmpty {
            let loaded = try loadAgents(file: file, logger: logger)
            configuration.agents = loaded.agents
            configuration.mcpServers = loaded.mcpServers
        }
        let runtime = try await ServerRuntime.open(configuration, logger: logger)
        if let key = runtime.bootstrapKey {
            printFlushed(
                """
                First start: created namespace "default" and an admin key. It is shown once and saved to \
                \(runtime.bootstrapKeyFile ?? "?") (mode 0600):

                    \(key)

                """)
        }
        if !runtime.recovered.isEmpty {
            logger.notice(
                "resuming runs interrupted by the last shutdown", metadata: ["runs": "\(runtime.recovered.count)"])
        }
        let host = configuration.host
        let app = runtime.application(logger: logger) { channel in
            let port = channel.localAddress?.port ?? 0
            FileHandle.standardOutput.write(Data("Countersign listening on http://\(host):\(port)\n".utf8))
        }
        try await app.runService()
    }
}

/// Loads the agents of `--config FILE`. A bad file stops the server before it starts:
/// the error (file, line, path inside the file, what is wrong) goes to stderr and the
/// exit status is 78 (EX_CONFIG).
func loadAgents(file: String, logger: Logger) throws -> AgentConfig {
    do {
        var options = AgentConfig.ProviderOptions()
        options.mcp.logger = logger
        let loaded = try AgentConfig.load(file: file, options: options)
        for warning in loaded.warnings { logger.warning("\(warning)") }
        logger.info(
            "loaded agents from \(file)", metadata: ["agents": "\(loaded.agents.map(\.name).joined(separator: ", "))"])
        return loaded
    } catch let error as ConfigError {
        FileHandle.standardError.write(Data("countersign: configuration error: \(error)\n".utf8))
        throw ExitCode(78)
    }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage API keys directly in the database.", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print only the key.")
        @OptionGroup var database: DatabaseOption
        @Option(help: "Namespace name or id.") var namespace: String = "default"
        @Option(help: "Actor id the key acts as.") var actor: String
        @Option(help: "admin, member or approver.") var role: String = "member"
        @Option(help: "Expiry, ISO 8601 (optional).") var expiresAt: String?

        func run() async throws {
            let store = try await database.openStore()
            guard let role = Role(rawValue: role) else {
                throw ValidationError("--role must be admin, member or approver.")
            }
            guard let namespace = try await store.namespace(idOrName: namespace) else {
                throw ValidationError("No namespace \(namespace).")
            }
            var expiry: Date?
            if let expiresAt {
                guard let date = Timestamp.parse(expiresAt) else {
                    throw ValidationError("--expires-at is not ISO 8601.")
                }
                expiry = date
            }
            let issued = APIKeys.issue(
                namespaceID: namespace.id, actor: actor, role: role, now: Date(), expiresAt: expiry)
            try await store.createKey(
                issued.record,
                audit: AuditDraft(
                    namespaceID: namespace.id, actor: "cli", action: "key.created", subject: issued.record.prefix,
                    data: ["actor": .string(actor), "role": .string(role.rawValue)]))
            print(issued.key)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (prefixes only).")
        @OptionGroup var database: DatabaseOption
        @Option(help: "Namespace name or id.") var namespace: String = "default"

        func run() async throws {
            let store = try await database.openStore()
            guard let namespace = try await store.namespace(idOrName: namespace) else {
                throw ValidationError("No namespace \(namespace).")
            }
            for key in try await store.keys(namespaceID: namespace.id) {
                let state = key.revokedAt != nil ? "revoked" : "active"
                print("\(key.prefix)\t\(key.actor)\t\(key.role.rawValue)\t\(state)")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by its prefix.")
        @OptionGroup var database: DatabaseOption
        @Option(help: "Namespace name or id.") var namespace: String = "default"
        @Argument(help: "The key's prefix (sk_ and 8 characters).") var prefix: String

        func run() async throws {
            let store = try await database.openStore()
            guard let namespace = try await store.namespace(idOrName: namespace) else {
                throw ValidationError("No namespace \(namespace).")
            }
            let revoked = try await store.revokeKey(
                prefix: prefix, namespaceID: namespace.id, at: Date(),
                audit: AuditDraft(namespaceID: namespace.id, actor: "cli", action: "key.revoked", subject: prefix))
            guard revoked else { throw ValidationError("No key \(prefix) in \(namespace.name).") }
            print("revoked \(prefix)")
        }
    }
}

struct Namespaces: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage namespaces.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a namespace and print its id.")
        @OptionGroup var database: DatabaseOption
        @Argument(help: "Unique name.") var name: String

        func run() async throws {
            let store = try await database.openStore()
            let namespace = Namespace(id: Identifier.make("ns", length: 16), name: name, createdAt: Date())
            try await store.createNamespace(
                namespace,
                audit: AuditDraft(
                    namespaceID: namespace.id, actor: "cli", action: "namespace.created", subject: namespace.id,
                    data: ["name": .string(name)]))
            print(namespace.id)
        }
    }
}

/// Prints unbuffered, so that a supervising process sees the line at once.
func printFlushed(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Inspect the audit log.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the hash chain of every namespace (or one); exit 1 at the first broken link.")
        @OptionGroup var database: DatabaseOption
        @Option(help: "Only this namespace (name or id).") var namespace: String?

        func run() async throws {
            let store = try await database.openStore()
            var namespaces = try await store.namespaces()
            if let namespace {
                namespaces = namespaces.filter { $0.id == namespace || $0.name == namespace }
                guard !namespaces.isEmpty else { throw ValidationError("No namespace \(namespace).") }
            }
            var broken = false
            for item in namespaces {
                let report = try await AuditVerifier.verify(store: store, namespaceID: item.id)
                if report.ok {
                    print("\(item.name)\tok\t\(report.checked) entries")
                } else {
                    broken = true
                    print(
                        "\(item.name)\tBROKEN at entry \(report.firstBroken ?? 0): \(report.reason ?? "")"
                            + " (\(report.checked) entries verified before it)")
                }
            }
            if broken { throw ExitCode(1) }
        }
    }
}
