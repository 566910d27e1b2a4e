import ArgumentParser
import CountersignClient
import Foundation
import GateCore

/// Where a terminal command finds the server and its key.
struct ServerOption: ParsableArguments {
    @Option(help: "Base URL of the server (env COUNTERSIGN_URL; default http://127.0.0.1:8080).")
    var server: String?
    @Option(
        help: ArgumentHelp(
            "API key (env COUNTERSIGN_API_KEY; default: the admin key file ./countersign.db.admin-key).",
            valueName: "key"))
    var key: String?

    func client() throws -> CountersignClient {
        let url = try setting(server, "COUNTERSIGN_URL", "http://127.0.0.1:8080") { $0 }
        var apiKey = try setting(key, "COUNTERSIGN_API_KEY", "") { $0 }
        if apiKey.isEmpty, let file = try? String(contentsOfFile: "countersign.db.admin-key", encoding: .utf8) {
            apiKey = file.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard !apiKey.isEmpty else {
            throw ValidationError("No API key: pass --key or set COUNTERSIGN_API_KEY.")
        }
        return CountersignClient(baseURL: url.hasSuffix("/") ? String(url.dropLast()) : url, apiKey: apiKey)
    }
}

/// Prints a confirmation the way an approver needs to see it.
func describe(_ confirmation: JSONValue) -> String {
    var lines = [
        "\(confirmation["id"]?.stringValue ?? "?")  \(confirmation["tool_name"]?.stringValue ?? "?")  "
            + "(\(confirmation["status"]?.stringValue ?? "?"), expires \(confirmation["expires_at"]?.stringValue ?? "?"))",
        "  \(confirmation["summary"]?.stringValue ?? "")",
        "  params: \(confirmation["params"]?.canonicalString ?? "{}")",
    ]
    var why = "  asked because: \(confirmation["policy"]?.stringValue ?? "?")"
    if let rule = confirmation["rule_id"]?.stringValue { why += " (rule \(rule))" }
    if let source = confirmation["tainted_by"], source != .null {
        why +=
            " (session tainted by \(source["tool_name"]?.stringValue ?? "?") call "
            + "\(source["call_id"]?.stringValue ?? "?"))"
    }
    lines.append(why)
    return lines.joined(separator: "\n")
}

/// A failed terminal command: printed as one `Error: …` line and exit status 1. Unlike
/// `ValidationError`, it does not print the usage text, because the arguments were fine.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
}

/// Turns an API error, or a server that cannot be reached, into a one-line CLI failure.
func failure(_ error: any Error) -> CommandFailure {
    if let error = error as? CountersignClient.APIError {
        return CommandFailure(description: "\(error.code): \(error.message)")
    }
    return CommandFailure(description: "\(error)")
}

struct Approvals: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The confirmation inbox from the terminal.", subcommands: [List.self, Approve.self, Deny.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List pending confirmations (oldest first).")
        @OptionGroup var server: ServerOption
        @Option(help: "Only this session's.") var session: String?
        @Flag(help: "Print the API's JSON instead.") var json = false

        func run() async throws {
            let client = try server.client()
            do {
                let pending = try await client.confirmations(status: "pending", sessionID: session)
                if json {
                    print(JSONValue.array(pending).canonicalString)
                } else if pending.isEmpty {
                    print("No pending confirmations.")
                } else {
                    print(pending.map(describe).joined(separator: "\n\n"))
                }
            } catch {
                throw failure(error)
            }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve a confirmation.")
        @OptionGroup var server: ServerOption
        @Argument(help: "The confirmation id (conf_…).") var id: String
        @Flag(help: "Remember for the session: later calls of this tool run without asking.") var remember = false
        @Option(help: "Approve with these params instead (a JSON object).") var params: String?

        func run() async throws {
            let client = try server.client()
            var edited: JSONValue?
            if let params {
                guard let value = try? JSONValue.parse(params), case .object = value else {
                    throw ValidationError("--params must be a JSON object.")
                }
                edited = value
            }
            do {
                let shown = try await client.confirmation(id)
                let result = try await client.decide(
                    id, approve: true, editedParams: edited, paramsHash: shown["params_hash"]?.stringValue,
                    rememberForSession: remember)
                print("approved \(id)")
                if let reply = result["run"]?["reply"]?.stringValue, !reply.isEmpty { print(reply) }
            } catch {
                throw failure(error)
            }
        }
    }

    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deny a confirmation; the model is told the reason.")
        @OptionGroup var server: ServerOption
        @Argument(help: "The confirmation id (conf_…).") var id: String
        @Option(help: "Told to the model.") var reason: String?

        func run() async throws {
            let client = try server.client()
            do {
                let result = try await client.decide(id, approve: false, reason: reason)
                print("denied \(id)")
                if let reply = result["run"]?["reply"]?.stringValue, !reply.isEmpty { print(reply) }
            } catch {
                throw failure(error)
            }
        }
    }
}

/// `countersign chat`: talk to an agent; every confirmation is asked in the terminal.
struct Chat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat with an agent in the terminal; each pending confirmation asks approve / deny / edit.")
    @OptionGroup var server: ServerOption
    @Option(help: "The agent to talk to.") var agent = "demo"
    @Option(help: "Continue this session instead of creating one.") var session: String?

    func run() async throws {
        let client = try server.client()
        do {
            var id = session ?? ""
            if id.isEmpty { id = try await client.createSession(agent: agent)["id"]?.stringValue ?? "" }
            print("session \(id) with agent \(agent). Type a message; an empty line or end of input quits.")
            while true {
                print("> ", terminator: "")
                guard let line = readLine(), !line.trimmingCharacters(in: .whitespaces).isEmpty else { break }
                var outcome = try await client.send(sessionID: id, content: line)
                while outcome["status"]?.stringValue == "awaiting_confirmation" {
                    var next: JSONValue?
                    for confirmation in outcome["pending_confirmations"]?.arrayValue ?? [] {
                        if let run = try await ask(confirmation, client: client) { next = run }
                    }
                    guard let next, next != .null else { break }
                    outcome = next
                }
                if let reply = outcome["reply"]?.stringValue, !reply.isEmpty { print(reply) }
                if let error = outcome["error"]?.stringValue { print("run failed: \(error)") }
            }
        } catch {
            throw failure(error)
        }
    }

    /// Asks about one confirmation until it is decided; returns the run when the decision
    /// resumed it.
    func ask(_ confirmation: JSONValue, client: CountersignClient) async throws -> JSONValue? {
        let id = confirmation["id"]?.stringValue ?? ""
        print("\nConfirmation needed:\n\(describe(confirmation))")
        while true {
            print("[a]pprove, [d]eny, [e]dit? ", terminator: "")
            guard let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() else {
                print("\nLeft pending (end of input).")
                return nil
            }
            switch answer {
            case "a", "approve", "y":
                let result = try await client.decide(
                    id, approve: true, paramsHash: confirmation["params_hash"]?.stringValue)
                print("approved")
                return result["run"]
            case "d", "deny", "n":
                print("reason (optional): ", terminator: "")
                let reason = readLine().flatMap { $0.isEmpty ? nil : $0 }
                let result = try await client.decide(id, approve: false, reason: reason)
                print("denied")
                return result["run"]
            case "e", "edit":
                print("params as JSON: ", terminator: "")
                guard let text = readLine(), let edited = try? JSONValue.parse(text), case .object = edited else {
                    print("not a JSON object; asked again")
                    continue
                }
                do {
                    let result = try await client.decide(
                        id, approve: true, editedParams: edited, paramsHash: confirmation["params_hash"]?.stringValue)
                    print("approved with edits")
                    return result["run"]
                } catch let error as CountersignClient.APIError where error.status == 400 {
                    print("refused: \(error.message)")
                }
            default:
                print("answer a, d or e")
            }
        }
    }
}
