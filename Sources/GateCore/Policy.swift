import Foundation
import Synchronization

/// What a tool does to the world.
public enum ToolEffect: String, Sendable, Codable, CaseIterable {
    case read, write, destructive
}

/// How a tool call is gated.
public enum ToolPolicy: String, Sendable, Codable, CaseIterable {
    case auto
    case confirm
    case confirmIfTainted = "confirm_if_tainted"
    case deny

    /// SPEC §1 defaults: read → auto, write → confirm, destructive → confirm.
    public static func `default`(for effect: ToolEffect) -> ToolPolicy {
        switch effect {
        case .read: .auto
        case .write, .destructive: .confirm
        }
    }
}

/// The flags of a tool that matter to the gate.
public struct ToolFlags: Sendable, Equatable, Codable {
    public var effect: ToolEffect
    public var openWorld: Bool
    public var idempotent: Bool

    public init(effect: ToolEffect, openWorld: Bool = false, idempotent: Bool = false) {
        self.effect = effect
        self.openWorld = openWorld
        self.idempotent = idempotent
    }
}

/// Compiled `regex` matchers by pattern, so that a rule is compiled once rather than on
/// every call it is checked against. Patterns come from the config file and from grant
/// scopes sent over the API, so the cache is bounded: when full, it starts again.
final class RegexCache: Sendable {
    static let shared = RegexCache()
    let capacity: Int

    init(capacity: Int = 1024) {
        self.capacity = capacity
    }

    private struct State {
        var compiled: [String: NSRegularExpression] = [:]
        var compilations = 0
    }
    private let state = Mutex(State())

    var compilations: Int { state.withLock { $0.compilations } }

    /// The anchored expression for `pattern`, or nil when it does not compile.
    func regex(_ pattern: String) -> NSRegularExpression? {
        if let hit = state.withLock({ $0.compiled[pattern] }) { return hit }
        guard let regex = try? ValueMatcher.compile(pattern) else { return nil }
        state.withLock { state in
            if state.compiled.count >= capacity { state.compiled.removeAll(keepingCapacity: true) }
            state.compiled[pattern] = regex
            state.compilations += 1
        }
        return regex
    }
}

/// Matches one argument value. Rules and grant scopes combine matchers on several
/// arguments; every matcher must match.
public enum ValueMatcher: Sendable, Equatable {
    case equals(JSONValue)
    case prefix(String)
    case glob(String)
    /// A regular expression (ICU syntax) that must match the whole string value.
    case regex(String)
    case range(min: Double?, max: Double?)

    public func matches(_ value: JSONValue?) -> Bool {
        guard let value else { return false }
        switch self {
        case .equals(let expected): return value == expected || value.canonicalString == expected.canonicalString
        case .prefix(let prefix): return value.stringValue?.hasPrefix(prefix) ?? false
        case .glob(let pattern): return value.stringValue.map { Glob.matches($0, pattern: pattern) } ?? false
        case .regex(let pattern):
            guard let text = value.stringValue, let regex = RegexCache.shared.regex(pattern) else { return false }
            return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
        case .range(let min, let max):
            guard let number = value.doubleValue else { return false }
            if let min, number < min { return false }
            if let max, number > max { return false }
            return true
        }
    }

    /// Compiles a `regex` matcher's pattern, anchored so that it must match the whole
    /// value (`drafts/.*` does not match `../drafts/x`). Throws for an invalid pattern.
    public static func compile(_ pattern: String) throws -> NSRegularExpression {
        try NSRegularExpression(pattern: "\\A(?:" + pattern + ")\\z")
    }

    /// The matcher as JSON, in the shape the config file and the API use:
    /// `{"equals": v}`, `{"prefix": s}`, `{"glob": s}`, `{"regex": s}`, `{"min": n, "max": n}`.
    public var json: JSONValue {
        switch self {
        case .equals(let value): return ["equals": value]
        case .prefix(let prefix): return ["prefix": .string(prefix)]
        case .glob(let pattern): return ["glob": .string(pattern)]
        case .regex(let pattern): return ["regex": .string(pattern)]
        case .range(let min, let max):
            var object: [String: JSONValue] = [:]
            if let min { object["min"] = .double(min) }
            if let max { object["max"] = .double(max) }
            return .object(object)
        }
    }

    /// Reads a matcher from its JSON shape (see ``json``). A value that is not an object
    /// means `equals`. Throws a description of the problem.
    public static func parse(_ value: JSONValue) throws(MatcherError) -> ValueMatcher {
        guard case .object(let fields) = value else { return .equals(value) }
        let known: Set = ["equals", "prefix", "glob", "regex", "min", "max"]
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw MatcherError("unknown matcher '\(unknown)' (expected equals, prefix, glob, regex or min/max)")
        }
        let isRange = fields["min"] != nil || fields["max"] != nil
        let kinds = fields.keys.filter { $0 != "min" && $0 != "max" }
        guard kinds.count + (isRange ? 1 : 0) == 1 else {
            throw MatcherError(
                fields.isEmpty
                    ? "expected a matcher: {prefix: …}, {equals: …}, {glob: …}, {regex: …} or {min: …, max: …}"
                    : "one matcher per argument (found \(fields.keys.sorted().joined(separator: ", ")))")
        }
        if isRange {
            func number(_ key: String) throws(MatcherError) -> Double? {
                guard let value = fields[key] else { return nil }
                guard let number = value.doubleValue else { throw MatcherError("\(key) must be a number") }
                return number
            }
            let min = try number("min")
            let max = try number("max")
            if let min, let max, min > max { throw MatcherError("min (\(min)) is greater than max (\(max))") }
            return .range(min: min, max: max)
        }
        let kind = kinds[0]
        if kind == "equals" { return .equals(fields["equals"]!) }
        guard let text = fields[kind]?.stringValue else { throw MatcherError("\(kind) must be a string") }
        switch kind {
        case "prefix": return .prefix(text)
        case "glob": return .glob(text)
        default:
            do {
                _ = try compile(text)
            } catch {
                throw MatcherError("'\(text)' is not a valid regular expression")
            }
            return .regex(text)
        }
    }

    /// `{argument: matcher}` as JSON.
    public static func json(_ matchers: [String: ValueMatcher]) -> JSONValue {
        .object(matchers.mapValues(\.json))
    }

    /// Reads `{argument: matcher}`; the error names the argument.
    public static func parseAll(_ value: JSONValue) throws(MatcherError) -> [String: ValueMatcher] {
        guard case .object(let fields) = value else { throw MatcherError("expected an object of argument matchers") }
        var matchers: [String: ValueMatcher] = [:]
        for (argument, matcher) in fields {
            do {
                matchers[argument] = try parse(matcher)
            } catch {
                throw MatcherError("\(argument): \(error.message)")
            }
        }
        return matchers
    }

    /// Whether every matcher matches its argument of `params`.
    public static func allMatch(_ matchers: [String: ValueMatcher], _ params: JSONValue) -> Bool {
        matchers.allSatisfy { key, matcher in matcher.matches(params[key]) }
    }
}

/// Why a matcher could not be read.
public struct MatcherError: Error, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// An ordered override: when a call of `tool` has arguments that all match, `policy` applies.
public struct PolicyRule: Sendable, Equatable {
    public var id: String
    /// Tool name, or a glob such as `git.*`.
    public var tool: String
    public var when: [String: ValueMatcher]
    public var policy: ToolPolicy

    public init(id: String, tool: String, when: [String: ValueMatcher] = [:], policy: ToolPolicy) {
        self.id = id
        self.tool = tool
        self.when = when
        self.policy = policy
    }

    public func matches(toolName: String, params: JSONValue) -> Bool {
        guard Glob.matches(toolName, pattern: tool) else { return false }
        return ValueMatcher.allMatch(when, params)
    }
}

/// An agent's policy: per-tool overrides of the effect defaults, and ordered rules.
public struct AgentPolicy: Sendable, Equatable {
    public var tools: [String: ToolPolicy]
    public var rules: [PolicyRule]
    /// Tools for which `remember: session` may be granted even though they are destructive.
    public var destructiveGrantsAllowed: Set<String>
    /// Tools that never get a grant (`remember: never`).
    public var grantsForbidden: Set<String>

    public init(
        tools: [String: ToolPolicy] = [:], rules: [PolicyRule] = [], destructiveGrantsAllowed: Set<String> = [],
        grantsForbidden: Set<String> = []
    ) {
        self.tools = tools
        self.rules = rules
        self.destructiveGrantsAllowed = destructiveGrantsAllowed
        self.grantsForbidden = grantsForbidden
    }

    /// Whether an approval of this tool may be remembered for the session.
    public func allowsGrant(toolName: String, flags: ToolFlags) -> Bool {
        if grantsForbidden.contains(toolName) { return false }
        if flags.effect == .destructive { return destructiveGrantsAllowed.contains(toolName) }
        return true
    }
}

/// What the gate decides for one tool call.
public enum GateDecision: Sendable, Equatable {
    public enum RunReason: String, Sendable, Equatable { case policy, grant }
    case run(RunReason)
    case confirm(ConfirmationPolicy, ruleID: String?)
    case deny(ruleID: String?)
}

/// Why the gate decides what it does for one call: what ``PolicyEvaluator`` decided,
/// which configured policy applied and where it came from. `POST /v1/policy/explain`
/// returns this.
public struct PolicyExplanation: Sendable, Equatable {
    /// Where the applied policy came from.
    public enum Source: String, Sendable, Equatable {
        /// An ordered rule of the agent matched the call (first match wins).
        case rule
        /// The agent's policy names the tool.
        case tool
        /// The default for the tool's effect class.
        case `default`
    }

    public var decision: GateDecision
    /// The policy that applied before taint and grants were taken into account.
    public var policy: ToolPolicy
    public var source: Source
    public var ruleID: String?
    /// One or two sentences for people writing rules.
    public var reason: String
}

/// The policy decision for a tool call: rules first (first match wins), then the
/// agent's per-tool policy, then the default for the tool's effect; a grant turns a
/// `confirm` into a run, taint turns `confirm_if_tainted` into a confirm.
public enum PolicyEvaluator {
    public static func evaluate(
        toolName: String, flags: ToolFlags, params: JSONValue, policy: AgentPolicy,
        tainted: Bool, granted: Bool
    ) -> GateDecision {
        explain(toolName: toolName, flags: flags, params: params, policy: policy, tainted: tainted, granted: granted)
            .decision
    }

    public static func explain(
        toolName: String, flags: ToolFlags, params: JSONValue, policy: AgentPolicy,
        tainted: Bool, granted: Bool
    ) -> PolicyExplanation {
        var ruleID: String?
        let chosen: ToolPolicy
        let source: PolicyExplanation.Source
        var why: String
        if let rule = policy.rules.first(where: { $0.matches(toolName: toolName, params: params) }) {
            chosen = rule.policy
            ruleID = rule.id
            source = .rule
            why = "Rule \(rule.id) is the first rule that matches this call; it sets \(chosen.rawValue)."
        } else if let configured = policy.tools[toolName] {
            chosen = configured
            source = .tool
            why = "No rule matches; the agent's policy for \(toolName) is \(chosen.rawValue)."
        } else {
            chosen = ToolPolicy.default(for: flags.effect)
            source = .default
            why =
                "No rule matches and the agent sets no policy for \(toolName); the default for a "
                + "\(flags.effect.rawValue) tool is \(chosen.rawValue)."
        }
        let decision: GateDecision
        switch chosen {
        case .auto:
            decision = .run(.policy)
            why += " It runs without asking."
        case .deny:
            decision = .deny(ruleID: ruleID)
            why += " It never runs; the model is told."
        case .confirm:
            if granted {
                decision = .run(.grant)
                why += " A grant of this session covers it, so it runs without asking."
            } else {
                decision = .confirm(ruleID == nil ? .always : .rule, ruleID: ruleID)
                why += " A person must approve it."
            }
        case .confirmIfTainted:
            if !tainted {
                decision = .run(.policy)
                why += " The session is not tainted, so it runs without asking."
            } else if granted {
                decision = .run(.grant)
                why += " The session is tainted, but a grant of this session covers it, so it runs without asking."
            } else {
                decision = .confirm(.tainted, ruleID: ruleID)
                why +=
                    " The session is tainted (it has read output of an open-world tool), so a person must approve it."
            }
        }
        return PolicyExplanation(decision: decision, policy: chosen, source: source, ruleID: ruleID, reason: why)
    }
}

/// Shell-style globs: `*` matches any run of characters, `?` one character.
public enum Glob {
    public static func matches(_ text: String, pattern: String) -> Bool {
        let t = Array(text)
        let p = Array(pattern)
        var ti = 0
        var pi = 0
        var starP = -1
        var starT = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                ti += 1
                pi += 1
            } else if pi < p.count, p[pi] == "*" {
                starP = pi
                starT = ti
                pi += 1
            } else if starP >= 0 {
                pi = starP + 1
                starT += 1
                ti = starT
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

extension ValueMatcher: Codable {
    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        do {
            self = try ValueMatcher.parse(value)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}
