import Foundation

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

/// Matches one argument value. Rules combine matchers on several arguments.
public enum ValueMatcher: Sendable, Equatable {
    case equals(JSONValue)
    case prefix(String)
    case glob(String)
    case range(min: Double?, max: Double?)

    public func matches(_ value: JSONValue?) -> Bool {
        guard let value else { return false }
        switch self {
        case .equals(let expected): return value == expected || value.canonicalString == expected.canonicalString
        case .prefix(let prefix): return value.stringValue?.hasPrefix(prefix) ?? false
        case .glob(let pattern): return value.stringValue.map { Glob.matches($0, pattern: pattern) } ?? false
        case .range(let min, let max):
            guard let number = value.doubleValue else { return false }
            if let min, number < min { return false }
            if let max, number > max { return false }
            return true
        }
    }
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
        return when.allSatisfy { key, matcher in matcher.matches(params[key]) }
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

/// The policy decision for a tool call: rules first (first match wins), then the
/// agent's per-tool policy, then the default for the tool's effect; a grant turns a
/// `confirm` into a run, taint turns `confirm_if_tainted` into a confirm.
public enum PolicyEvaluator {
    public static func evaluate(
        toolName: String, flags: ToolFlags, params: JSONValue, policy: AgentPolicy,
        tainted: Bool, granted: Bool
    ) -> GateDecision {
        var ruleID: String?
        let chosen: ToolPolicy
        if let rule = policy.rules.first(where: { $0.matches(toolName: toolName, params: params) }) {
            chosen = rule.policy
            ruleID = rule.id
        } else {
            chosen = policy.tools[toolName] ?? ToolPolicy.default(for: flags.effect)
        }
        switch chosen {
        case .auto:
            return .run(.policy)
        case .deny:
            return .deny(ruleID: ruleID)
        case .confirm:
            if granted { return .run(.grant) }
            return .confirm(ruleID == nil ? .always : .rule, ruleID: ruleID)
        case .confirmIfTainted:
            guard tainted else { return .run(.policy) }
            if granted { return .run(.grant) }
            return .confirm(.tainted, ruleID: ruleID)
        }
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
